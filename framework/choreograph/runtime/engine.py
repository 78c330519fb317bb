"""Engine: runs a Service on Kafka. Consume, process, produce, commit; one instance per process.

Exactly-once (default): one transactional producer per instance (KIP-447), so outputs, changelog
writes and input offsets of all owned partitions commit together every commit interval; consumer
group metadata fences zombies after a rebalance. Store writes stay in memory until the commit
succeeds, then go to RocksDB, so local state never holds uncommitted data. At-least-once: plain
idempotent producer, flush, then offsets.

Rebalancing is cooperative for a single input (or KIP-848 `group.protocol=consumer`); a service
with several inputs uses range assignment (eager on the classic protocol), the one that keeps
partition N of every input on one instance. On revoke the open transaction is committed and the
revoked tasks close; on assign new tasks restore from their changelog, starting at the changelog
offset their local state recorded.

Failures follow one policy (`errors.classify`): a dependency that is away pauses the affected
partitions (or, for the broker, the whole loop) and is retried until it answers; a bad record is
dead-lettered at once, as a headers-only letter when even its copy would be too large; a
handler's own errors are retried a bounded number of times. Transactions belong to
`Transactions`; every blocking client call here has a bound the watchdog enforces. A commit whose
outcome is unknown rebuilds tasks from the changelog and offsets from the broker. Something that
escapes the loop while a record is in hand leaves a poison marker, so the next process
dead-letters that record instead of crashing on it again.

The engine keeps the loop (consume, dispatch to partition tasks, commit, rebalance, and the
recovery those need); each other rule has one owner it calls: `Transactions` (the producer),
`FailurePolicy` (what a failure means), `Retries` (paused partitions), `DlqWriter` (dead
letters), `Dependencies` (outages), `RecordLimits` (sizes), `PartitionTasks` (opening, restoring
and closing tasks), `PartitionState` (a task's stores and changelog offsets), `PoisonedRecords`
(records known to fail), `TimerFiring` (due timers), `Checkpoint` (the unit of commit and its
steps), `broker_contact` (start-up) and `lag`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from choreograph.contracts.serde import AvroSerde
from choreograph.observability.endpoint import serve_endpoint
from choreograph.observability.health import Health
from choreograph.observability.metrics import ServiceMetrics
from choreograph.observability.tracing import RecordSpans
from choreograph.runtime.broker_contact import first_contact, wait_for_broker
from choreograph.runtime.checkpoint import Checkpoint
from choreograph.runtime.config import Guarantee, ServiceConfig
from choreograph.runtime.context import Output
from choreograph.runtime.dependencies import Dependencies
from choreograph.runtime.dlq_writer import DlqWriter
from choreograph.runtime.errors import FailurePolicy
from choreograph.runtime.failure_handling import FailureHandling
from choreograph.runtime.lag import report_lag
from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.ordered_inputs import OrderedInputs
from choreograph.runtime.partition_tasks import PartitionTasks
from choreograph.runtime.records import Record
from choreograph.runtime.retries import Retries, RetryState
from choreograph.runtime.task import PartitionTask
from choreograph.runtime.timer_firing import TimerFiring
from choreograph.runtime.topics import ensure_service_topics
from choreograph.runtime.transactions import Outcome, ProducerUnavailable, Transactions
from choreograph.runtime.watchdog import GRACE_S, Stalled, Watchdog

if TYPE_CHECKING:
    from choreograph.runtime.service import Service

log = logging.getLogger("choreograph.engine")
TP = tuple[str, int]
LAG_INTERVAL_S = 5.0
TIMER_CHECK_EVERY = 256  # records handled between checks for due timers
# The handler-time histogram observes one record in this many (a power of two): an observation
# takes a lock, and a sample of every sixteenth record draws the same distribution.
HANDLER_SAMPLE = 16
HANDLER_SAMPLE_MASK = HANDLER_SAMPLE - 1
RECONNECT_BOUND_S = 2.0  # one try at a fresh producer, between checks for SIGTERM
RECOVERY_STUCK_S = 10.0  # broker up, offsets still unreadable this long: replace the consumer
OFFSETS_BOUND_S = 5.0  # one request for the group's committed offsets
# Partitions lost and nothing assigned again this long after, the broker answering: the
# consumer is stuck out of its group (seen after a broker restart with static membership) and
# a fresh one rejoins.
REJOIN_STUCK_S = 45.0


class ConsumerFailed(Exception):
    """The consumer reported a fatal error: it must be replaced."""


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
            cache_dir=config.state_dir / service.name / "schemas",
        )
        self.watchdog = Watchdog(service.name)
        self.failures = FailurePolicy(
            config.retry.max_attempts, config.retry.backoff, config.infrastructure_backoff_max_s
        )
        self.txn = Transactions(
            self._producer_conf(),
            name=service.name,
            transactional=self.eos,
            on_abort=lambda: self.metrics.aborts.labels(service.name).inc(),
            on_rebuild=lambda _reason: self.metrics.producer_rebuilds.labels(service.name).inc(),
        )
        self.limits = RecordLimits(None, self._producer_conf())
        self.dlq = DlqWriter(service.name, service.dlq_topic, self.txn, self.limits, self.metrics)
        self.dependencies = Dependencies(service.name, self.metrics)
        self.failure_handling = FailureHandling(self.failures, self.dlq, self.dependencies)
        self.retries = Retries(lambda: self.consumer)
        self.ordered = OrderedInputs(
            service.name,
            service.inputs,
            config.input_idle_ms,
            config.input_wait_max_ms,
            config.input_buffer_records,
            lambda: self.consumer,
            self.metrics,
        )
        self.health = Health(service.name, config.liveness_bound_s, self.dependencies.away)
        self.partitions = PartitionTasks(service, config, self.serde, self.metrics, self.health)
        self.poisoned = self.partitions.poisoned
        # Spans of handled records and fired timers, when an OTLP endpoint is set (otel extra).
        self.spans = (
            RecordSpans.otlp(service.name, config.otlp_endpoint) if config.otlp_endpoint else None
        )
        self.timers = TimerFiring(
            service.name,
            self.failure_handling,
            self.limits,
            self.metrics,
            self._produce_outputs,
            clock,
            self.spans,
        )
        # The unit of commit: positions, committed offsets, first offsets (see checkpoint); the
        # names below are the same dicts, written directly on the hot path.
        self.checkpoint = Checkpoint()
        self.started_at = self.checkpoint.first  # first offset handled since assignment
        self.recovering = False
        self.abandoned = False
        self._ignore_callbacks = False
        self._consumer_failed: str | None = None  # a fatal consumer error, to replace it
        self._recover_failing_since: float | None = None
        # When partitions were lost (a session that timed out while the broker was away): a
        # consumer that has not been assigned anything again this long after is replaced.
        self._lost_at: float | None = None
        self._rewound = False  # set when positions go back while a consumed batch is in hand
        self._current: tuple[str, int, int] | None = None
        self.tasks = self.partitions.by_partition  # read by the loop; owned by `partitions`
        self.positions = self.checkpoint.positions  # next offset to commit, per input partition
        self.committed_offsets = self.checkpoint.committed  # what this instance last committed
        self.txn_open = False
        self.stopping = threading.Event()
        self.last_commit = self.last_lag = time.monotonic()
        self._delivery_error: KafkaError | None = None
        self._counted: dict[tuple[str, str], Any] = {}
        self._pending_counts: dict[tuple[str, str], int] = {}
        self._timed: dict[str, Any] = {}
        self._handled = 0  # records handled: one in HANDLER_SAMPLE is timed
        self.consumer: Consumer

    # -- lifecycle -----------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        if self.config.metrics_port is not None:
            serve_endpoint(self.config.metrics_port, self.config.metrics_host,
                           self.metrics.registry, [self.health])  # fmt: skip
        if not first_contact(self.config, self.stopping):
            return
        admin = AdminClient(self.config.client_conf())

        def topics_ready() -> bool:
            self.partitions.partition_count = ensure_service_topics(admin, self.service)
            return self.partitions.partition_count > 0

        def producer_ready() -> bool:
            return self.txn.ready(RECONNECT_BOUND_S)

        backoff = self.config.infrastructure_backoff_max_s
        for ready in (topics_ready, producer_ready):
            if not wait_for_broker(ready, self.stopping, self.dependencies, backoff,
                                   self.health.beat):  # fmt: skip
                return
        self.limits.admin = admin
        self._join_group()
        log.info("started", extra={"service": self.service.name, "eos": self.eos})
        try:
            while not self.stopping.is_set():
                self.health.beat()
                self.step()
        except BaseException as error:
            if self._current is not None and not isinstance(error, KeyboardInterrupt):
                self.poisoned.leave_marker(self._current, error)
            raise
        finally:
            self._shutdown()

    def _join_group(self) -> None:
        self.consumer = Consumer(self._consumer_conf())
        self.consumer.subscribe(
            self.service.inputs,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _shutdown(self) -> None:
        """Finish within `shutdown_timeout_s`, even with the broker away: commit what was
        processed, leave the group, make local state durable, close. A client call that does
        not return in time is abandoned (`abandoned`), and the process should end without
        waiting for it."""
        deadline = time.monotonic() + self.config.shutdown_timeout_s

        def left() -> float:
            return max(deadline - time.monotonic(), 0.5)

        if not self.recovering:
            try:
                self.commit(timeout=left() / 2)
            except Exception:
                log.exception(
                    "final commit failed; the next owner reprocesses from the last commit"
                )
        try:
            self.watchdog.call("consumer close", left(), self.consumer.close)
        except Stalled:
            log.warning("consumer did not close in time; leaving the group to its session timeout")
        except Exception as exc:  # stopping goes on: the group notices at its session timeout
            log.warning("consumer close failed", extra={"error": repr(exc)})
        self.partitions.close_all(clean=not self.recovering)
        self.txn.close(left())
        if self.spans is not None:
            self.spans.close()  # exports what is still batched
        self.abandoned = self.watchdog.stalled_calls > 0 or self.txn.abandoned
        log.info("stopped", extra={"service": self.service.name})

    def _consumer_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            **self.config.client_conf(),
            "group.id": self.service.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
        # A task is a partition number across every input, with the stores of that number: an
        # instance must own partition N of all inputs or of none, or two instances would keep
        # one key's state apart. Only range assignment keeps equal-sized topics together;
        # cooperative-sticky may split them, so it serves single-input services only.
        together = len(set(self.service.inputs)) > 1
        if self.config.group_protocol == "consumer":
            conf["group.protocol"] = "consumer"
            if together:
                conf["group.remote.assignor"] = "range"
        else:
            conf["partition.assignment.strategy"] = "range" if together else "cooperative-sticky"
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
        if self._consumer_failed:
            self._current = None
            # The fresh consumer's assignment restores state, which a transaction left open by a
            # dropped producer would hold up: a ready producer settles it first.
            if self.txn.ready(RECONNECT_BOUND_S):
                self._rebuild_consumer(ConsumerFailed(self._consumer_failed))
            else:
                self.stopping.wait(0.2)
            return
        if self.recovering:
            self._recover()
            return
        if not self.txn.ready(RECONNECT_BOUND_S):
            self.dependencies.unavailable("broker", "no transactional producer is initialised")
            self.stopping.wait(0.2)
            return
        try:
            self._consume_and_handle()
            self._flush_counts()
            if self.ordered.active:
                self.ordered.publish()
            self.timers.fire_due(self.tasks, self.clock())
        except ConsumerFailed as failed:
            self._current = None
            self._consumer_failed = str(failed)  # replaced at the next step
            return
        except (ProducerUnavailable, Stalled) as error:
            self._current = None
            self.dependencies.unavailable("broker", error)
            self._abort_and_rewind()
            return
        # `_handle` names the record in hand until its handling ends, so anything else that
        # escapes while it is in hand leaves a poison marker for that record, and only for it.
        self.retries.resume_due()
        if self._lost_at is not None and time.monotonic() - self._lost_at > REJOIN_STUCK_S:
            self._lost_at = None  # once per loss: a member the group gives nothing stays so
            if not self.consumer.assignment():
                self._current = None
                self._consumer_failed = (
                    f"no partitions assigned {REJOIN_STUCK_S:.0f} s after they were lost"
                )
                return
        tick = time.monotonic()
        if (tick - self.last_commit) * 1000 >= self.config.commit_interval_ms:
            self.commit(self.config.commit_timeout_s)
        if tick - self.last_lag >= LAG_INTERVAL_S:
            self.last_lag = tick
            report_lag(self.consumer, self.metrics, self.service.name)

    def _consume_and_handle(self) -> None:
        self._rewound = False  # a rebalance callback inside consume may rewind, too
        messages = self.consumer.consume(self.config.max_batch, 0.05)
        now = self.clock()
        ordered = self.ordered.active
        retrying = self.retries.states  # the dict itself, changed in place: no call per record
        for i, msg in enumerate(messages):
            err = msg.error()
            if err is not None:  # looked at even after a rewind: a fatal one must not be missed
                if err.fatal() or err.code() == KafkaError._FATAL:  # e.g. a fenced static member
                    raise ConsumerFailed(str(err))
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"error": str(err)})
                continue
            if self._rewound:  # positions went back: the rest of this batch comes again
                continue
            if ordered:
                if msg.partition() in self.tasks and not (
                    retrying and self.retries.waiting((msg.topic() or "", msg.partition() or 0))
                ):
                    self.ordered.add(msg)
                continue
            if i and i % TIMER_CHECK_EVERY == 0:  # deadlines do not wait for a whole batch
                now = self.clock()
                self.timers.fire_due(self.tasks, now)
            partition = msg.partition() or 0
            if retrying and self.retries.waiting((msg.topic() or "", partition)):
                continue  # re-fetched after the retry back-off
            task = self.tasks.get(partition)
            if task is not None:  # else revoked meanwhile
                self._handle(task, msg, now)
        if ordered and self.ordered and not self._rewound:
            self._handle_in_order(now)

    def _handle_in_order(self, now: datetime) -> None:
        """Several inputs: each task's fetched records in timestamp order across its inputs, as
        far as `InputOrder` lets them go (see `input_order`)."""
        handled = 0
        for partition in self.ordered.partitions():
            for msg in self.ordered.taken(partition):
                handled += 1
                if handled % TIMER_CHECK_EVERY == 0:
                    now = self.clock()
                    self.timers.fire_due(self.tasks, now)
                task = self.tasks.get(partition)
                if task is None or self._rewound:
                    return  # revoked, or positions went back: what is held comes again
                self._handle(task, msg, now)

    def _handle(self, task: PartitionTask, msg: Message, now: datetime) -> None:
        topic, offset = msg.topic() or "", msg.offset() or 0
        tp = (topic, task.partition)
        if tp not in self.started_at:
            self.started_at[tp] = offset
        if self.poisoned.doomed:  # the dict itself: no call per record
            doomed = self.poisoned.get(topic, task.partition, offset)
            if doomed is not None:
                self._dead_letter(Record.of(msg), "crashed", doomed, attempts=1)
                return
        self._current = (topic, task.partition, offset)
        self._handled += 1
        timed = not self._handled & HANDLER_SAMPLE_MASK  # one record in HANDLER_SAMPLE is timed
        started = time.perf_counter() if timed else 0.0
        spans = self.spans
        began = time.time_ns() if spans is not None else 0
        headers = None
        try:
            headers = msg.headers()
            if isinstance(headers, dict):  # the client's producer-side form; consumers give lists
                headers = list(headers.items())
            event_type, outcome, outputs = task.process(
                msg.key(), msg.value(), headers, now, msg.topic(), offset
            )
            self.limits.check(outputs, task.state.written())
        except Exception as error:
            self._current = None  # handled here: retried or dead-lettered, not a crash
            task.end_message(ok=False)
            self._failed(Record.of(msg), error)
            if spans is not None:
                where = (topic, task.partition, offset)
                spans.record(headers, "", msg.key(), "failed", began, time.time_ns(), where, error)
            return
        if self.limits.smallest < self.txn.batch_size and not self._fit_batches():
            self._current = None
            task.end_message(ok=False)  # the commit before it failed: it comes round again
            return
        task.end_message(ok=True)
        if outputs:
            try:
                self._produce_outputs(outputs)
            except KafkaException as exc:
                # Refused outright after part of its outputs went into the transaction: redo the
                # transaction without it; it is dead-lettered when it comes round again.
                self.poisoned.unproducible(topic, task.partition, offset, str(exc))
                self._current = None
                self._abort_and_rewind()
                return
        self._current = None
        self.positions[tp] = offset + 1
        if self.retries.states:
            self.retries.done(tp)
        if "registry" in self.dependencies.away:
            self.dependencies.available("registry")
        self._count(event_type, outcome)
        if spans is not None:
            where = (topic, task.partition, offset)
            spans.record(headers, event_type, msg.key(), outcome, began, time.time_ns(), where)
        if timed and outcome == "ok":
            timer = self._timed.get(event_type)
            if timer is None:
                timer = self._timed[event_type] = self.metrics.handler_seconds.labels(
                    self.service.name, event_type
                )
            timer.observe(time.perf_counter() - started)

    def _fit_batches(self) -> bool:
        """A topic accepts less than the producer's batches may hold (its `max.message.bytes`
        bounds a whole batch): commit what is open, then go on with a producer whose batches
        fit. Returns whether the commit succeeded."""
        if not self.commit(self.config.commit_timeout_s):
            return False
        size = self.limits.smallest - 1024  # room for the batch's own framing
        log.info("producer batches lowered to fit a topic", extra={"batch_size": size})
        self.txn.reconfigure(self.config.commit_timeout_s, **{"batch.size": size})
        self.txn.ready(RECONNECT_BOUND_S)  # if not, producing says so and the step redoes it
        return True

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
        state = self.retries.of(record)
        decision = self.failure_handling.record(record, error, state)
        event_type = record.header("ce_type") or "unknown"
        if decision.action == "pause":
            self._pause(record, state, decision.delay_s)
            self._count(event_type, "paused")
            return
        if decision.action == "dead-letter":  # the letter is in the transaction: move past
            self._moved_past(record)
            return
        self._pause(record, state, decision.delay_s)
        self.metrics.retries.labels(self.service.name).inc()
        self._count(event_type, "retried")
        log.info(
            "retrying",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "attempt": state.attempts,
                "delay_s": round(decision.delay_s, 3),
                "error": repr(error),
            },
        )

    def _pause(self, record: Record, state: RetryState, delay_s: float) -> None:
        """Fetch the partition again from `record` after `delay_s`: what is held of it goes."""
        self.retries.pause(record, state, delay_s)
        if self.ordered.active:
            self.ordered.drop(record.tp)

    def _dead_letter(self, record: Record, reason: str, error: Exception, attempts: int) -> None:
        """Send `record` to the DLQ in the open transaction and move past it. A copy too large
        for the DLQ becomes a headers-only letter that points at the original."""
        self.failure_handling.dead_letter(record, reason, error, attempts)
        self._moved_past(record)

    def _moved_past(self, record: Record) -> None:
        """A dead-lettered record: the service goes on from the next one."""
        tp = record.tp
        self.positions[tp] = record.offset + 1
        self.retries.done(tp)
        self._count(record.header("ce_type") or "unknown", "dlq")

    # -- producing and committing --------------------------------------------------------------

    def _begin(self) -> None:
        self.txn.begin()

    def _produce_outputs(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        self._begin()
        published_as = self.service.published_as  # a shadow's topics; empty otherwise
        if not self.eos:
            for out in outputs:
                topic = published_as.get(out.topic, out.topic) if published_as else out.topic
                self.txn.produce(topic, out.value, out.key, out.headers, None, self._delivered)
            return
        produce = self.txn.producer.produce  # hot path: no callback under EOS, no kwargs dict
        for out in outputs:
            topic = published_as.get(out.topic, out.topic) if published_as else out.topic
            try:
                produce(topic, out.value, out.key, headers=out.headers)
            except (BufferError, KafkaException):  # the careful path waits or says why
                self.txn.produce(topic, out.value, out.key, out.headers)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._delivery_error = err

    def _changelog_delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_error = err
            return
        task = self.tasks.get(msg.partition() or 0)
        if task is not None:  # else closed meanwhile: its offset is recorded by the next owner
            task.state.logged(msg.topic() or "", (msg.offset() or 0) + 1)

    def commit(self, timeout: float = 60.0) -> bool:
        """Commit outputs, changelog writes and offsets of every owned partition at once.

        Bounded by about `timeout`. A failed commit is redone from the last commit: at once when
        it is known not to have landed, after rebuilding from the broker's committed state when
        its outcome is unknown. Returns whether it committed."""
        self.last_commit = time.monotonic()
        # State changes go to the changelogs here, at the commit, not as the work goes: records
        # of an open transaction on a changelog hold back its last stable offset, and a restore
        # that meets them (a partition lost and taken back meanwhile) could stop short.
        checkpoint = self.checkpoint
        if not checkpoint.has_work(self.tasks.values(), self.txn.open):
            return True
        started = time.perf_counter()
        offsets = checkpoint.offsets()
        try:
            self._begin()
            # 1. prepare: the changelog records of every partition state, into the transaction
            checkpoint.prepare(
                self.tasks,
                self.txn.producer.produce,  # positional, no kwargs dict: the hot path
                self._changelog_delivered,
                None if self.eos else self._delivered,
                self.txn.produce,
            )
            # 2. commit: outputs, changelog records and input offsets, at once
            if self.eos:
                outcome = self.txn.commit(timeout, offsets, self.consumer.consumer_group_metadata())
            else:
                outcome = self._commit_at_least_once(offsets, timeout)
        except (ProducerUnavailable, Stalled, KafkaException) as error:
            self.dependencies.unavailable("broker", error)
            outcome = Outcome.UNKNOWN if self.txn.open else Outcome.ABORTED
            self.txn.abort(timeout)
        if outcome is Outcome.ABORTED:
            self._rewind()
            return False
        if outcome is Outcome.UNKNOWN:
            self._lose_work()
            return False
        self.txn.poll()  # serve delivery reports: changelog offsets, at-least-once failures
        # 3. apply: each partition state's writes to its store, with its changelog offset
        checkpoint.apply(self.tasks.values())
        # 4. move on: what was handled is committed
        self.poisoned.committed(checkpoint.move_on())
        if self.dependencies.away:
            self.dependencies.available("broker")
        self.metrics.commits.labels(self.service.name).inc()
        self.metrics.commit_seconds.labels(self.service.name).observe(time.perf_counter() - started)
        return True

    def _commit_at_least_once(self, offsets: list[TopicPartition], timeout: float) -> Outcome:
        outcome = self.txn.commit(timeout)
        if outcome is Outcome.COMMITTED and self._delivery_error is not None:
            log.error("delivery failed", extra={"error": str(self._delivery_error)})
            outcome = Outcome.ABORTED
        self._delivery_error = None
        if outcome is not Outcome.COMMITTED:
            return Outcome.ABORTED  # at-least-once: what was sent stays sent; redo the rest
        if offsets:
            self.watchdog.call(
                "offset commit",
                timeout + GRACE_S,
                lambda: self.consumer.commit(offsets=offsets, asynchronous=False),
            )
        return outcome

    def _abort_and_rewind(self) -> None:
        self.txn.abort(self.config.revoke_timeout_s)
        self._rewind()

    def _rewind(self, leaving: frozenset[TP] = frozenset()) -> None:
        """Forget uncommitted work and seek every partition this instance keeps back to its last
        committed offset, so the inputs of aborted work are processed again."""
        self.checkpoint.forget_uncommitted(self.tasks.values())
        self.retries.clear()
        self.timers.forget()
        self.ordered.clear()
        self._rewound = True
        kept = [tp for tp in self.consumer.assignment() if (tp.topic, tp.partition) not in leaving]
        for tp in kept:
            offset = self.checkpoint.rewind_point((tp.topic, tp.partition))
            if offset is not None:  # else nothing of it was handled: its position is right
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        if kept:
            self.consumer.resume(kept)

    def _rebuild_consumer(self, failed: ConsumerFailed) -> None:
        """A consumer that failed fatally never consumes again: abort what it started, close
        its tasks, and join the group with a fresh consumer (restoring what it is assigned)."""
        log.warning("consumer failed; a fresh one rejoins the group", extra={"error": str(failed)})
        self.txn.abort(self.config.revoke_timeout_s)  # its offsets can no longer be committed
        for task in self.tasks.values():
            task.aborted()
        self._close_all(clean=True)
        self.poisoned.clear()
        old, self._ignore_callbacks = self.consumer, True
        try:
            self.watchdog.call("consumer close", 5.0, old.close)
        except (Stalled, KafkaException, RuntimeError):
            pass  # a fatal consumer may not close cleanly; it is not used again
        finally:
            self._ignore_callbacks = False
        self._consumer_failed = None
        self.recovering = False  # tasks are closed: the new assignment restores them
        self._join_group()
        self.metrics.consumer_rebuilds.labels(self.service.name).inc()

    def _lose_work(self) -> None:
        """The last commit may or may not have landed: remembered offsets cannot be trusted.
        Close every task (local state holds the last known commit and its changelog offset);
        `_recover` reopens them, replays what the changelog has past that offset, and seeks to
        the offsets the broker has, once a fresh producer is ready."""
        log.warning("commit outcome unknown; rebuilding from the broker's committed state")
        self.dependencies.unavailable("broker", "commit outcome unknown")
        self._close_all(clean=False)
        self._rewound = True
        self.recovering = True

    def _close_all(self, clean: bool) -> None:
        """Close every task and forget all progress: what comes next starts from the broker's
        committed offsets."""
        self.partitions.close_all(clean)
        self.ordered.clear()
        self.checkpoint.forget()
        self.retries.clear()
        self.timers.forget()

    def _recover(self) -> None:
        if not self.txn.ready(RECONNECT_BOUND_S):
            self.stopping.wait(0.2)
            return
        assignment = self.consumer.assignment()
        opened: dict[int, PartitionTask] = {}
        attempt = time.monotonic()
        try:
            committed = (
                self.watchdog.call(
                    "committed offsets",
                    OFFSETS_BOUND_S + GRACE_S,
                    self.consumer.committed,
                    assignment,
                    OFFSETS_BOUND_S,
                )
                if assignment
                else []
            )
            opened = self.partitions.open({tp.partition for tp in assignment})
        except (KafkaException, Stalled) as error:
            log.info("recovery waits for the broker", extra={"error": str(error)})
            # The producer is ready, so the broker answers: a consumer that still cannot fetch
            # its group's offsets is stuck (a rebalance it cannot serve while recovering). A
            # fresh consumer rejoins the group and restores what it is assigned.
            first = self._recover_failing_since or attempt  # stuck since it first asked
            self._recover_failing_since = first
            if time.monotonic() - first > RECOVERY_STUCK_S:
                self._recover_failing_since = None
                self._rebuild_consumer(
                    ConsumerFailed(f"no committed offsets for {RECOVERY_STUCK_S:.0f} s: {error}")
                )
                return
            self.stopping.wait(1.0)
            return
        self._recover_failing_since = None
        self.partitions.own(opened)
        self._seed_schedules(opened)
        self.health.running = True
        try:
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
                if tp.offset >= 0:
                    self.committed_offsets[(tp.topic, tp.partition)] = tp.offset
            if assignment:
                self.consumer.resume(assignment)
        except KafkaException as error:
            # The assignment changed under the recovery (a session that timed out while the
            # broker was away): no partition may go on from an unknown position, so the tasks
            # close again and the next step recovers from the assignment as it is then.
            log.info("recovery waits: the assignment changed", extra={"error": str(error)})
            self._close_all(clean=False)
            self.stopping.wait(0.5)
            return
        self.recovering = False
        self.dependencies.available("broker")
        log.info("recovered", extra={"partitions": sorted(self.tasks)})

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ignore_callbacks:
            return
        self._lost_at = None
        if self.recovering:  # `_recover` opens every assigned partition at once
            return
        opened = self.partitions.open({tp.partition for tp in partitions})
        self.partitions.own(opened)
        self._seed_schedules(opened)
        self.health.running = True  # joined, and what it was given is restored
        log.info(
            "assigned", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _seed_schedules(self, opened: dict[int, PartitionTask]) -> None:
        """The schedules a newly owned partition fires: their first timers, if none is set."""
        if not self.service.schedules:
            return
        now = self.clock()
        for task in opened.values():
            task.seed_schedules(now)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ignore_callbacks:
            return
        if not self.recovering:
            self.commit(timeout=self.config.revoke_timeout_s)  # the rebalance waits on this
        self._drop(partitions)
        log.info(
            "revoked", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ignore_callbacks:
            return
        """Partitions are gone without a chance to commit: abort, and rewind what is kept."""
        self._lost_at = time.monotonic()
        self.txn.abort(self.config.revoke_timeout_s)
        if not self.recovering:
            self._rewind(leaving=frozenset((tp.topic, tp.partition) for tp in partitions))
        self._drop(partitions)
        log.warning(
            "lost", extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]}
        )

    def _drop(self, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        for tp in revoked:
            self.checkpoint.drop(tp)  # the next owner may move it on
            self.retries.done(tp)
            self.ordered.drop(tp)
        # A task closes when none of its partition number stays (on any input).
        kept = self.consumer.assignment()
        still = {tp.partition for tp in kept if (tp.topic, tp.partition) not in revoked}
        for partition in {p for _, p in revoked} - still:
            self.partitions.close(partition)
            self.ordered.drop_partition(partition)
            self.poisoned.forget_partition(partition)


def end_if_abandoned(abandoned: bool, code: int) -> None:
    """After a stop: when a client call was left blocked (the broker was away at shutdown), the
    clients' own clean-up at interpreter exit would wait for it past the shutdown bound, so the
    process ends here instead, with `code`."""
    if abandoned:
        logging.shutdown()
        os._exit(code)
