"""Reading a capture's records from the cluster: committed records only, by headers alone (no
body is decoded to choose). `read_topics` scans from the start of each topic (or the first offset
at `since`) to its end at the time of asking, with progress as it goes; `read_at` fetches records
whose coordinates are known (the saga tracker keeps them for every event on a timeline), with no
scan."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from choreograph.replay.capture import CapturedRecord, Progress
from choreograph.runtime.context import Origin
from choreograph.runtime.kafka_logs import KAFKA_LOG
from choreograph.runtime.records import Record


def _consumer(bootstrap: str, client: dict[str, Any] | None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"choreograph-capture-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": KAFKA_LOG,
            **(client or {}),
        }
    )


def _captured(msg: Any) -> CapturedRecord:
    record = Record.of(msg)
    headers = [
        (name, value.encode() if isinstance(value, str) else value)
        for name, value in record.headers
    ]
    return CapturedRecord(
        record.topic, record.partition, record.offset, msg.timestamp()[1], record.key,
        record.value, headers,
    )  # fmt: skip


class MissingRecords(ValueError):
    """Coordinates that name no readable record: deleted by retention, or never committed."""


def read_at(
    bootstrap: str,
    origins: Iterable[Origin],
    *,
    client: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> Iterator[CapturedRecord]:
    """The records at `origins`, by partition and offset. Raises MissingRecords naming those
    that are gone (retention deleted them, or they were aborted) rather than capturing less than
    asked without a word."""
    wanted: dict[tuple[str, int], list[int]] = {}
    for origin in sorted(set(origins), key=lambda o: (o.topic, o.partition, o.offset)):
        wanted.setdefault((origin.topic, origin.partition), []).append(origin.offset)
    consumer = _consumer(bootstrap, client)
    missing: list[str] = []
    try:
        for (topic, partition), offsets in wanted.items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            pending = [o for o in offsets if low <= o < high]
            missing += [f"{topic}/{partition}/{o}" for o in offsets if not low <= o < high]
            if pending:
                consumer.assign([TopicPartition(topic, partition, pending[0])])
            while pending:
                msg = consumer.poll(timeout_s)
                if msg is None or msg.error() is not None:
                    missing += [f"{topic}/{partition}/{o}" for o in pending]
                    break
                got = msg.offset() or 0
                skipped = [o for o in pending if o < got]  # transaction markers or aborted
                missing += [f"{topic}/{partition}/{o}" for o in skipped]
                if got in pending:
                    yield _captured(msg)
                pending = [o for o in pending if o > got]
                if pending and pending[0] != got + 1:  # a gap: seek rather than read through
                    consumer.assign([TopicPartition(topic, partition, pending[0])])
    finally:
        consumer.close()
    if missing:
        raise MissingRecords(
            f"{len(missing)} record(s) on the timelines can no longer be read (retention, or "
            f"never committed): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )


def read_topics(
    bootstrap: str,
    topics: list[str],
    *,
    since_ms: int | None = None,
    progress: Progress | None = None,
    client: dict[str, Any] | None = None,
) -> Iterator[CapturedRecord]:
    consumer = _consumer(bootstrap, client)
    try:
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise ValueError(f"topic {topic} does not exist")
            partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
            if since_ms is not None:
                starts = consumer.offsets_for_times(
                    [TopicPartition(topic, p.partition, since_ms) for p in partitions], timeout=30
                )
            else:
                starts = [TopicPartition(topic, p.partition, -2) for p in partitions]  # beginning
            ends = {
                p.partition: consumer.get_watermark_offsets(p, timeout=30)[1] for p in partitions
            }
            consumer.assign(starts)
            remaining = {p.partition for p in partitions if ends[p.partition] > 0}
            read = idle = 0
            while remaining and idle < 3:  # three quiet seconds: nothing more is committed
                batch = consumer.consume(500, timeout=1.0)
                idle = 0 if batch else idle + 1
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    if (msg.offset() or 0) >= ends[msg.partition() or 0]:
                        continue
                    read += 1
                    yield _captured(msg)
                for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                    if tp.offset >= ends[tp.partition]:  # past the end seen when we began
                        remaining.discard(tp.partition)
                if progress is not None:
                    progress(topic, read, len(remaining))
    finally:
        consumer.close()
