"""The failure policy: how a failure is classified, and so what the engine does with it.

Three kinds, three answers (the engine and the TestKit both decide through `classify`):

- infrastructure: a dependency (the schema registry, the broker) is unreachable, slow or failing.
  The record is not at fault: its partition pauses and retries with bounded back-off and jitter
  until the dependency answers again. Never dead-lettered, never counted as an attempt.
- bad record: the record cannot be read or cannot be written on (undecodable, envelope and body
  disagree, too large to produce). Retrying cannot help: dead-lettered at once.
- programming: a mistake in the service's code (a TypeError, an undeclared store, a wrong
  handler signature). In production it is handled as a business failure (nothing else can be
  done with the record); the TestKit raises it at once in the test, with its traceback.
- business: anything else a handler raises. Bounded retries, then the dead-letter topic.

`FailurePolicy` turns a failure into what to do (pause, retry after a delay, dead-letter) for
records and timers alike; the engine and the TestKit both ask it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from confluent_kafka import KafkaException

from choreograph.contracts.envelope import EnvelopeError
from choreograph.contracts.event import ContractViolation
from choreograph.contracts.serde import RegistryUnavailable, SerdeError, UnknownSubject
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


class TopologyError(ValueError):
    """A service's declaration does not add up: a handled type it never receives, an output it
    does not declare, a name used twice. Says what to add, where."""


class ForeignKey(TopologyError):
    """A handler touched keyed state of a key its partition does not own."""


class UndeclaredStore(KeyError):
    """A handler asked for a store the service does not declare."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "undeclared store"


class Failure(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    BAD_RECORD = "bad-record"
    PROGRAMMING = "programming"
    BUSINESS = "business"


BAD_RECORD: tuple[type[BaseException], ...] = (
    ContractViolation,
    SerdeError,
    EnvelopeError,
    NonRetryableError,
)


class InvalidEventBuilt(TypeError):
    """A handler built an event its contract refuses, from a record that was valid: the
    service's mistake (its values), not the record's, so it counts as a programming error."""

    def __init__(self, violation: ContractViolation, where: str) -> None:
        self.violation = violation
        super().__init__(
            f"{where} built an invalid {violation.event_type}; the record it handled was "
            f"valid, so change the values the code passes:\n  "
            + "\n  ".join(
                f"{path or '<root>'}: [{rule}] {msg}" for path, rule, msg in violation.problems
            )
        )


class VoidedStep(Exception):
    """A handler did a step its owner had voided (see `Settlement`): a mistake in the service."""


PROGRAMMING: tuple[type[BaseException], ...] = (
    InvalidEventBuilt,
    VoidedStep,
    TypeError,
    AttributeError,
    NameError,
    ImportError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    UndeclaredStore,
    TopologyError,
)
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    RegistryUnavailable,
    UnknownSubject,
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
    if isinstance(error, PROGRAMMING):
        return Failure.PROGRAMMING
    return Failure.BUSINESS


@dataclass(frozen=True)
class Decision:
    kind: Failure
    action: Literal["pause", "retry", "dead-letter"]
    delay_s: float = 0.0
    reason: str = ""  # why it is dead-lettered: contract, too-large or retries-exhausted
    attempts: int = 0  # attempts counted so far, this one included (pauses count none)


class FailurePolicy:
    """What to do about one failure of a record or a timer: the one place that decides."""

    def __init__(
        self,
        max_attempts: int,
        backoff: Callable[[int, float], float],
        infrastructure_backoff_max_s: float,
        rand: random.Random | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.infrastructure_backoff_max_s = infrastructure_backoff_max_s
        self.rand = rand or random.Random()

    def decide(self, error: BaseException, attempts: int, pauses: int = 0) -> Decision:
        """`attempts`: failed attempts counted before this one; `pauses`: consecutive pauses
        for an unavailable dependency before this one."""
        kind = classify(error)
        if kind is Failure.INFRASTRUCTURE:
            return Decision(kind, "pause", self.pause_s(pauses + 1), attempts=attempts)
        attempts += 1
        if kind is Failure.BAD_RECORD:
            reason = "too-large" if isinstance(error, RecordTooLarge) else "contract"
            return Decision(kind, "dead-letter", reason=reason, attempts=attempts)
        if attempts >= self.max_attempts:
            return Decision(kind, "dead-letter", reason="retries-exhausted", attempts=attempts)
        delay = self.backoff(attempts, self.rand.random())
        return Decision(kind, "retry", delay, attempts=attempts)

    def pause_s(self, pauses: int) -> float:
        """Bounded exponential back-off with jitter while a dependency is away."""
        cap = min(self.infrastructure_backoff_max_s, 0.5 * 2.0 ** min(pauses - 1, 16))
        return float(cap / 2 + self.rand.random() * cap / 2)
