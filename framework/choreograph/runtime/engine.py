"""Engine: runs a Service on Kafka. Consume, process, produce, commit; one instance per process.

Exactly-once (default): one transactional producer per instance (KIP-447), so outputs, changelog
writes and input offsets of all owned partitions commit together every commit interval; consumer
group metadata fences zombies after a rebalance. Store writes stay in memory until the commit
succeeds, then go to RocksDB, so local state never holds uncommitted data. At-least-once: plain
idempotent producer, flush, then offsets.

Rebalancing is cooperative (or KIP-848 `group.protocol=consumer`): on revoke the open transaction
is committed and only the revoked tasks close; on assign new tasks restore from their changelog,
starting at their local checkpoint.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from choreograph.contracts.serde import AvroSerde
from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.config import Guarantee, ServiceConfig
from choreograph.runtime.context import Output
from choreograph.runtime.dlq import dead_letter_headers
from choreograph.runtime.errors import goes_to_dlq_at_once
from choreograph.runtime.records import HeaderList, Record
from choreograph.runtime.service import Service
from choreograph.runtime.task import PartitionTask
from choreograph.runtime.timers import Timer
from choreograph.runtime.topics import ensure_service_topics
from choreograph.state.backends import RocksBackend
from choreograph.state.checkpoint import Checkpoint
from choreograph.state.restore import RestoreJob, restore

log = logging.getLogger("choreograph.engine")
TP = tuple[str, int]
CHECKPOINT_INTERVAL_S = 5.0
LAG_INTERVAL_S = 5.0
TIMER_CHECK_EVERY = 256  # records handled between checks for due timers


@dataclass
class RetryState:
    offset: int
    attempts: int = 0
    resume_at: float = 0.0
    waiting: bool = False


class Engine:
    def __init__(
        self,
        service: Service,
        config: ServiceConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.config = config
        self.clock = clock
        self.eos = config.guarantee is Guarantee.EXACTLY_ONCE
        self.metrics = ServiceMetrics(service.name)
        self.serde = AvroSerde(
            SchemaRegistryClient(config.registry_conf()),
            models=service.models.values(),
            auto_register=config.auto_register_schemas,
        )
        self.tasks: dict[int, PartitionTask] = {}
        self.positions: dict[TP, int] = {}  # next offset to commit, per input partition
        self.committed_offsets: dict[TP, int] = {}  # what this instance last committed
        self.retries: dict[TP, RetryState] = {}
        self.timer_failures: dict[tuple[int, str, str], tuple[int, float]] = {}
        self.changelog_next: dict[tuple[str, int], int] = {}
        self.dirty_checkpoints: set[tuple[str, int]] = set()
        self.txn_open = False
        self.stopping = threading.Event()
        self.last_commit = self.last_checkpoint = self.last_lag = time.monotonic()
        self._rand = random.Random()
        self._delivery_error: KafkaError | None = None
        self._counted: dict[tuple[str, str], Any] = {}
        self._pending_counts: dict[tuple[str, str], int] = {}
        self._timed: dict[str, Any] = {}
        self.consumer: Consumer
        self.producer: Producer

    # -- lifecycle -----------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, self.config.metrics_host)
        admin = AdminClient(self.config.client_conf())
        ensure_service_topics(admin, self.service)
        self.producer = Producer(self._producer_conf())
        if self.eos:
            self.producer.init_transactions(60)
        self.consumer = Consumer(self._consumer_conf())
        self.consumer.subscribe(
            self.service.inputs,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("started", extra={"service": self.service.name, "eos": self.eos})
        try:
            while not self.stopping.is_set():
                self.step()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Finish: commit what was processed, leave the group, write checkpoints, close."""
        try:
            self.commit(timeout=self.config.shutdown_timeout_s)
        except KafkaException:
            log.exception("final commit failed; the next owner reprocesses from the last commit")
        self.consumer.close()  # revokes (and so checkpoints and closes) every remaining task
        for partition in list(self.tasks):
            self._close_task(partition)
        self.producer.flush(self.config.shutdown_timeout_s)
        log.info("stopped", extra={"service": self.service.name})

    def _consumer_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            **self.config.client_conf(),
            "group.id": self.service.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
        if self.config.group_protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["partition.assignment.strategy"] = "cooperative-sticky"
            conf["group.instance.id"] = f"{self.service.name}-{self.config.instance_id}"
            conf["session.timeout.ms"] = 10_000
        return {**conf, **self.config.consumer}

    def _producer_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            **self.config.client_conf(),
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        if self.eos:
            conf["transactional.id"] = f"{self.service.name}-{self.config.instance_id}"
            conf["transaction.timeout.ms"] = self.config.transaction_timeout_ms
        return {**conf, **self.config.producer}

    # -- the loop ------------------------------------------------------------------------------

    def step(self) -> None:
        messages = self.consumer.consume(self.config.max_batch, 0.05)
        now = self.clock()
        for i, msg in enumerate(messages):
            if i and i % TIMER_CHECK_EVERY == 0:  # deadlines do not wait for a whole batch
                now = self.clock()
                self._fire_timers(now)
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"error": str(err)})
                continue
            partition = msg.partition() or 0
            if self.retries:
                state = self.retries.get((msg.topic() or "", partition))
                if state is not None and state.waiting:
                    continue  # re-fetched after the retry back-off
            task = self.tasks.get(partition)
            if task is not None:  # else revoked meanwhile
                self._handle(task, msg, now)
        self._flush_counts()
        self._fire_timers(self.clock())
        self._resume_retries()
        tick = time.monotonic()
        if (tick - self.last_commit) * 1000 >= self.config.commit_interval_ms:
            self.commit()
        if tick - self.last_lag >= LAG_INTERVAL_S:
            self._report_lag()

    def _handle(self, task: PartitionTask, msg: Message, now: datetime) -> None:
        started = time.perf_counter()
        try:
            headers = msg.headers()
            if isinstance(headers, dict):  # the client's producer-side form; consumers give lists
                headers = list(headers.items())
            event_type, outcome, outputs = task.process(msg.key(), msg.value(), headers, now)
        except Exception as error:
            task.end_message(ok=False)
            self._failed(Record.of(msg), error)
            return
        task.end_message(ok=True)
        if outputs:
            self._produce_outputs(outputs)
        tp = (msg.topic() or "", task.partition)
        self.positions[tp] = (msg.offset() or 0) + 1
        if self.retries:
            self.retries.pop(tp, None)
        self._count(event_type, outcome)
        if outcome == "ok":
            timer = self._timed.get(event_type)
            if timer is None:
                timer = self._timed[event_type] = self.metrics.handler_seconds.labels(
                    self.service.name, event_type
                )
            timer.observe(time.perf_counter() - started)

    def _count(self, event_type: str, outcome: str) -> None:
        """Count locally; `_flush_counts` publishes once per step (a metric update takes a lock)."""
        key = (event_type, outcome)
        self._pending_counts[key] = self._pending_counts.get(key, 0) + 1

    def _flush_counts(self) -> None:
        for (event_type, outcome), n in self._pending_counts.items():
            counter = self._counted.get((event_type, outcome))
            if counter is None:
                counter = self._counted[(event_type, outcome)] = self.metrics.events.labels(
                    self.service.name, event_type, outcome
                )
            counter.inc(n)
        self._pending_counts.clear()

    def _failed(self, record: Record, error: Exception) -> None:
        tp = record.tp
        state = self.retries.get(tp)
        if state is None or state.offset != record.offset:
            state = self.retries[tp] = RetryState(record.offset)
        state.attempts += 1
        event_type = record.header("ce_type") or "unknown"
        at_once = goes_to_dlq_at_once(error)
        if at_once or state.attempts >= self.config.retry.max_attempts:
            reason = "contract" if at_once else "retries-exhausted"
            self._begin()
            headers = dead_letter_headers(
                record.headers,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                service=self.service.name,
                reason=reason,
                error=error,
                attempts=state.attempts,
            )
            self._produce(
                self.service.dlq_topic, record.value, record.key, headers, record.partition
            )
            self.positions[tp] = record.offset + 1
            self.retries.pop(tp, None)
            self.metrics.dlq.labels(self.service.name, reason).inc()
            self._count(event_type, "dlq")
            log.warning(
                "dead-lettered",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason": reason,
                    "error": repr(error),
                    "attempts": state.attempts,
                },
            )
            return
        delay = self.config.retry.backoff(state.attempts, self._rand.random())
        state.resume_at, state.waiting = time.monotonic() + delay, True
        partition = TopicPartition(record.topic, record.partition, record.offset)
        self.consumer.pause([partition])
        self.consumer.seek(partition)
        self.metrics.retries.labels(self.service.name).inc()
        self._count(event_type, "retried")
        log.info(
            "retrying",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "attempt": state.attempts,
                "delay_s": round(delay, 3),
                "error": repr(error),
            },
        )

    def _resume_retries(self) -> None:
        tick = time.monotonic()
        for (topic, partition), state in self.retries.items():
            if state.waiting and tick >= state.resume_at:
                state.waiting = False
                self.consumer.resume([TopicPartition(topic, partition)])

    def _fire_timers(self, now: datetime) -> None:
        for partition, task in list(self.tasks.items()):
            for timer in task.due_timers(now, limit=500):
                self._fire(partition, task, timer, now)

    def _fire(self, partition: int, task: PartitionTask, timer: Timer, now: datetime) -> None:
        ident = (partition, timer.key, timer.name)
        failed = self.timer_failures.get(ident)
        if failed is not None and time.monotonic() < failed[1]:
            return  # backing off after a failure
        try:
            outputs = task.fire(timer, now)
        except Exception as error:
            task.end_message(ok=False)
            attempts = (failed[0] if failed else 0) + 1
            if attempts < self.config.retry.max_attempts:
                delay = self.config.retry.backoff(attempts, self._rand.random())
                self.timer_failures[ident] = (attempts, time.monotonic() + delay)
                return  # due again after the back-off
            self._dead_letter_timer(partition, task, timer, error, attempts)
            return
        task.end_message(ok=True)
        self.timer_failures.pop(ident, None)
        self._produce_outputs(outputs)
        lateness = max(0.0, self.clock().timestamp() - timer.deadline_ms / 1000)
        self.metrics.timer_lateness.labels(self.service.name).observe(lateness)
        self.metrics.timers_fired.labels(self.service.name).inc()

    def _dead_letter_timer(
        self, partition: int, task: PartitionTask, timer: Timer, error: Exception, attempts: int
    ) -> None:
        """A timer whose handler keeps failing leaves the timer store for the DLQ, in the same
        transaction, so nothing is lost and an operator can see it."""
        task.timers.fired(timer)
        task.end_message(ok=True)
        self.timer_failures.pop((partition, timer.key, timer.name), None)
        self._begin()
        value = json.dumps(
            {"timer": timer.name, "deadline_ms": timer.deadline_ms, "payload": timer.payload},
            default=str,
        ).encode()
        headers = dead_letter_headers(
            [("dlq_timer", timer.name)],
            topic=None,
            partition=partition,
            offset=-1,
            service=self.service.name,
            reason="timer-failed",
            error=error,
            attempts=attempts,
        )
        self._produce(self.service.dlq_topic, value, timer.key.encode(), headers, partition)
        self.metrics.dlq.labels(self.service.name, "timer-failed").inc()
        log.error(
            "timer dead-lettered after repeated failures",
            extra={"key": timer.key, "timer": timer.name, "error": repr(error)},
        )

    # -- producing and committing --------------------------------------------------------------

    def _begin(self) -> None:
        if self.eos and not self.txn_open:
            self.producer.begin_transaction()
            self.txn_open = True

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: HeaderList | None = None,
        partition: int | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        # Under EOS a failed delivery fails the commit, so outputs need no callback of their own.
        callback = on_delivery or (None if self.eos else self._delivered)
        kwargs: dict[str, Any] = {"headers": headers}
        if callback is not None:
            kwargs["on_delivery"] = callback
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _produce_outputs(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        self._begin()
        if not self.eos:
            for out in outputs:
                self._produce(out.topic, out.value, out.key, out.headers)
            return
        produce = self.producer.produce  # hot path: no callback under EOS, no kwargs dict
        for out in outputs:
            try:
                produce(out.topic, out.value, out.key, headers=out.headers)
            except BufferError:
                self._produce(out.topic, out.value, out.key, out.headers)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._delivery_error = err

    def _changelog_delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_error = err
            return
        store = (msg.topic() or "")[len(self.service.name) + 1 : -len(".changelog")]
        key = (store, msg.partition() or 0)
        self.changelog_next[key] = (msg.offset() or 0) + 1
        self.dirty_checkpoints.add(key)

    def commit(self, timeout: float = 60.0) -> None:
        """Commit outputs, changelog writes and offsets of every owned partition at once.

        Bounded by `timeout`: past it the transaction is aborted (or, at-least-once, the offsets
        are not committed) and the work is redone from the last commit, by this instance or by
        the partitions' next owner."""
        self.last_commit = time.monotonic()
        writes = [(p, w) for p, task in self.tasks.items() for w in task.changelog_writes()]
        if not writes and not self.positions and not self.txn_open:
            self._maybe_checkpoint()
            return
        started = time.perf_counter()
        self._begin()
        last = {(store, partition): i for i, (partition, (store, _, _)) in enumerate(writes)}
        for i, (partition, (store, key, value)) in enumerate(writes):
            # Only the last write per changelog partition reports its offset: the checkpoint.
            report = self._changelog_delivered if last[(store, partition)] == i else None
            self._produce(
                self.service.changelog_topic(store),
                value,
                key,
                partition=partition,
                on_delivery=report,
            )
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
        if self.eos:
            if not self._commit_transaction(offsets, time.monotonic() + timeout):
                return
        else:
            unsent = self.producer.flush(timeout)
            if self._delivery_error is not None or unsent:
                log.error(
                    "delivery failed; reprocessing since the last commit",
                    extra={"error": str(self._delivery_error), "unsent": unsent},
                )
                self._delivery_error = None
                self._rewind()
                return
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        self.producer.poll(0)  # serve delivery reports: checkpoint offsets, at-least-once failures
        for task in self.tasks.values():
            task.committed()
        self.committed_offsets.update(self.positions)
        self.positions.clear()
        self.metrics.commits.labels(self.service.name).inc()
        self.metrics.commit_seconds.labels(self.service.name).observe(time.perf_counter() - started)
        self._maybe_checkpoint()

    def _commit_transaction(self, offsets: list[TopicPartition], deadline: float) -> bool:
        def left() -> float:
            return max(deadline - time.monotonic(), 0.1)

        try:
            if offsets:
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), left()
                )
            while True:
                try:
                    self.producer.commit_transaction(left())
                    break
                except KafkaException as exc:
                    if not exc.args[0].retriable() or time.monotonic() >= deadline:
                        raise
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not (error.txn_requires_abort() or error.retriable()):
                raise
            log.warning("transaction aborted", extra={"error": str(error)})
            self._abort()
            return False
        self.txn_open = False
        return True

    def _abort(self) -> None:
        if self.eos and self.txn_open:
            self.producer.abort_transaction(60)
            self.txn_open = False
            self.metrics.aborts.labels(self.service.name).inc()
        self._rewind()

    def _rewind(self, leaving: frozenset[TP] = frozenset()) -> None:
        """Forget uncommitted work and seek every partition this instance keeps back to its last
        committed offset, so the inputs of aborted work are processed again."""
        for task in self.tasks.values():
            task.aborted()
        self.positions.clear()
        self.retries.clear()
        kept = [tp for tp in self.consumer.assignment() if (tp.topic, tp.partition) not in leaving]
        if not kept:
            return
        unknown = [tp for tp in kept if (tp.topic, tp.partition) not in self.committed_offsets]
        from_broker = {
            (tp.topic, tp.partition): tp.offset
            for tp in (self.consumer.committed(unknown, timeout=30) if unknown else [])
        }
        for tp in kept:
            key = (tp.topic, tp.partition)
            offset = self.committed_offsets.get(key, from_broker.get(key, -1))
            self.consumer.seek(
                TopicPartition(tp.topic, tp.partition, offset if offset >= 0 else OFFSET_BEGINNING)
            )
        self.consumer.resume(kept)

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self.last_checkpoint < CHECKPOINT_INTERVAL_S:
            return
        self.last_checkpoint = time.monotonic()
        for store, partition in list(self.dirty_checkpoints):
            task = self.tasks.get(partition)
            if task is not None:
                self._checkpoint(task, store, synced=False)

    def _checkpoint(self, task: PartitionTask, store: str, synced: bool) -> None:
        """Record how far local state is complete: just past this instance's last committed
        changelog write (it is the partition's only writer)."""
        key = (store, task.partition)
        if key not in self.dirty_checkpoints:
            return
        if synced:
            task.stores[store].backend.flush()
        self._checkpoint_file(store, task.partition).write(self.changelog_next[key], synced)
        self.dirty_checkpoints.discard(key)

    # -- partitions ----------------------------------------------------------------------------

    def _store_path(self, store: str, partition: int) -> Path:
        return self.config.state_dir / self.service.name / str(partition) / store

    def _checkpoint_file(self, store: str, partition: int) -> Checkpoint:
        return Checkpoint(
            self.config.state_dir / self.service.name / str(partition) / f"{store}.checkpoint"
        )

    def _open_task(self, partition: int) -> tuple[PartitionTask, list[RestoreJob]]:
        """Open the partition's stores; return the task and what to restore into it."""
        jobs: list[RestoreJob] = []

        def open_backend(store: str, p: int) -> RocksBackend:
            start = self._checkpoint_file(store, p).read()
            backend = RocksBackend(self._store_path(store, p))
            if start is None:  # no checkpoint: local files cannot be trusted, start empty
                backend.clear()
            gauge = self.metrics.restore_remaining.labels(self.service.name, store, str(p))

            def progress(_done: int, left: int, gauge: Any = gauge) -> None:
                gauge.set(left)

            jobs.append(
                RestoreJob(self.service.changelog_topic(store), p, backend, start, progress)
            )
            return backend

        return PartitionTask(self.service, partition, open_backend, self.serde), jobs

    def _restore(self, tasks: dict[int, PartitionTask], jobs: list[RestoreJob]) -> None:
        started = time.monotonic()
        restore(self.config.client_conf(), jobs)
        prefix = len(self.service.name) + 1
        for job in jobs:
            store = job.topic[prefix : -len(".changelog")]
            self.metrics.restore_remaining.labels(self.service.name, store, str(job.partition)).set(
                0
            )
            self.metrics.restored.labels(self.service.name, store).inc(job.restored)
            if job.restored or job.cleared:
                tasks[job.partition].stores[store].backend.flush()
                self._checkpoint_file(store, job.partition).write(job.next_offset, synced=True)
        log.info(
            "restored",
            extra={
                "partitions": sorted(tasks),
                "records": sum(j.restored for j in jobs),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _close_task(self, partition: int) -> None:
        task = self.tasks.pop(partition, None)
        if task is None:
            return
        for store in task.stores:
            self._checkpoint(task, store, synced=True)
        task.close()
        for key in [k for k in self.changelog_next if k[1] == partition]:
            del self.changelog_next[key]
        self.metrics.partitions.labels(self.service.name).set(len(self.tasks))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        opened: dict[int, PartitionTask] = {}
        jobs: list[RestoreJob] = []
        for partition in sorted({tp.partition for tp in partitions} - set(self.tasks)):
            opened[partition], task_jobs = self._open_task(partition)
            jobs += task_jobs
        self._restore(opened, jobs)
        self.tasks.update(opened)
        self.metrics.partitions.labels(self.service.name).set(len(self.tasks))
        log.info(
            "assigned", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit(timeout=self.config.revoke_timeout_s)  # the rebalance waits on this
        self._drop(partitions)
        log.info(
            "revoked", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions are gone without a chance to commit: abort, and rewind what is kept."""
        if self.eos and self.txn_open:
            self.producer.abort_transaction(60)
            self.txn_open = False
            self.metrics.aborts.labels(self.service.name).inc()
        self._rewind(leaving=frozenset((tp.topic, tp.partition) for tp in partitions))
        self._drop(partitions)
        log.warning(
            "lost", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _drop(self, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        for tp in revoked:
            self.positions.pop(tp, None)
            self.retries.pop(tp, None)
            self.committed_offsets.pop(tp, None)  # the next owner may move it on
        still = {tp.partition for tp in self.consumer.assignment()} - {p for _, p in revoked}
        for partition in {p for _, p in revoked} - still:
            self._close_task(partition)

    def _report_lag(self) -> None:
        self.last_lag = time.monotonic()
        assigned = self.consumer.assignment()
        if not assigned:
            return
        for tp in self.consumer.position(assigned):
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                self.metrics.lag.labels(self.service.name, tp.topic, str(tp.partition)).set(
                    high - tp.offset
                )
