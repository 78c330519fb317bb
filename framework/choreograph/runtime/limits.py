"""How large a record each topic accepts: the producer's own limit, lowered to the topic's
`max.message.bytes` where the broker says so. Checked before producing, so a record that can never
be written is dead-lettered for what it is instead of failing a whole transaction later.

The topic's limit also bounds a whole batch of records, so `smallest` tells the engine how large
its producer's batches may be."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from choreograph.runtime.context import Output
from choreograph.runtime.errors import RecordTooLarge
from choreograph.state.store import Store

RECORD_OVERHEAD = 512  # batch and record framing, on top of key, value and headers
# Headers are counted exactly only when key and value alone come within this of the limit: an
# envelope's headers take a few hundred bytes, so walking them for every record (the hot path)
# decides nothing. Larger headers that push a record over are refused by the producer, and the
# record is dead-lettered when its transaction is redone (as for any record the broker refuses).
HEADER_ALLOWANCE = 4608
DEFAULT_CLIENT_LIMIT = 1_000_000  # librdkafka's message.max.bytes
RETRY_LOOKUP_S = 30.0

Headers = Iterable[tuple[str, str | bytes | None]] | None


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header in headers or ():
        size += len(name) + (len(header) if header is not None else 0) + 8
    return size


class RecordLimits:
    def __init__(self, admin: AdminClient | None, producer_conf: dict[str, Any]) -> None:
        self.admin = admin
        self.client_limit = int(producer_conf.get("message.max.bytes", DEFAULT_CLIENT_LIMIT))
        self._topics: dict[str, int] = {}
        self.smallest = self.client_limit  # the lowest limit of any topic written so far
        self._retry_at: dict[str, float] = {}

    def limit(self, topic: str) -> int:
        found = self._topics.get(topic)
        if found is not None:
            return found
        if self.admin is None or time.monotonic() < self._retry_at.get(topic, 0.0):
            return self.client_limit
        try:
            resource = ConfigResource(ResourceType.TOPIC, topic)
            configs = self.admin.describe_configs([resource], request_timeout=5)[resource].result(5)
            entry = configs.get("max.message.bytes")
            topic_limit = int(entry.value) if entry is not None and entry.value else None
        except Exception:  # unknown topic (auto-created later) or broker away: ask again later
            self._retry_at[topic] = time.monotonic() + RETRY_LOOKUP_S
            return self.client_limit
        found = min(self.client_limit, topic_limit) if topic_limit else self.client_limit
        self._topics[topic] = found
        self.smallest = min(self.smallest, found)
        return found

    def fits(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> bool:
        return record_size(key, value, headers) <= self.limit(topic)

    def check(self, outputs: Iterable[Output], stores: Iterable[Store]) -> None:
        """Refuse, before anything is produced, a handling whose outputs or state writes are
        larger than their topics accept (RecordTooLarge): it could never commit."""
        topics = self._topics
        for out in outputs:
            limit = topics.get(out.topic)
            if limit is None:
                limit = self.limit(out.topic)
            bound = RECORD_OVERHEAD + HEADER_ALLOWANCE + len(out.key) + len(out.value or b"")
            if bound <= limit:
                continue  # far from the limit: the exact size decides nothing
            if not self.fits(out.topic, out.key, out.value, out.headers):
                size = record_size(out.key, out.value, out.headers)
                raise RecordTooLarge(
                    f"output to {out.topic} is {size} bytes, over its limit of "
                    f"{self.limit(out.topic)}"
                )
        limit = self.client_limit
        for store in stores:
            writes = store.message_writes()
            if not writes:
                continue
            for key, value in writes.items():
                size = RECORD_OVERHEAD + len(key) + (len(value) if value is not None else 0)
                if size > limit:
                    raise RecordTooLarge(
                        f"state written to store {store.name!r} under {key[:80]!r} is "
                        f"{size} bytes, over the changelog limit of {limit}"
                    )
