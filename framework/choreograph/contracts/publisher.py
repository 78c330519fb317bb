"""Publish events from code that is not a stream processor (a web app, a batch job, a script).

Inside a processor the runtime emits through its own transactional producer; this publisher is
for the edges where a process starts. It validates, encodes and wraps every event the same way.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from typing import Any

from confluent_kafka import Producer

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import Event
from choreograph.contracts.serde import AvroSerde, RegistryUnavailable
from choreograph.runtime.partitioning import java_compatible

log = logging.getLogger("choreograph.publisher")


def topic_of(event: type[Event]) -> str:
    """The topic a generated model is published to (from schemas.yaml, else `<domain>.events`)."""
    return event.__avro_topic__ or f"{event.__avro_domain__}.events"


def encode_event(
    serde: AvroSerde,
    event: Event,
    key: str,
    source: str,
    *,
    topic: str | None = None,
    parent: Envelope | None = None,
    correlation_id: str | None = None,
    now: datetime | None = None,
) -> tuple[str, bytes, Envelope]:
    """Topic, value bytes and envelope of an event about to be published: the one way every
    publishing path (publisher, handlers, TestKit) turns an event into a record."""
    target = topic or topic_of(type(event))
    value = serde.serialize(event, target)
    envelope = Envelope.new(
        event.__avro_name__, source, key, parent=parent, correlation_id=correlation_id, now=now
    )
    return target, value, envelope


class EventPublisher:
    def __init__(
        self,
        producer: Producer | dict[str, Any],
        serde: AvroSerde,
        source: str,
        *,
        registry_wait_s: float = 30.0,
    ) -> None:
        """`registry_wait_s` bounds how long `publish` waits for an unreachable schema registry
        (it retries with back-off meanwhile) before it raises `RegistryUnavailable`."""
        if isinstance(producer, dict):
            producer = Producer(
                java_compatible({"enable.idempotence": True, "acks": "all", **producer})
            )
        self.producer = producer
        self.serde = serde
        self.source = source
        self.registry_wait_s = registry_wait_s

    def publish(
        self,
        event: Event,
        key: str,
        *,
        topic: str | None = None,
        correlation_id: str | None = None,
        parent: Envelope | None = None,
    ) -> Envelope:
        """Validate, encode and send `event` keyed by its business key; return its envelope.

        Without `parent` or `correlation_id` the event follows the event being handled, or, at
        the start of a process, becomes the first event of a new process instance.
        """
        give_up = time.monotonic() + self.registry_wait_s
        delay, warned = 0.2, False
        while True:
            try:
                target, value, envelope = encode_event(
                    self.serde,
                    event,
                    key,
                    self.source,
                    topic=topic,
                    parent=parent,
                    correlation_id=correlation_id,
                )
                break
            except RegistryUnavailable as unavailable:
                left = give_up - time.monotonic()
                if left <= 0:
                    raise RegistryUnavailable(
                        unavailable.url,
                        f"no answer within {self.registry_wait_s:.0f} s "
                        f"({unavailable.cause}); {event.__avro_name__} was not published",
                    ) from unavailable
                if not warned:
                    log.warning(
                        "schema registry unavailable; retrying", extra={"error": str(unavailable)}
                    )
                    warned = True
                time.sleep(min(left, delay * (0.5 + random.random() / 2)))
                delay = min(delay * 2, 5.0)
        self.producer.produce(target, key=key.encode(), value=value, headers=envelope.to_headers())
        self.producer.poll(0)
        return envelope

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} events not acknowledged after {timeout}s")
