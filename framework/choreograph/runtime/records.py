"""A consumed record with the types Kafka guarantees for a message without error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Message

HeaderList = list[tuple[str, str | bytes | None]]


def header(headers: Sequence[tuple[str, str | bytes | None]] | None, name: str) -> str | None:
    """The first value of header `name`, as text (undecodable bytes replaced)."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: HeaderList

    @classmethod
    def of(cls, msg: Message) -> Record:
        raw = msg.headers() or []
        headers: HeaderList = list(raw.items()) if isinstance(raw, dict) else raw
        return cls(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            msg.value(),
            headers,
        )

    @property
    def tp(self) -> tuple[str, int]:
        return self.topic, self.partition

    def header(self, name: str) -> str | None:
        return header(self.headers, name)
