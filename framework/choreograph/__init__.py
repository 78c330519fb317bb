"""choreograph: Kafka-native event choreography.

The public API is what this module exports; submodules are implementation.
"""

from choreograph.contracts.compatibility import Mode, can_read, check_compatibility
from choreograph.contracts.envelope import Envelope, EnvelopeError, current_envelope, handling
from choreograph.contracts.event import AvroRecord, ContractViolation, Event
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde, SerdeError, UnknownSubject
from choreograph.machines.machine import MachineDefinitionError, StateMachine
from choreograph.runtime.config import Guarantee, RetryPolicy, ServiceConfig
from choreograph.runtime.context import Context
from choreograph.runtime.errors import InvalidEventBuilt, NonRetryableError, TopologyError
from choreograph.runtime.service import Service
from choreograph.runtime.settlement import Settlement
from choreograph.state.store import Store
from choreograph.testing.samples import sample_event
from choreograph.testing.testkit import TestKit

__version__ = "0.1.0"

__all__ = [
    "AvroRecord",
    "AvroSerde",
    "Context",
    "ContractViolation",
    "Envelope",
    "EnvelopeError",
    "Event",
    "EventPublisher",
    "Guarantee",
    "InvalidEventBuilt",
    "MachineDefinitionError",
    "Mode",
    "NonRetryableError",
    "RetryPolicy",
    "SerdeError",
    "Service",
    "ServiceConfig",
    "Settlement",
    "StateMachine",
    "Store",
    "TestKit",
    "TopologyError",
    "UnknownSubject",
    "__version__",
    "can_read",
    "check_compatibility",
    "current_envelope",
    "handling",
    "sample_event",
]
