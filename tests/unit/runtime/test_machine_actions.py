"""State machines act: on entering a state and on a timeout; timeouts restart or are cancelled
by a transition; the user's data holds only what actions return; unmatched events are ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from choreograph import Context, Service, StateMachine, TestKit
from choreograph.machines.machine import MachineDefinitionError
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentFailed
from tests.unit.runtime.test_records_that_lie import ORDER

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAID = PaymentAuthorized(order_id="o-1", payment_id="p", amount=ORDER.total)


def machine(timeout: str = "restart") -> StateMachine:
    m = StateMachine("watch")
    m.state("waiting", timeout=timedelta(minutes=30), on_timeout="expired")
    m.terminal("expired", outcome="failure")

    @m.on(OrderPlaced, source="new", target="waiting")
    def start(ctx: Context, event: OrderPlaced, data: dict[str, Any]) -> dict[str, Any]:
        return {"pings": 0}

    @m.on(PaymentAuthorized, source="waiting", target="waiting", timeout=timeout)  # type: ignore[arg-type]
    def ping(ctx: Context, event: PaymentAuthorized, data: dict[str, Any]) -> dict[str, Any]:
        return {"pings": data["pings"] + 1}

    @m.on_enter("waiting")
    def entered(ctx: Context, data: dict[str, Any]) -> None:
        ctx.store("log").put(ctx.key, (ctx.store("log").get(ctx.key) or 0) + 1)

    @m.on_timeout("waiting")
    def escalate(ctx: Context, data: dict[str, Any]) -> None:
        ctx.emit(PaymentFailed(order_id=ctx.key, reason=f"no answer after {data['pings']} pings"))

    return m


def kit_for(m: StateMachine) -> TestKit:
    service = Service(
        "watcher", ["orders.events", "payments.events"], outputs=["payments.events"],
        stores=["log"],
    )  # fmt: skip
    service.add_machine(m)
    return TestKit(service, start=T0)


def test_a_transition_restarts_the_timeout_and_the_timeout_action_escalates() -> None:
    m = machine()
    kit = kit_for(m)
    kit.send(ORDER, key="o-1")
    kit.advance(timedelta(minutes=20))
    kit.send(PAID, key="o-1")  # the clock starts again: 30 minutes from now
    kit.advance(timedelta(minutes=20))
    assert kit.events(PaymentFailed) == []
    kit.advance(timedelta(minutes=11))
    [escalation] = kit.events(PaymentFailed)
    assert escalation.reason == "no answer after 1 pings"
    inst = kit.state(m, "o-1")
    assert inst is not None and (inst.state, inst.timed_out_in) == ("expired", "waiting")
    assert inst.data == {"pings": 1}  # bookkeeping kept beside the user's data
    assert kit.store("log").get("o-1") == 2  # entered twice


def test_a_transition_can_cancel_the_timeout() -> None:
    m = machine(timeout="cancel")
    kit = kit_for(m)
    kit.send(ORDER, key="o-1")
    kit.send(PAID, key="o-1")
    kit.advance(timedelta(days=1))
    assert kit.events(PaymentFailed) == []
    assert kit.state(m, "o-1").state == "waiting"  # type: ignore[union-attr]


def test_an_event_no_transition_takes_is_ignored_not_ok() -> None:
    kit = kit_for(machine())
    kit.send(PAID, key="o-1")  # no instance in "waiting"
    assert kit.outcomes == ["ignored"]
    kit.send(ORDER, key="o-1")
    assert kit.outcomes == ["ignored", "ok"]


def test_a_timeout_action_without_a_timeout_is_a_definition_error() -> None:
    m = StateMachine("broken").terminal("done")
    m.on_timeout("new")(lambda ctx, data: None)
    with pytest.raises(MachineDefinitionError, match="timeout action but no timeout"):
        m.validate()
