"""An in-memory stand-in for the engine's transactions, for the TestKit.

What goes into it is kept, in order; a record larger than the producer accepts is refused as
the Kafka client refuses it (`MSG_SIZE_TOO_LARGE`). So the dead letters the TestKit keeps are
built, fitted and slimmed by the same `DlqWriter` as in production, and a letter that would not
fit production's DLQ does not fit here either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from choreograph.runtime.limits import RecordLimits, record_size


@dataclass(frozen=True)
class Produced:
    """One record as it went into the transaction."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)
    partition: int | None = None

    def header(self, name: str) -> str | None:
        """The last value of header `name`, as text."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value.decode() if isinstance(value, bytes) else value
        return found


class MemoryTransactions:
    def __init__(self, limits: RecordLimits) -> None:
        self.limits = limits
        self.open = False
        self.produced: list[Produced] = []

    def begin(self) -> None:
        self.open = True

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        size = record_size(key, value, headers or [])
        if size > self.limits.client_limit:
            raise KafkaException(
                KafkaError(
                    KafkaError.MSG_SIZE_TOO_LARGE,
                    f"a {size}-byte record is over the producer's message.max.bytes "
                    f"({self.limits.client_limit})",
                )
            )
        self.produced.append(Produced(topic, key, value, list(headers or []), partition))

    def commit(self) -> None:
        self.open = False
