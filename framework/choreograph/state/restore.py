"""Restore store partitions from their changelogs, from the offset each recorded to the end.

One consumer restores a whole assignment: every (changelog, partition) that is behind is assigned
at once and read until each reaches its end, so start-up cost does not grow with the number of
stores and partitions that are already current.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from choreograph.state.backends import Backend

BATCH = 10_000
log = logging.getLogger("choreograph.restore")


@dataclass
class RestoreJob:
    topic: str
    partition: int
    store: str  # the store it restores (its changelog is `topic`)
    backend: Backend
    from_offset: int | None  # None: from the beginning
    progress: Callable[[int, int], None] | None = None
    restored: int = 0
    next_offset: int = 0
    cleared: bool = False  # local state was ahead of its changelog and was dropped


PROGRESS_EVERY_S = 5.0  # a restore under way says how far it is this often


def restore(
    consumer_conf: dict[str, Any],
    jobs: list[RestoreJob],
    timeout: float = 600.0,
    tick: Callable[[], None] | None = None,
) -> None:
    """Apply changelog records [from_offset, end) to each job's backend, each batch with the
    offset just past it; read committed only, so writes of aborted transactions never reach
    local state. `tick`: called as the restore goes round (the service's liveness beat). A
    restore under way logs its progress every few seconds: records restored, per second, and
    how many are left."""
    if not jobs:
        return
    _restore(consumer_conf, jobs, timeout, tick or (lambda: None))
    for job in jobs:  # where each stands now, a store found empty or cleared too
        if job.backend.applied() != job.next_offset:
            job.backend.write({}, job.next_offset)


def _restore(
    consumer_conf: dict[str, Any], jobs: list[RestoreJob], timeout: float, tick: Callable[[], None]
) -> None:
    consumer = Consumer(
        {
            **consumer_conf,
            "group.id": "choreograph-restore",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    # A read_committed consumer's end of a partition is its last stable offset: a transaction
    # still open on the changelog (the previous owner's commit whose markers are on their way,
    # or one the coordinator is about to abort) would end the restore before its records. The
    # end to reach is the high watermark, which only a read_uncommitted consumer reports.
    watermarks = Consumer(
        {**consumer_conf, "group.id": "choreograph-restore", "isolation.level": "read_uncommitted"}
    )
    try:
        by_tp = {(j.topic, j.partition): j for j in jobs}
        pending: dict[tuple[str, int], RestoreJob] = {}
        highs: dict[tuple[str, int], int] = {}
        for job in jobs:
            low, high = watermarks.get_watermark_offsets(
                TopicPartition(job.topic, job.partition), timeout=30
            )
            if job.from_offset is not None and job.from_offset > high:
                # The recorded offset is past the changelog's end: the topic was deleted or the
                # cluster reset, so the local state belongs to a history that is gone.
                log.warning(
                    "local state of %s[%d] is ahead of its changelog (%d > %d): restoring anew",
                    job.topic,
                    job.partition,
                    job.from_offset,
                    high,
                )
                job.backend.clear()
                job.from_offset, job.cleared = None, True
            start = (
                job.from_offset if job.from_offset is not None and job.from_offset >= low else None
            )
            job.next_offset = start if start is not None else low
            if job.next_offset >= high:
                continue  # already current
            pending[(job.topic, job.partition)] = job
            highs[(job.topic, job.partition)] = high
        if not pending:
            return
        consumer.assign(
            [
                TopicPartition(
                    t, p, j.next_offset if j.from_offset is not None else OFFSET_BEGINNING
                )
                for (t, p), j in pending.items()
            ]
        )
        started = time.monotonic()
        deadline, said = started + timeout, started
        while pending:
            tick()
            now = time.monotonic()
            if now - said >= PROGRESS_EVERY_S:
                said = now
                _say_progress(jobs, pending, highs, now - started)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"restoring {sorted(pending)} took over {timeout}s (a transaction left open "
                    "on a changelog ends at the producers' transaction.timeout.ms)"
                )
            batches: dict[tuple[str, int], dict[bytes, bytes | None]] = {}
            for msg in consumer.consume(BATCH, 0.5):
                tp = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reached = pending.get(tp)
                        end = msg.offset() or 0
                        if reached is not None:
                            reached.next_offset = max(reached.next_offset, end)
                            if end < highs[tp]:  # as it is now (a broker may have lost a tail)
                                highs[tp] = watermarks.get_watermark_offsets(
                                    TopicPartition(*tp), timeout=10
                                )[1]
                            if end >= highs[tp]:
                                pending.pop(tp)
                            # else: a transaction is open up to the high watermark; its
                            # markers move the end on, and the end comes again
                        continue
                    raise RuntimeError(f"restore of {tp[0]}[{tp[1]}] failed: {err}")
                running = pending.get(tp)
                if running is None:
                    continue
                batches.setdefault(tp, {})[msg.key() or b""] = msg.value()
                running.next_offset = (msg.offset() or 0) + 1
                running.restored += 1
            for tp, batch in batches.items():
                done = by_tp[tp]
                done.backend.write(batch, done.next_offset)
                if done.progress:
                    done.progress(done.restored, max(highs[tp] - done.next_offset, 0))
    finally:
        consumer.close()
        watermarks.close()


def _say_progress(
    jobs: list[RestoreJob],
    pending: dict[tuple[str, int], RestoreJob],
    highs: dict[tuple[str, int], int],
    seconds: float,
) -> None:
    restored = sum(j.restored for j in jobs)
    left = sum(max(highs[tp] - j.next_offset, 0) for tp, j in pending.items())
    rate = restored / seconds if seconds > 0 else 0.0
    log.info(
        "restoring: %d records restored (%.0f a second), %d left in %d partition(s)",
        restored,
        rate,
        left,
        len(pending),
        extra={
            "records": restored,
            "per_s": round(rate),
            "remaining": left,
            "partitions": len(pending),
        },
    )
