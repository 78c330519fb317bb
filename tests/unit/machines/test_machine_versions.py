"""Machine versions: each stored instance records the version it runs under; a new release
keeps the older version registered until its instances drain, or declares where each state
went; a release that would strand stored instances is refused at start-up, naming the states and
how many instances are in them. In the TestKit exactly as in the engine (`kit.deploy`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from choreograph import Context, Service, StateMachine, TestKit
from choreograph.governance.contracts_bound import DECISIONS_TOPIC
from choreograph.machines.machine import MachineDefinitionError, StrandedInstances
from choreograph.runtime.errors import ConfigurationError, TopologyError
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentFailed
from tests.unit.runtime.test_records_that_lie import ORDER

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def paid(key: str) -> PaymentAuthorized:
    return PaymentAuthorized(order_id=key, payment_id="p", amount=ORDER.total)


def v1() -> StateMachine:
    m = StateMachine("payment", version=1)
    m.state("awaiting", timeout=timedelta(minutes=30), on_timeout="timed_out")
    m.terminal("paid")
    m.terminal("timed_out", outcome="failure")

    @m.on(OrderPlaced, source="new", target="awaiting")
    def start(ctx: Context, event: OrderPlaced, data: dict[str, Any]) -> dict[str, Any]:
        return {"cents": int(event.total * 100)}

    m.transition(PaymentAuthorized, source="awaiting", target="paid")

    @m.on_timeout("awaiting")
    def escalate(ctx: Context, data: dict[str, Any]) -> None:
        ctx.emit(PaymentFailed(order_id=ctx.key, reason=f"v1: no payment of {data['cents']}"))

    return m


def v2(migrate: bool = True) -> StateMachine:
    """`awaiting` is now `awaiting_payment`, with a shorter timeout and data in euros."""
    m = StateMachine("payment", version=2)
    m.state("awaiting_payment", timeout=timedelta(minutes=10), on_timeout="timed_out")
    m.terminal("paid")
    m.terminal("timed_out", outcome="failure")

    @m.on(OrderPlaced, source="new", target="awaiting_payment")
    def start(ctx: Context, event: OrderPlaced, data: dict[str, Any]) -> dict[str, Any]:
        return {"euros": str(event.total)}

    m.transition(PaymentAuthorized, source="awaiting_payment", target="paid")

    @m.on_timeout("awaiting_payment")
    def escalate(ctx: Context, data: dict[str, Any]) -> None:
        ctx.emit(PaymentFailed(order_id=ctx.key, reason=f"v2: no payment of {data['euros']}"))

    if migrate:
        m.migrate(1, {"awaiting": "awaiting_payment"},
                  data=lambda d: {"euros": f"{d['cents'] / 100:.2f}"})  # fmt: skip
    return m


def service(*machines: StateMachine) -> Service:
    found = Service("payments-flow", ["orders.events", "payments.events"],
                    outputs=["payments.events"])  # fmt: skip
    for m in machines:
        found.add_machine(m)
    return found


def started_on_v1(*keys: str) -> TestKit:
    kit = TestKit(service(v1()), start=T0)
    for key in keys:
        kit.send(ORDER.model_copy(update={"order_id": key}), key=key)
    return kit


def test_each_instance_records_its_version() -> None:
    kit = started_on_v1("o-1")
    inst = kit.state(v1(), "o-1")
    assert inst is not None and (inst.version, inst.state) == (1, "awaiting")


def test_a_release_that_would_strand_instances_is_refused_naming_states_and_counts() -> None:
    kit = started_on_v1("o-1", "o-2", "o-3")
    kit.send(paid("o-3"), key="o-3")  # ended: nothing strands it
    with pytest.raises(StrandedInstances) as refused:
        kit.deploy(service(v2(migrate=False)))
    message = str(refused.value)
    assert "2 in state 'awaiting' of v1" in message
    assert "payment.migrate(1, {'awaiting': ...})" in message and "add_machine" in message
    assert isinstance(refused.value, ConfigurationError)  # `service.run` says it in one line
    assert kit.service.machines[0].version == 1  # the old release still runs


def test_a_state_removed_without_a_new_version_strands_too() -> None:
    kit = started_on_v1("o-1")
    renamed = v2(migrate=False)
    renamed.version = 1
    with pytest.raises(StrandedInstances, match="1 in state 'awaiting' of v1") as refused:
        kit.deploy(service(renamed))
    assert "new version (StateMachine('payment', version=2))" in str(refused.value)


def test_a_migration_moves_stored_instances_to_the_new_version_when_next_touched() -> None:
    kit = started_on_v1("o-1", "o-2")
    kit.deploy(service(v2()))
    kit.send(paid("o-1"), key="o-1")
    done = kit.state(v2(), "o-1")
    assert done is not None and (done.version, done.state, done.visited) == (
        2, "paid", ["awaiting_payment"])  # fmt: skip
    # o-2's v1 timer (30 min) fires into the migrated state, whose action is v2's.
    kit.advance(timedelta(minutes=31))
    [failed] = kit.events(PaymentFailed)
    assert failed.reason == "v2: no payment of 12.50"
    timed_out = kit.state(v2(), "o-2")
    assert timed_out is not None and (timed_out.version, timed_out.state) == (2, "timed_out")
    assert timed_out.data == {"euros": "12.50"}


def test_an_older_version_kept_registered_runs_its_instances_until_they_drain() -> None:
    kit = started_on_v1("o-1")
    kit.deploy(service(v2(migrate=False), v1()))  # either order of adding
    kit.send(ORDER.model_copy(update={"order_id": "o-new"}), key="o-new")
    old, new = kit.state(v1(), "o-1"), kit.state(v2(), "o-new")
    assert old is not None and (old.version, old.state) == (1, "awaiting")
    assert new is not None and (new.version, new.state) == (2, "awaiting_payment")
    kit.advance(timedelta(minutes=31))  # each times out under its own rules
    reasons = sorted(e.reason for e in kit.events(PaymentFailed))
    assert reasons == ["v1: no payment of 1250", "v2: no payment of 12.50"]
    decisions = [e.event for e in kit.emitted(topic=DECISIONS_TOPIC)]
    assert sorted(d.version for d in decisions if d.to_state == "timed_out") == [1, 2]


def test_versions_of_one_machine_are_distinct_and_migrations_point_at_known_states() -> None:
    with pytest.raises(TopologyError, match="raise the new one's version"):
        service(v1(), v1())
    with pytest.raises(MachineDefinitionError, match="unknown state 'gone'"):
        service(v2().migrate(1, {"awaiting": "gone"}))
    with pytest.raises(MachineDefinitionError, match="from an older version"):
        v1().migrate(1, {})


def test_instances_stored_before_versions_were_recorded_count_as_v1() -> None:
    kit = started_on_v1("o-1")
    task = kit.task_for("o-1")
    raw = dict(task.stores["machine.payment"].get("o-1"))
    del raw["version"]
    task.stores["machine.payment"].put("o-1", raw)
    task.end_message(ok=True)
    task.committed()
    assert "version" not in task.stores["machine.payment"].get("o-1")
    with pytest.raises(StrandedInstances, match="1 in state 'awaiting' of v1"):
        kit.deploy(service(v2(migrate=False)))
    kit.deploy(service(v2()))
    kit.send(paid("o-1"), key="o-1")
    assert kit.state(v2(), "o-1").state == "paid"  # type: ignore[union-attr]


def test_a_machine_reads_its_events_from_the_topics_the_service_names() -> None:
    renamed = Service("staging-flow", ["staging.orders", "staging.payments"])
    with pytest.raises(TopologyError, match=r"not an input.*topics=\{'(orders|payments).events'"):
        renamed.add_machine(v1())
    renamed.add_machine(v1(), topics={"orders.events": "staging.orders",
                                      "payments.events": "staging.payments"})  # fmt: skip
    kit = TestKit(renamed, start=T0)
    kit.send(ORDER, key="o-1", topic="staging.orders")
    assert kit.state(v1(), "o-1").state == "awaiting"  # type: ignore[union-attr]


KEPT_V1, KEPT_V2 = v1(), v2(migrate=False)


def both_versions() -> Service:
    return service(KEPT_V2, KEPT_V1)


def test_choreograph_check_counts_a_kept_older_version_as_added(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from choreograph.cli.main import main

    assert main(["check", "tests.unit.machines.test_machine_versions:both_versions"]) == 0
    assert "is defined but not added" not in capsys.readouterr().err


def test_a_deploy_while_records_are_held_back_says_what_to_do() -> None:
    kit = started_on_v1("o-1")
    with kit.behind("orders.events"):
        kit.send(paid("o-1"), key="o-1")  # held: its order's input is behind
        with pytest.raises(RuntimeError, match=r"leave the `with kit\.behind"):
            kit.deploy(service(v2()))
    kit.deploy(service(v2()))
    assert kit.state(v1(), "o-1").state == "paid"  # type: ignore[union-attr]
