"""Republishing a capture into a sandbox: the same records, in prefixed topics of any cluster,
each once however often it is run. Every record carries `replay_of` (its capture coordinates);
records already in the sandbox are found by that header and skipped. With `fresh_ids`, each
instance gets a new correlation id (the same one on every run of the same capture), so a
sandbox tracker sees them as new instances."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from choreograph.replay.capture import Capture, CapturedRecord
from choreograph.replay.source import read_topics
from choreograph.runtime.kafka_logs import KAFKA_LOG
from choreograph.runtime.partitioning import java_compatible
from choreograph.runtime.topics import create_missing

REPLAY_OF = "replay_of"


def coordinates(record: CapturedRecord) -> bytes:
    return f"{record.topic}:{record.partition}:{record.offset}".encode()


def _fresh(correlation_id: str, salt: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{correlation_id}"))


def publish(
    capture: Capture,
    bootstrap: str,
    prefix: str,
    *,
    fresh_ids: bool = False,
    client: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Publish what is not there yet; return (published, already there)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": KAFKA_LOG, **(client or {})}
    topics = sorted({prefix + r.topic for r in capture.records})
    _ensure(AdminClient(conf), topics, capture.records, prefix)
    present = {
        value
        for record in read_topics(bootstrap, topics, client=client)
        for name, value in record.headers
        if name == REPLAY_OF and value is not None
    }
    producer = Producer(java_compatible({**conf, "enable.idempotence": True}))
    published = skipped = 0
    for record in sorted(capture.records, key=lambda r: (r.timestamp, r.topic, r.offset)):
        mark = coordinates(record)
        if mark in present:
            skipped += 1
            continue
        headers = _headers(record, capture.created_at if fresh_ids else None)
        producer.produce(
            prefix + record.topic,
            value=record.value,
            key=record.key,
            headers=[*headers, (REPLAY_OF, mark)],
            partition=record.partition,
        )
        published += 1
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("the sandbox did not confirm every record; run it again")
    return published, skipped


def _headers(record: CapturedRecord, salt: str | None) -> list[tuple[str, bytes | None]]:
    if salt is None:
        return [(k, v) for k, v in record.headers if k != REPLAY_OF]
    out = []
    for name, value in record.headers:
        if name == "ce_correlationid" and value is not None:
            value = _fresh(value.decode(), salt).encode()
        if name != REPLAY_OF:
            out.append((name, value))
    return out


def _ensure(
    admin: AdminClient, topics: list[str], records: Iterable[CapturedRecord], prefix: str
) -> None:
    """Sandbox topics with at least the partitions the capture used (records keep theirs)."""
    needed: dict[str, int] = {}
    for record in records:
        topic = prefix + record.topic
        needed[topic] = max(needed.get(topic, 1), record.partition + 1)
    create_missing(admin, {t: needed.get(t, 1) for t in topics})
