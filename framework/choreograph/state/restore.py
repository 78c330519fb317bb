"""Restore a store partition from its changelog, from the checkpoint to the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from choreograph.state.backends import Backend

BATCH = 10_000


def restore_partition(
    consumer_conf: dict[str, Any],
    topic: str,
    partition: int,
    backend: Backend,
    from_offset: int | None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 600.0,
) -> tuple[int, int]:
    """Apply changelog records [from_offset, end) to `backend`; return (records, next offset).

    Reads committed records only, so writes of aborted transactions never reach local state.
    """
    consumer = Consumer(
        {
            **consumer_conf,
            "group.id": f"restore-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        start = from_offset if from_offset is not None and from_offset >= low else OFFSET_BEGINNING
        if start != OFFSET_BEGINNING and start >= high:
            return 0, start
        consumer.assign([TopicPartition(topic, partition, start)])
        applied, next_offset = 0, (from_offset or low)
        deadline = time.monotonic() + timeout
        done = False
        while not done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"restoring {topic}[{partition}] took over {timeout}s")
            batch: dict[bytes, bytes | None] = {}
            for msg in consumer.consume(BATCH, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise RuntimeError(f"restore of {topic}[{partition}] failed: {err}")
                batch[msg.key() or b""] = msg.value()
                next_offset = (msg.offset() or 0) + 1
                applied += 1
            if batch:
                backend.write(batch)
                if progress:
                    progress(applied, max(high - next_offset, 0))
        position = consumer.position([TopicPartition(topic, partition)])[0].offset
        return applied, max(next_offset, position if position >= 0 else next_offset)
    finally:
        consumer.close()
