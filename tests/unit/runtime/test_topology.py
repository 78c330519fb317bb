"""Mistakes in how a service is put together fail where they are made, saying what to add."""

from __future__ import annotations

from datetime import timedelta

import pytest

from choreograph import Context, Service, StateMachine, TestKit
from choreograph.runtime.errors import TopologyError
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, RefundPayment
from tests.unit.runtime.test_records_that_lie import ORDER


def test_a_handler_for_a_type_on_no_input_is_refused_naming_the_topic() -> None:
    service = Service("loyalty", ["payments.events"])
    with pytest.raises(TopologyError, match=r"add 'orders.events' to Service\('loyalty'"):
        service.handle(OrderPlaced)


def test_a_handler_for_something_that_is_not_a_contract_is_refused() -> None:
    service = Service("loyalty", ["orders.events"])
    with pytest.raises(TopologyError, match="not a contract event"):
        service.handle(dict)  # type: ignore[type-var]


def test_emitting_to_an_undeclared_output_fails_in_the_test() -> None:
    service = Service("loyalty", ["orders.events"], outputs=["payments.events"])

    @service.handle(OrderPlaced)
    def refund(ctx: Context, event: OrderPlaced) -> None:
        ctx.emit(RefundPayment(order_id=ctx.key, reason="x"))

    kit = TestKit(service)
    with pytest.raises(TopologyError, match=r"outputs=\[\.\.\., 'payments.commands'\]"):
        kit.send(ORDER, key="o-1")


def test_machines_are_checked_and_named_once() -> None:
    service = Service("loyalty", ["orders.events"])
    machine = StateMachine("points").terminal("done")
    machine.on(PaymentAuthorized, source="new", target="done")(lambda ctx, e, data: None)
    with pytest.raises(TopologyError, match=r"add 'payments\.events'"):
        service.add_machine(machine)
    twin = Service("loyalty", ["orders.events", "payments.events"])
    twin.add_machine(machine)
    with pytest.raises(TopologyError, match="two state machines are named 'points'"):
        twin.add_machine(machine)


def test_the_testkit_refuses_records_the_service_would_never_see() -> None:
    service = Service("loyalty", ["orders.events"])
    kit = TestKit(service)
    with pytest.raises(TopologyError, match=r"does not consume payments\.events"):
        kit.deliver("payments.events", b"k", b"", [])
    with pytest.raises(TypeError, match="contract event"):
        kit.send({"order_id": "o-1"}, key="o-1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="business key as text"):
        kit.send(ORDER, key=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only moves forward"):
        kit.advance(timedelta(seconds=-1))


def test_inputs_and_outputs_must_be_lists() -> None:
    with pytest.raises(TopologyError, match="lists of topics"):
        Service("loyalty", "orders.events")


def test_choreograph_check_builds_services_and_reports_what_does_not_add_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from choreograph.cli.main import main

    assert main(["check", "choreograph_examples.payments.service:build"]) == 0
    assert "ok  payments: 2 inputs, 2 outputs" in capsys.readouterr().out  # and its decisions
    assert main(["check", "tests.unit.runtime.test_topology:misbuilt"]) == 1
    assert "add 'orders.events'" in capsys.readouterr().err
    assert main(["check", "tests.unit.runtime.test_topology:unlisted"]) == 1
    err = capsys.readouterr().err
    assert "no contract in the catalog is published on nowhere.events" in err
    assert "state machine 'forgotten'" in err and "is defined but not added" in err


def misbuilt() -> Service:
    service = Service("misbuilt", ["payments.events"])
    service.handle(OrderPlaced)(lambda ctx, event: None)
    return service


def unlisted() -> Service:
    return Service("unlisted", ["orders.events"], outputs=["nowhere.events"])


def test_a_machine_used_without_add_machine_says_so() -> None:
    machine = StateMachine("points").terminal("done")
    machine.transition(OrderPlaced, source="new", target="done")
    service = Service("loyalty", ["orders.events"])

    @service.handle(OrderPlaced)
    def by_hand(ctx: Context, event: OrderPlaced) -> None:
        machine.handle(ctx, event)

    with pytest.raises(KeyError, match=r"add it with service\.add_machine"):
        TestKit(service).send(ORDER, key="o-1")


def test_state_that_json_cannot_give_back_is_refused_with_the_fix() -> None:
    service = Service("loyalty", ["orders.events"], stores=["seen"])

    @service.handle(OrderPlaced)
    def remember(ctx: Context, event: OrderPlaced) -> None:
        ctx.store("seen").put(ctx.key, {"skus": {line.sku for line in event.lines}})

    with pytest.raises(TypeError, match=r"a set cannot be stored.*sorted list"):
        TestKit(service).send(ORDER, key="o-1")


FORGOTTEN = StateMachine("forgotten").terminal("done")


def test_state_with_keys_that_are_not_text_is_refused_with_the_fix() -> None:
    service = Service("counts", ["orders.events"], stores=["per-quantity"])

    @service.handle(OrderPlaced)
    def count(ctx: Context, event: OrderPlaced) -> None:
        ctx.store("per-quantity").put(ctx.key, {line.quantity: line.sku for line in event.lines})

    with pytest.raises(TypeError, match=r"keys that are not strings.*str\(key\)"):
        TestKit(service).send(ORDER, key="o-1")
