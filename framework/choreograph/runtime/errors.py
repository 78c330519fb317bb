"""How handler failures are classified: straight to the DLQ, or retried first."""

from __future__ import annotations

from choreograph.contracts.envelope import EnvelopeError
from choreograph.contracts.event import ContractViolation
from choreograph.contracts.serde import SerdeError


class NonRetryableError(Exception):
    """Raise from a handler when retrying cannot help: the record goes to the DLQ at once."""


class ConfigurationError(Exception):
    """The service cannot start as configured (e.g. inputs not co-partitioned)."""


DLQ_AT_ONCE: tuple[type[BaseException], ...] = (
    ContractViolation,
    SerdeError,
    EnvelopeError,
    NonRetryableError,
)


def goes_to_dlq_at_once(error: BaseException) -> bool:
    return isinstance(error, DLQ_AT_ONCE)
