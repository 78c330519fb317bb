"""Timer firing over fake clients: the engine's `TimerFiring` with the one failure handling, an
in-memory transaction for its letters, and a partition task of the TestKit for its timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from choreograph import Context, Service, TestKit
from choreograph.contracts.serde import RegistryUnavailable
from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.dependencies import Dependencies
from choreograph.runtime.dlq_writer import DlqWriter
from choreograph.runtime.errors import FailurePolicy
from choreograph.runtime.failure_handling import FailureHandling
from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.timer_firing import TimerFiring
from choreograph.testing.memory_transactions import MemoryTransactions
from choreograph_examples.contracts.orders import OrderPlaced
from tests.unit.runtime.test_records_that_lie import ORDER

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Firing:
    """A TimerFiring as the engine builds it, over a TestKit's partition task."""

    def __init__(self, failing: list[Exception], max_attempts: int = 3) -> None:
        service = Service("reminders", ["orders.events"], outputs=["orders.reminders"])
        self.calls = 0

        @service.handle(OrderPlaced)
        def remember(ctx: Context, event: OrderPlaced) -> None:
            ctx.schedule("remind", timedelta(minutes=5), {"order": event.order_id})

        @service.timer("remind")
        def remind(ctx: Context, payload: dict[str, Any]) -> None:
            self.calls += 1
            if failing:
                raise failing.pop(0)

        self.kit = TestKit(service, start=T0, partitions=1)
        self.kit.send(ORDER, key="o-1")
        self.task = self.kit.tasks[0]
        metrics = ServiceMetrics(service.name)
        limits = RecordLimits(None, {})
        self.txn = MemoryTransactions(limits)
        self.dependencies = Dependencies(service.name, metrics)
        policy = FailurePolicy(max_attempts, lambda attempt, jitter: 0.0, 10.0)
        dlq = DlqWriter(service.name, service.dlq_topic, self.txn, limits, metrics)
        self.produced: list[Any] = []
        self.firing = TimerFiring(
            service.name,
            FailureHandling(policy, dlq, self.dependencies),
            limits,
            metrics,
            self.produced.extend,
            lambda: T0 + timedelta(minutes=6),
        )

    def fire(self) -> None:
        self.firing.fire_due({0: self.task}, T0 + timedelta(minutes=6))


def test_a_due_timer_fires_once_and_leaves_its_store() -> None:
    f = Firing([])
    f.fire()
    f.fire()
    assert f.calls == 1 and f.task.timers.next_deadline() is None
    assert f.txn.produced == []


def test_a_failing_timer_is_retried_then_dead_lettered_with_its_store_entry() -> None:
    f = Firing([LookupError("not yet")] * 5, max_attempts=3)
    for _ in range(3):
        assert f.task.timers.next_deadline() is not None
        f.fire()
    assert f.calls == 3
    assert f.task.timers.next_deadline() is None  # gone in the transaction of its letter
    [letter] = f.txn.produced
    assert letter.topic == "reminders.dlq" and letter.key == b"o-1"
    assert letter.header("dlq_timer") == "remind"
    assert letter.header("dlq_reason") == "timer-failed" and letter.header("dlq_attempts") == "3"
    assert f.produced == []


def test_a_dependency_away_pauses_a_timer_and_counts_no_attempt() -> None:
    f = Firing([RegistryUnavailable("http://registry", "down")] * 10, max_attempts=2)
    for _ in range(5):
        f.fire()
    assert "registry" in f.dependencies.away
    assert [attempts for attempts, _ in f.firing._failing.values()] == [0]
    assert f.task.timers.next_deadline() is not None and f.txn.produced == []


def test_a_records_failures_are_counted_and_its_letter_written_in_one_place() -> None:
    from choreograph.runtime.records import Record
    from choreograph.runtime.retries import RetryState

    f = Firing([])
    handling = f.firing.failures
    record = Record("orders.events", 0, 41, b"o-1", b"\x00body", [("ce_type", b"x.Y")])
    tries = RetryState(offset=41)
    away = handling.record(record, RegistryUnavailable("http://registry", "down"), tries)
    assert (away.action, tries.away, tries.attempts) == ("pause", 1, 0)
    for n in (1, 2):
        assert handling.record(record, LookupError("not yet"), tries).action == "retry"
        assert tries.attempts == n
    assert f.txn.produced == []
    last = handling.record(record, LookupError("not yet"), tries)
    assert (last.action, last.reason, tries.attempts) == ("dead-letter", "retries-exhausted", 3)
    [letter] = f.txn.produced
    assert letter.value == b"\x00body" and letter.header("dlq_origin_offset") == "41"
    assert letter.partition == 0
