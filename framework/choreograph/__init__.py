"""choreograph: Kafka-native event choreography.

The public API is what this module exports; submodules are implementation.
"""

from choreograph.contracts.compatibility import Mode, can_read, check_compatibility
from choreograph.contracts.envelope import Envelope, EnvelopeError, current_envelope, handling
from choreograph.contracts.event import AvroRecord, ContractViolation, Event
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde, SerdeError, UnknownSubject

__version__ = "0.1.0"

__all__ = [
    "AvroRecord",
    "AvroSerde",
    "ContractViolation",
    "Envelope",
    "EnvelopeError",
    "Event",
    "EventPublisher",
    "Mode",
    "SerdeError",
    "UnknownSubject",
    "__version__",
    "can_read",
    "check_compatibility",
    "current_envelope",
    "handling",
]
