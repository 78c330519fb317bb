"""Reading a capture's records from the cluster: committed records only, by headers alone (no
body is decoded to choose), from the start of each topic (or the first offset at `since`) to its
end at the time of asking, with progress as it goes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from choreograph.replay.capture import CapturedRecord, Progress
from choreograph.runtime.kafka_logs import KAFKA_LOG
from choreograph.runtime.records import Record


def read_topics(
    bootstrap: str,
    topics: list[str],
    *,
    since_ms: int | None = None,
    progress: Progress | None = None,
    client: dict[str, Any] | None = None,
) -> Iterator[CapturedRecord]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"choreograph-capture-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "logger": KAFKA_LOG,
        **(client or {}),
    }
    consumer = Consumer(conf)
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
                    record = Record.of(msg)
                    if record.offset >= ends[record.partition]:
                        continue
                    read += 1
                    headers = [
                        (name, value.encode() if isinstance(value, str) else value)
                        for name, value in record.headers
                    ]
                    yield CapturedRecord(
                        topic, record.partition, record.offset, msg.timestamp()[1], record.key,
                        record.value, headers,
                    )  # fmt: skip
                for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                    if tp.offset >= ends[tp.partition]:  # past the end seen when we began
                        remaining.discard(tp.partition)
                if progress is not None:
                    progress(topic, read, len(remaining))
    finally:
        consumer.close()
