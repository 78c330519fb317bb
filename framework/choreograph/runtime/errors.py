"""The failure policy: how a failure is classified, and so what the engine does with it.

Three kinds, three answers (the engine and the TestKit both decide through `classify`):

- infrastructure: a dependency (the schema registry, the broker) is unreachable, slow or failing.
  The record is not at fault: its partition pauses and retries with bounded back-off and jitter
  until the dependency answers again. Never dead-lettered, never counted as an attempt.
- bad record: the record cannot be read or cannot be written on (undecodable, envelope and body
  disagree, too large to produce). Retrying cannot help: dead-lettered at once.
- business: anything else a handler raises. Bounded retries, then the dead-letter topic.
"""

from __future__ import annotations

from enum import StrEnum

from confluent_kafka import KafkaException

from choreograph.contracts.envelope import EnvelopeError
from choreograph.contracts.event import ContractViolation
from choreograph.contracts.serde import RegistryUnavailable, SerdeError
from choreograph.runtime.transactions import ProducerUnavailable
from choreograph.runtime.watchdog import Stalled


class NonRetryableError(Exception):
    """Raise from a handler when retrying cannot help: the record goes to the DLQ at once."""


class ConfigurationError(Exception):
    """The service cannot start as configured (e.g. inputs not co-partitioned)."""


class BrokerUnreachable(ConfigurationError):
    """No broker answered at start-up: most likely a wrong address."""


class RecordTooLarge(NonRetryableError):
    """An output of the record is larger than its topic accepts."""


class Failure(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    BAD_RECORD = "bad-record"
    BUSINESS = "business"


BAD_RECORD: tuple[type[BaseException], ...] = (
    ContractViolation,
    SerdeError,
    EnvelopeError,
    NonRetryableError,
)
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    RegistryUnavailable,
    ProducerUnavailable,
    Stalled,
)


def classify(error: BaseException) -> Failure:
    if isinstance(error, INFRASTRUCTURE):
        return Failure.INFRASTRUCTURE
    if isinstance(error, KafkaException):  # from the runtime's own clients, not a handler's
        kafka_error = error.args[0] if error.args else None
        if getattr(kafka_error, "retriable", lambda: False)():
            return Failure.INFRASTRUCTURE
    if isinstance(error, BAD_RECORD):
        return Failure.BAD_RECORD
    return Failure.BUSINESS


def goes_to_dlq_at_once(error: BaseException) -> bool:
    return classify(error) is Failure.BAD_RECORD
