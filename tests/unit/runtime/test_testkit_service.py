"""Handlers, state machines, timers, retries and the DLQ, driven by the TestKit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from choreograph.machines.machine import MachineDefinitionError, StateMachine
from choreograph.runtime.config import RetryPolicy
from choreograph.runtime.context import Context
from choreograph.runtime.errors import NonRetryableError
from choreograph.runtime.service import Service
from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentFailed, RefundPayment

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def order(order_id: str = "o-1", total: str = "10.00") -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c",
        customer_email="e@x",
        total=Decimal(total),
        lines=[OrderLine(sku="s", quantity=1)],
        placed_at=T0,
    )


def counting_service() -> Service:
    service = Service(
        "payments", ["orders.events"], outputs=["payments.events"], stores=["orders_seen"]
    )

    @service.handle(OrderPlaced)
    def authorize(ctx: Context, event: OrderPlaced) -> None:
        seen = ctx.store("orders_seen")
        seen.put(ctx.key, seen.get(ctx.key, 0) + 1)
        ctx.emit(
            PaymentAuthorized(
                order_id=event.order_id, payment_id=f"p-{ctx.key}", amount=event.total
            )
        )

    return service


def test_handler_updates_state_and_emits_with_causation() -> None:
    kit = TestKit(counting_service(), start=T0)
    sent = kit.send(order(), key="o-1")
    kit.send(order(), key="o-1")
    assert kit.store("orders_seen").get("o-1") == 2
    [first, _] = kit.emitted(PaymentAuthorized)
    assert first.topic == "payments.events" and first.key == "o-1"
    assert first.event.amount == Decimal("10.00")
    assert first.envelope.causation_id == sent.id
    assert first.envelope.correlation_id == sent.correlation_id
    assert first.envelope.source == "payments"


def payment_machine() -> StateMachine:
    m = StateMachine("payment")
    m.state("authorizing", timeout=timedelta(minutes=15), on_timeout="timed_out")
    m.state("authorized")
    m.terminal("captured")
    m.terminal("failed", outcome="failure")
    m.terminal("timed_out", outcome="failure")

    @m.on(OrderPlaced, source="new", target="authorizing", guard=lambda e, _: e.total > 0)
    def start(ctx: Context, event: OrderPlaced, data: dict) -> dict:
        return {"total": str(event.total)}

    m.on(OrderPlaced, source="new", target="captured")(lambda ctx, e, d: {"free": True})
    m.on(PaymentAuthorized, source="authorizing", target="authorized")(
        lambda ctx, e, d: {**d, "pid": e.payment_id}
    )
    m.on(PaymentFailed, source=["authorizing", "authorized"], target="failed")(None)  # type: ignore[arg-type]

    @m.compensation("authorized")
    def refund(ctx: Context, data: dict) -> None:
        ctx.emit(RefundPayment(order_id=ctx.key, reason="order failed"))

    return m


@pytest.fixture
def machine_kit() -> tuple[TestKit, StateMachine]:
    service = Service(
        "payments",
        ["orders.events", "payments.events"],
        outputs=["payments.events", "payments.commands"],
    )
    machine = service.add_machine(payment_machine())
    return TestKit(service, start=T0), machine


def test_guard_picks_the_transition(machine_kit: tuple[TestKit, StateMachine]) -> None:
    kit, m = machine_kit
    kit.send(order("a", "5.00"), key="a")
    kit.send(order("b", "0.00"), key="b")
    assert kit.state(m, "a").state == "authorizing"
    free = kit.state(m, "b")
    assert (free.state, free.outcome, free.data) == ("captured", "success", {"free": True})


def test_timeout_fires_at_deadline_never_early(machine_kit: tuple[TestKit, StateMachine]) -> None:
    kit, m = machine_kit
    kit.send(order(), key="o-1")
    kit.advance(timedelta(minutes=14, seconds=59))
    assert kit.state(m, "o-1").state == "authorizing"
    kit.advance(timedelta(seconds=2))
    inst = kit.state(m, "o-1")
    assert (inst.state, inst.outcome) == ("timed_out", "failure")
    assert inst.timed_out_in == "authorizing" and "timed_out_in" not in inst.data
    assert kit.now == T0 + timedelta(minutes=15, seconds=1)


def test_leaving_a_state_cancels_its_timer(machine_kit: tuple[TestKit, StateMachine]) -> None:
    kit, m = machine_kit
    kit.send(order(), key="o-1")
    kit.send(PaymentAuthorized(order_id="o-1", payment_id="p", amount=Decimal(1)), key="o-1")
    kit.advance(timedelta(hours=1))
    assert kit.state(m, "o-1").state == "authorized"
    assert kit.next_deadline() is None


def test_failure_runs_compensations_of_completed_states(
    machine_kit: tuple[TestKit, StateMachine],
) -> None:
    kit, m = machine_kit
    placed = kit.send(order(), key="o-1")
    kit.send(
        PaymentAuthorized(order_id="o-1", payment_id="p", amount=Decimal(1)),
        key="o-1",
        parent=placed,
    )
    kit.send(PaymentFailed(order_id="o-1", reason="chargeback"), key="o-1", parent=placed)
    inst = kit.state(m, "o-1")
    assert (inst.state, inst.outcome) == ("failed", "failure")
    [refund] = kit.emitted(RefundPayment)
    assert refund.topic == "payments.commands" and refund.key == "o-1"
    assert refund.envelope.correlation_id == placed.correlation_id
    assert inst.compensated == ["authorized"] and "compensated" not in inst.data


def test_events_after_a_terminal_state_are_ignored(
    machine_kit: tuple[TestKit, StateMachine],
) -> None:
    kit, m = machine_kit
    kit.send(order(), key="o-1")
    kit.send(PaymentFailed(order_id="o-1", reason="x"), key="o-1")
    kit.send(PaymentAuthorized(order_id="o-1", payment_id="p", amount=Decimal(1)), key="o-1")
    assert kit.state(m, "o-1").state == "failed"
    assert kit.emitted(RefundPayment) == []  # nothing completed that needs undoing


def test_machine_definition_errors_are_caught_at_registration() -> None:
    m = StateMachine("broken")
    m.on(OrderPlaced, source="new", target="nowhere")(None)  # type: ignore[arg-type]
    with pytest.raises(MachineDefinitionError, match="unknown state 'nowhere'"):
        Service("s", ["t"]).add_machine(m)


def flaky_service(fail_times: int, error: type[Exception] = RuntimeError) -> Service:
    service = Service(
        "payments", ["orders.events"], outputs=["payments.events"], stores=["attempts"]
    )
    calls = {"n": 0}

    @service.handle(OrderPlaced)
    def handle(ctx: Context, event: OrderPlaced) -> None:
        calls["n"] += 1
        ctx.store("attempts").put(ctx.key, calls["n"])  # must vanish when the attempt fails
        ctx.emit(PaymentFailed(order_id=event.order_id, reason=f"attempt {calls['n']}"))
        if calls["n"] <= fail_times:
            raise error("downstream unavailable")

    return service


def test_retryable_errors_retry_with_backoff_and_leave_no_trace() -> None:
    kit = TestKit(
        flaky_service(2), start=T0, retry=RetryPolicy(max_attempts=5, initial_backoff_s=1)
    )
    kit.send(order(), key="o-1")
    assert kit.attempts == [3]
    assert [e.reason for e in kit.events(PaymentFailed)] == ["attempt 3"]
    assert kit.store("attempts").get("o-1") == 3
    assert kit.dead_letters == []
    assert kit.now == T0  # retries are immediate: the test's clock is its own


def test_retries_move_the_virtual_clock_when_the_test_asks() -> None:
    kit = TestKit(
        flaky_service(2),
        start=T0,
        retry=RetryPolicy(max_attempts=5, initial_backoff_s=1),
        retries_move_clock=True,
    )
    kit.send(order(), key="o-1")
    assert kit.attempts == [3]
    assert T0 + timedelta(seconds=1.5) <= kit.now <= T0 + timedelta(seconds=3)  # 0.5-1 s + 1-2 s


def test_exhausted_retries_go_to_the_dlq() -> None:
    kit = TestKit(flaky_service(99), start=T0, retry=RetryPolicy(max_attempts=3))
    kit.send(order(), key="o-1")
    [dead] = kit.dead_letters
    assert dead.attempts == 3 and "downstream unavailable" in str(dead.error)
    assert kit.outputs == [] and kit.store("attempts").get("o-1") is None


def test_non_retryable_and_malformed_records_go_to_the_dlq_at_once() -> None:
    kit = TestKit(flaky_service(99, NonRetryableError), start=T0)
    kit.send(order(), key="o-1")
    kit.deliver(
        "orders.events",
        b"o-2",
        b"\x00garbage",
        [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"x"),
            ("ce_type", b"com.acme.orders.OrderPlaced"),
        ],
    )
    assert [d.attempts for d in kit.dead_letters] == [1, 1]
    assert "schema id" in str(kit.dead_letters[1].error) or "decode" in str(
        kit.dead_letters[1].error
    )


def test_backoff_is_bounded_and_jittered() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=5, multiplier=2)
    assert policy.backoff(1, 0.0) == pytest.approx(0.1) and policy.backoff(1, 0.999) < 0.2
    assert policy.backoff(30, 0.999) <= 5 and policy.backoff(30, 0.0) == pytest.approx(2.5)


def test_timer_handler_follows_the_scheduling_event() -> None:
    service = Service("reminders", ["orders.events"], outputs=["payments.events"])

    @service.handle(OrderPlaced)
    def remind_later(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("remind", timedelta(hours=1), {"order": event.order_id})

    @service.timer("remind")
    def remind(ctx: Context, payload: dict) -> None:
        ctx.emit(PaymentFailed(order_id=payload["order"], reason="reminder"))

    kit = TestKit(service, start=T0)
    sent = kit.send(order(), key="o-1")
    kit.advance(timedelta(minutes=59))
    assert kit.outputs == []
    kit.advance(timedelta(minutes=2))
    [out] = kit.emitted(PaymentFailed)
    assert (
        out.envelope.causation_id == sent.id and out.envelope.correlation_id == sent.correlation_id
    )


def test_undeclared_store_is_a_clear_error() -> None:
    service = Service("s", ["orders.events"])
    service.handle(OrderPlaced)(lambda ctx, e: ctx.store("nope"))
    kit = TestKit(service, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(KeyError, match="store 'nope' is not declared"):
        kit.send(order(), key="k")


def test_timer_handlers_can_serve_a_name_prefix() -> None:
    service = Service("deadlines", ["orders.events"], outputs=["payments.events"])

    @service.handle(OrderPlaced)
    def two_deadlines(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("deadline:payment", timedelta(minutes=15))
        ctx.schedule("deadline:process", timedelta(hours=2))

    @service.timer("deadline:*")
    def passed(ctx: Context, payload: dict) -> None:
        ctx.emit(PaymentFailed(order_id=ctx.key, reason="deadline"))

    kit = TestKit(service, start=T0)
    kit.send(order(), key="o-1")
    kit.advance(timedelta(hours=3))
    assert len(kit.emitted(PaymentFailed)) == 2  # both distinct timers fired through one handler
