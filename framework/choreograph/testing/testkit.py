"""TestKit: drive a Service in memory with virtual time, for users' unit tests.

Runs the service's real handlers, machines, stores, timers and Avro contracts (through an
in-memory schema registry), with the runtime's retry and DLQ rules, but no broker and no wall
clock: `advance()` moves time and fires due timers in deadline order.

    kit = TestKit(service)
    kit.send(OrderPlaced(...), key="o-1")
    kit.advance(timedelta(minutes=16))
    assert kit.emitted(type=RefundPayment)

The TestKit runs several partition tasks (`partitions`, 4 by default) and routes each record by
its key with the production partitioner (murmur2, as the Java client), so a handler that files
state under a key its partition does not own fails here as it would in production, and
`group_by` re-keying goes through its internal topic as it does there.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient

from choreograph.contracts.envelope import Envelope, Headers
from choreograph.contracts.event import Event
from choreograph.contracts.publisher import encode_event
from choreograph.contracts.serde import AvroSerde, SerdeError
from choreograph.governance.approvals import DECIDED, REQUESTED, check_approver
from choreograph.governance.contracts_bound import APPROVALS_TOPIC, model
from choreograph.machines.machine import Instance, StateMachine
from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.config import RetryPolicy, ServiceConfig
from choreograph.runtime.context import Output
from choreograph.runtime.dlq_writer import DlqWriter
from choreograph.runtime.errors import Decision, Failure, FailurePolicy, TopologyError
from choreograph.runtime.failure_handling import FailureHandling
from choreograph.runtime.input_order import InputOrder
from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.partitioning import partition_for
from choreograph.runtime.records import Record
from choreograph.runtime.service import Service
from choreograph.runtime.task import PartitionTask, refuse_stranded
from choreograph.runtime.timers import Timer
from choreograph.state.backends import MemoryBackend
from choreograph.testing.memory_transactions import MemoryTransactions, Produced

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Emitted:
    topic: str
    key: str
    # A dict for forwarded records of types with no model here; None if the body is not Avro.
    event: Event | dict[str, Any] | None
    envelope: Envelope
    value: bytes | None = None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)  # as sent


class _Delivery(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    offset: int


@dataclass(frozen=True)
class DeadLetter:
    """A record (or a timer, `topic` "timer:<name>") the service moved past: what it was, why,
    and `letter`, the record production would have put on the DLQ (its `dlq_*` headers, or
    headers only when the copy would be too large)."""

    topic: str
    key: bytes | None
    value: bytes | None
    error: BaseException
    attempts: int
    reason: str = ""
    letter: Produced | None = None


@dataclass
class _Tries:
    attempts: int = 0
    away: int = 0


class TestKit:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        service: Service,
        *,
        start: datetime | None = None,
        retry: RetryPolicy | None = None,
        seed: int = 0,
        partitions: int = 4,
        on_error: Literal["raise", "dead-letter"] = "raise",
        retries_move_clock: bool = False,
        config: ServiceConfig | None = None,
    ) -> None:
        """`on_error="raise"`: a mistake in the service's code (TypeError, undeclared store, wrong
        handler signature...) fails the test at once with its traceback; `"dead-letter"` treats
        it as production does (retries, then a dead letter). Other failures always follow the
        runtime's failure policy. Retries are immediate unless `retries_move_clock`, which moves
        virtual time by each back-off as production would wait. `config`: the settings production
        runs with, where they change what handlers see (the input order's waits)."""
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.service = service
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.retry = retry or RetryPolicy()
        self._rand = random.Random(seed)
        self.on_error = on_error
        self.retries_move_clock = retries_move_clock
        self.failures = FailurePolicy(
            self.retry.max_attempts, self.retry.backoff, 10.0, random.Random(seed)
        )
        settings = config or ServiceConfig()
        # Production's size limits and dead letters, into an in-memory transaction.
        self.limits = RecordLimits(None, settings.producer)
        self.transactions = MemoryTransactions(self.limits)
        self.metrics = ServiceMetrics(service.name)
        dlq = DlqWriter(
            service.name, service.dlq_topic, self.transactions, self.limits, self.metrics
        )
        self.failure_handling = FailureHandling(self.failures, dlq, None, screen=self._screen)
        registry = SchemaRegistryClient.new_client({"url": f"mock://testkit-{uuid.uuid4().hex}"})
        self.serde = AvroSerde(registry, models=service.models.values(), auto_register=True)
        self.partitions = partitions
        self._backends: dict[tuple[int, str], MemoryBackend] = {}  # kept across a deploy
        self.tasks = self._open(service)
        self.outputs: list[Emitted] = []
        self.dead_letters: list[DeadLetter] = []
        self.attempts: list[int] = []
        self.outcomes: list[str] = []  # per delivered record: ok, ignored or malformed
        self._next_offset: dict[tuple[str, int], int] = {}  # as a broker numbers what it takes
        self._answered: set[str] = set()  # approval requests answered with approve() or deny()
        self.fired: list[tuple[str, str, datetime]] = []  # timers that ran: key, name, when
        # Seconds each paced call to a partner waited for its turn (ctx.pace): production sleeps.
        self.paced: list[float] = []
        # Records are handled in timestamp order across the inputs of a partition, by the rule
        # the engine follows; an input held back with `behind()` is one not fetched yet.
        self._behind: set[str] = set()
        self._settings = settings
        self._orders = self._input_orders(service)
        self._seed_schedules()

    def _input_orders(self, service: Service) -> list[InputOrder[_Delivery]]:
        return [
            InputOrder(
                service.inputs,
                self._settings.input_idle_ms / 1000,
                self._settings.input_wait_max_ms / 1000,
                clock=lambda: self.now.timestamp(),
            )
            for _ in range(self.partitions)
        ]

    def _open(self, service: Service) -> list[PartitionTask]:
        def backend(name: str, partition: int) -> MemoryBackend:
            return self._backends.setdefault((partition, name), MemoryBackend())

        return [
            PartitionTask(
                service,
                p,
                backend,
                self.serde,
                partitions=self.partitions,
                pacing=(lambda: self.now.timestamp(), self._paced_wait),
            )
            for p in range(self.partitions)
        ]

    def _paced_wait(self, seconds: float) -> None:
        """A handler's wait for its turn to call a partner: recorded, not slept (`paced`)."""
        self.paced.append(seconds)

    def _seed_schedules(self) -> None:
        """As production's owner of each partition does when it opens it: the first timer of
        each schedule the partition owns."""
        for task in self.tasks:
            if task.seed_schedules(self.now):
                task.committed()

    def deploy(self, service: Service) -> None:
        """The next release of the service, on what the current one left (stores, timers, machine
        instances, virtual time), as a redeploy in production. Its start-up is production's:
        stored machine instances that no version of the new release can run stop it here
        (StrandedInstances, naming the states and how many instances are in them)."""
        if any(order.buffered for order in self._orders):
            raise RuntimeError(
                "records are held for an input that is behind(): leave the `with kit.behind(...)` "
                "block before deploying, as a deploy in production starts from committed offsets"
            )
        tasks = self._open(service)
        refuse_stranded(tasks)
        for event_model in service.models.values():
            self.serde.add_model(event_model)
        self.service, self.tasks = service, tasks
        self._seed_schedules()
        self._orders = self._input_orders(service)  # the new release's inputs

    # -- input ---------------------------------------------------------------------------------

    def send(
        self,
        event: Event,
        key: str,
        *,
        topic: str | None = None,
        correlation_id: str | None = None,
        parent: Envelope | None = None,
    ) -> Envelope:
        """Deliver `event` as if another service had published it."""
        if not isinstance(event, Event):
            raise TypeError(
                f"send() takes a contract event (a generated model instance), not "
                f"{type(event).__name__}; e.g. kit.send(OrderPlaced(...), key='o-1')"
            )
        if not isinstance(key, str):
            raise TypeError(f"the key is the business key as text, not {type(key).__name__}")
        target, value, envelope = encode_event(
            self.serde,
            event,
            key,
            "testkit",
            topic=topic,
            parent=parent,
            correlation_id=correlation_id,
            now=self.now,
        )
        self.deliver(target, key.encode(), value, envelope.to_headers())
        return envelope

    def deliver(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        """Deliver raw bytes, e.g. to test what a malformed record does."""
        if topic not in self.service.inputs:
            raise TopologyError(
                f"{self.service.name} does not consume {topic}, so in production this record "
                f"would never reach it; its inputs are {self.service.inputs}. Add {topic!r} to "
                "the service's inputs, or send it where the service reads"
            )
        task = self.task_for(key)
        offset = self._next_offset.get((topic, task.partition), 0)
        self._next_offset[(topic, task.partition)] = offset + 1
        at = int(self.now.timestamp() * 1000)
        self._orders[task.partition].add(topic, at, _Delivery(topic, key, value, headers, offset))
        self._handle_due(task)

    @contextlib.contextmanager
    def behind(self, *topics: str) -> Iterator[None]:
        """Records sent to `topics` inside the block are held back, as records on the broker a
        slow fetch has not brought yet; records of the same partition on other inputs wait for
        them (up to the input wait bound of virtual time, see `advance`), as in production.

            with kit.behind("orders.events"):
                kit.send(OrderPlaced(...), key="o-1")      # not fetched yet
                kit.advance(timedelta(seconds=1))
                kit.send(PaymentAuthorized(...), key="o-1", topic="payments.events")  # waits
            # here OrderPlaced is handled, then PaymentAuthorized
        """
        unknown = [t for t in topics if t not in self.service.inputs]
        if unknown:
            raise TopologyError(f"{self.service.name} does not consume {unknown}")
        self._behind.update(topics)
        try:
            yield
        finally:
            self._behind.difference_update(topics)
            for task in self.tasks:
                self._handle_due(task)

    def _handle_due(self, task: PartitionTask) -> None:
        """Handle what the input order lets through now, one record at a time."""
        order = self._orders[task.partition]
        while (delivery := order.next(lambda topic: topic not in self._behind)) is not None:
            self._handle(task, delivery)

    def _handle(self, task: PartitionTask, delivery: _Delivery) -> None:
        topic, key, value, headers, offset = delivery
        record = Record(topic, task.partition, offset, key, value, list(headers or ()))
        tries = _Tries()
        while True:
            try:
                _, outcome, outputs = task.process(key, value, headers, self.now, topic, offset)
                self.limits.check(outputs, task.state.written())
            except Exception as error:
                task.end_message(ok=False)
                letters = len(self.transactions.produced)
                decision = self.failure_handling.record(record, error, tries)
                if decision.action == "dead-letter":
                    task.committed()
                    self._dead_lettered(topic, key, value, error, decision, letters)
                    self.attempts.append(decision.attempts)
                    return
                self._wait(decision)
                continue
            task.end_message(ok=True)
            task.committed()
            self._collect(outputs)
            self.attempts.append(tries.attempts + 1)
            self.outcomes.append(outcome)
            return

    def _screen(self, error: BaseException, decision: Decision) -> None:
        """The test's choices over the runtime's decision: a mistake in the service's code
        raises at once (unless `on_error="dead-letter"`); so does a dependency said to be away,
        since none is in memory and a service raising that itself is a mistake."""
        if decision.kind is Failure.PROGRAMMING and self.on_error == "raise":
            raise error
        if decision.action == "pause":
            raise error

    def _wait(self, decision: Decision) -> None:
        """Retries are immediate, or wait on the virtual clock when asked to."""
        if decision.action == "retry" and self.retries_move_clock:
            self.now += timedelta(seconds=decision.delay_s)

    def _dead_lettered(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        error: Exception,
        decision: Decision,
        letters: int,
    ) -> None:
        produced = self.transactions.produced
        letter = produced[-1] if len(produced) > letters else None
        self.dead_letters.append(
            DeadLetter(topic, key, value, error, decision.attempts, decision.reason, letter)
        )

    # -- time ----------------------------------------------------------------------------------

    def advance(self, delta: timedelta) -> None:
        """Move virtual time forward, firing due timers in deadline order at their deadline."""
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward: advance({delta!r}) is negative")
        target = self.now + delta
        while (due := self._next_due(target)) is not None:
            deadline, task = due
            self.now = max(self.now, datetime.fromtimestamp(deadline / 1000, tz=UTC))
            self._handle_held()
            for timer in task.due_timers(self.now):
                self._fire(task, timer)
        self.now = target
        self._handle_held()

    def _next_due(self, until: datetime) -> tuple[int, PartitionTask] | None:
        """The earliest timer due by `until` (by deadline, then partition), and its task."""
        limit = int(until.timestamp() * 1000)
        due = [(t.timers.next_deadline(), t.partition, t) for t in self.tasks]
        pending = [(d, p, t) for d, p, t in due if d is not None and d <= limit]
        if not pending:
            return None
        deadline, _, task = min(pending, key=lambda entry: (entry[0], entry[1]))
        return deadline, task

    def outage(self, delta: timedelta) -> None:
        """The service is down for `delta`: virtual time moves on and nothing runs. At the
        restart, the timers that came due meanwhile fire, late, as they do in production (a
        schedule's missed occurrences then follow its `missed` policy)."""
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward: outage({delta!r}) is negative")
        self.now += delta
        while (due := self._next_due(self.now)) is not None:
            for timer in due[1].due_timers(self.now):
                self._fire(due[1], timer)
        self._handle_held()

    def _handle_held(self) -> None:
        """Records held for an input that is behind go once the wait for it has run out."""
        for task in self.tasks:
            if self._orders[task.partition].buffered:
                self._handle_due(task)

    def _fire(self, task: PartitionTask, timer: Timer) -> None:
        """Fire one timer under the same policy as records: retried, then dead-lettered (the
        timer leaves the store, as in production)."""
        attempts = 0
        while True:
            try:
                outputs = task.fire(timer, self.now)
                self.limits.check(outputs, task.state.written())
            except Exception as error:
                task.end_message(ok=False)
                letters = len(self.transactions.produced)
                decision = self.failure_handling.timer(task, task.partition, timer, error, attempts)
                attempts = decision.attempts
                if decision.action == "dead-letter":
                    task.committed()
                    self._dead_lettered(
                        f"timer:{timer.name}", timer.key.encode(), None, error, decision, letters
                    )
                    return
                self._wait(decision)
                continue
            task.end_message(ok=True)
            task.committed()
            self.fired.append((timer.key, timer.name, self.now))
            self._collect(outputs)
            return

    def task_for(self, key: bytes | str | None) -> PartitionTask:
        """The partition task that owns `key`, as the production partitioner would choose."""
        if self.partitions == 1 or not key:
            return self.tasks[0]
        return self.tasks[partition_for(key, self.partitions)]

    # -- inspection ----------------------------------------------------------------------------

    def _collect(self, outputs: list[Output]) -> None:
        """Decode what was produced, as a consumer would: by the writer's schema and, for events
        the handler built, into their model. Records for the service's own repartition topics
        (`group_by`) are delivered to it, as the engine would consume them."""
        for out in outputs:
            if out.topic in self.service.rekeyed:
                self.deliver(out.topic, out.key, out.value, out.headers)
                continue
            event: Event | dict[str, Any] | None
            if out.event is not None:
                event = self.serde.deserialize(out.value, type(out.event)).event
            else:  # forwarded as it came: decode if it is Avro at all
                try:
                    event = self.serde.deserialize(out.value).event
                except SerdeError:
                    event = None
            self.outputs.append(
                Emitted(
                    out.topic, out.key.decode(), event, out.envelope, out.value, list(out.headers)
                )
            )

    def emitted(self, type: type[E] | None = None, topic: str | None = None) -> list[Emitted]:
        return [
            e
            for e in self.outputs
            if (type is None or isinstance(e.event, type)) and (topic is None or e.topic == topic)
        ]

    def approvals(self) -> list[Any]:
        """Approval requests the service made that no decision has answered yet."""
        asked: list[Any] = [
            e.event for e in self.emitted(topic=APPROVALS_TOPIC) if e.envelope.type == REQUESTED
        ]
        return [a for a in asked if a.approval_id not in self._answered]

    def approve(self, request: Any, approver: str, reason: str, *, granted: bool = True) -> None:
        """Answer an approval request as an approver does through the saga tracker's API, with
        its rules: the requester may not approve (ApprovalRefused), and a reason is required."""
        check_approver(request.requested_by, approver, reason)
        decided = model(DECIDED).from_avro(
            {
                "approval_id": request.approval_id,
                "correlation_id": request.correlation_id,
                "machine": request.machine,
                "instance": request.instance,
                "granted": granted,
                "approver": approver,
                "reason": reason,
                "decided_at": self.now,
            }
        )
        self._answered.add(request.approval_id)
        self.send(decided, key=request.instance, correlation_id=request.correlation_id,
                  topic=APPROVALS_TOPIC)  # fmt: skip

    def deny(self, request: Any, approver: str, reason: str) -> None:
        self.approve(request, approver, reason, granted=False)

    def events(self, type: type[E]) -> list[E]:
        return [e.event for e in self.emitted(type) if isinstance(e.event, type)]

    @property
    def task(self) -> PartitionTask:
        """The partition task, when there is one (`partitions=1`)."""
        if self.partitions != 1:
            raise AttributeError(
                f"this TestKit runs {self.partitions} partition tasks: use kit.tasks, "
                "kit.task_for(key), kit.store(name) or kit.next_deadline()"
            )
        return self.tasks[0]

    def next_deadline(self) -> int | None:
        """The earliest pending timer over all partitions (epoch ms), if any."""
        found = [d for d in (t.timers.next_deadline() for t in self.tasks) if d is not None]
        return min(found) if found else None

    def store(self, name: str) -> PartitionedStore:
        """Store `name` over all partitions: each key is read from (and written to) the
        partition that owns it."""
        self.tasks[0].user_store(name)  # an undeclared store fails here, with its message
        return PartitionedStore(name, self)

    def state(self, machine: StateMachine, key: str) -> Instance | None:
        raw: dict[str, Any] | None = self.task_for(key).user_store(machine.store_name).get(key)
        return None if raw is None else Instance(**raw)


class PartitionedStore:
    """A store of every partition task, as a test reads it: by key, from the owner."""

    def __init__(self, name: str, kit: TestKit) -> None:
        self.name = name
        self.kit = kit

    def _keyed(self) -> bool:
        return self.name not in self.kit.service.unkeyed

    def _task(self, key: str) -> PartitionTask:
        if self._keyed() or self.kit.partitions == 1:
            return self.kit.task_for(key)
        raise ValueError(
            f"{self.name!r} is a per-partition store (keyed=False): its keys do not say which "
            "partition; use kit.tasks[p].user_store(name), or TestKit(..., partitions=1)"
        )

    def get(self, key: str, default: Any = None) -> Any:
        if self._keyed():
            return self.kit.task_for(key).user_store(self.name).get(key, default)
        for task in self.kit.tasks:  # a per-partition store: whichever partition has it
            found = task.user_store(self.name).get(key)
            if found is not None:
                return found
        return default

    def put(self, key: str, value: Any) -> None:
        """Write state as if a handler had (committed at once), e.g. to set up a test."""
        task = self._task(key)
        task.user_store(self.name).put(key, value)
        task.end_message(ok=True)
        task.committed()

    def delete(self, key: str) -> None:
        task = self._task(key)
        task.user_store(self.name).delete(key)
        task.end_message(ok=True)
        task.committed()

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        return sorted(
            item for task in self.kit.tasks for item in task.user_store(self.name).items(prefix)
        )
