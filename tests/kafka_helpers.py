"""Small helpers the integration tests share."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient


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


def registry_client(url: str) -> SchemaRegistryClient:
    """A registry client whose every request is bounded and retried: without a timeout, one
    request the registry never answers (a stall under load) holds a test until pytest-timeout."""
    return SchemaRegistryClient(
        {"url": url, "timeout": 15, "max.retries": 3, "retries.wait.ms": 500}
    )
