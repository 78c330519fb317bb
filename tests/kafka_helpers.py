"""Small helpers the integration tests share."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer


def committed_consumer(bootstrap: str, topic: str) -> Consumer:
    """A consumer in a fresh group that reads `topic` from the start, committed records only."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer
