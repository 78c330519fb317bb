"""Decision records: what each machine transition and each saga tracker decision leaves as
evidence, with the outputs of the same handling (so in the same transaction in production)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from choreograph import TestKit
from choreograph.contracts.envelope import Envelope
from choreograph.governance.contracts_bound import DECISIONS_TOPIC
from choreograph_examples.orders.service import build as orders
from saga_tracker.service import ACTION, REPARTITION
from tests.unit.governance.test_policies import T0, order
from tests.unit.saga_tracker.test_tracker_service import MODELS, instance, kit, send

__all__ = ["kit"]  # the tracker fixture


def decisions(k: TestKit) -> list[Any]:
    return [e.event for e in k.emitted(topic=DECISIONS_TOPIC)]


def test_each_transition_of_a_machine_is_recorded_with_its_trigger() -> None:
    k = TestKit(orders(open_for=timedelta(minutes=30)), start=T0)
    placed = k.send(order(), key="o-1", correlation_id="p-1")
    k.advance(timedelta(minutes=31))  # the order's timeout cancels it
    opened, cancelled = decisions(k)
    assert (opened.subject, opened.name, opened.version, opened.kind) == (
        "machine", "order", 1, "transition"
    )  # fmt: skip
    assert (opened.from_state, opened.to_state) == ("new", "open")
    assert (opened.trigger_event_id, opened.trigger_event_type) == (placed.id, placed.type)
    assert (opened.correlation_id, opened.instance, opened.actor) == ("p-1", "o-1", "orders")
    assert (cancelled.kind, cancelled.from_state, cancelled.to_state) == (
        "timeout", "open", "cancelled"
    )  # fmt: skip
    assert cancelled.trigger_event_type == "timer:machine.order.timeout"
    assert cancelled.trigger_event_id is None and cancelled.correlation_id == "p-1"
    assert cancelled.at == T0 + timedelta(minutes=30)
    # In the same handling as the effect: the cancellation and its record go out together.
    types = [e.envelope.type for e in k.outputs]
    assert types[-2:] == ["com.acme.orders.OrderCancelled", "dev.choreograph.DecisionRecord"]


def test_the_same_handling_of_the_same_record_decides_under_the_same_id() -> None:
    first, again = (TestKit(orders(), start=T0) for _ in range(2))
    envelope = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1", correlation_id="p-1")
    for k in (first, again):
        value = k.serde.serialize(order(), "orders.events")
        k.deliver("orders.events", b"o-1", value, envelope.to_headers())
    assert [d.decision_id for d in decisions(first)] == [d.decision_id for d in decisions(again)]


def test_the_tracker_records_timeouts_compensations_and_escalations(kit: TestKit) -> None:
    send(kit, "com.acme.orders.OrderPlaced")
    send(kit, "com.acme.payments.PaymentAuthorized")
    kit.advance(timedelta(minutes=10, seconds=1))  # the reservation deadline passes
    found = [(d.kind, d.from_state, d.to_state) for d in decisions(kit)]
    assert found[0] == ("timeout", "running", "compensating")
    assert sorted(found[1:]) == [
        ("compensation", "running", "compensating"),  # release the stock, in doubt
        ("compensation", "running", "compensating"),  # refund the payment
        ("escalation", "running", "compensating"),
    ]
    timeout, *rest = decisions(kit)
    sent = sorted(d.reason.split()[1] for d in rest if d.kind == "compensation")
    assert sent == ["com.acme.inventory.ReleaseStock", "com.acme.payments.RefundPayment"]
    [page] = [d for d in rest if d.kind == "escalation"]
    assert timeout.trigger_event_type == "timer:deadline:order-fulfilment:reservation"
    assert (timeout.subject, timeout.name, timeout.version) == ("process", "order-fulfilment", 1)
    assert {d.correlation_id for d in decisions(kit)} == {"c-1"} and page.actor == "saga-tracker"


def test_an_applied_operator_action_is_recorded_with_the_operator(kit: TestKit) -> None:
    send(kit, "com.acme.orders.OrderPlaced")
    kit.advance(timedelta(minutes=16))  # the payment times out: refund asked, never confirmed
    kit.advance(timedelta(minutes=11))  # ...so the undo escalates
    assert instance(kit).status == "needs_manual_resolution"
    action = MODELS[ACTION].from_avro(
        {"action_id": "a-1", "action": "RESOLVE", "correlation_id": "c-1",
         "process": "order-fulfilment", "step": None, "actor": "alice",
         "reason": "refunded by hand", "requested_at": kit.now}
    )  # fmt: skip
    value = kit.serde.serialize(action, REPARTITION)
    envelope = Envelope.new(ACTION, "saga-tracker-api", "c-1", correlation_id="c-1")
    kit.deliver(REPARTITION, b"c-1", value, envelope.to_headers())
    last = decisions(kit)[-1]
    assert (last.kind, last.actor, last.actor_kind, last.actor_instance) == (
        "operator-action", "alice", "operator", None
    )  # fmt: skip
    assert (last.from_state, last.to_state) == ("needs_manual_resolution", "resolved")
    assert "refunded by hand" in last.reason and last.trigger_event_id == envelope.id


def test_a_services_decisions_show_on_the_instances_trace() -> None:
    import json
    import urllib.request

    from saga_tracker.service import build_tracker
    from saga_tracker.traces import TraceServer, committed_decisions, committed_instances
    from tests.unit.saga_tracker.test_tracker_service import V1, definitions

    shop = TestKit(orders(open_for=timedelta(minutes=30)), start=T0)
    placed = shop.send(order(), key="o-1", correlation_id="p-1")
    shop.advance(timedelta(minutes=31))
    tracker = TestKit(build_tracker(definitions(V1), MODELS), start=T0)
    tracker.deliver(REPARTITION, b"p-1", None, placed.to_headers())
    for out in shop.emitted(topic=DECISIONS_TOPIC):  # as the router forwards them
        value = tracker.serde.serialize(out.event, DECISIONS_TOPIC)  # type: ignore[arg-type]  # each kit has its own registry
        tracker.deliver(REPARTITION, b"p-1", value, out.headers)
    tasks = lambda: tracker.tasks  # noqa: E731
    server = TraceServer(committed_instances(tasks), decisions=committed_decisions(tasks)).start()
    try:
        with urllib.request.urlopen(f"{server.url}/api/instances/p-1") as reply:
            shown = json.load(reply)["decisions"]
        with urllib.request.urlopen(f"{server.url}/traces/p-1") as reply:
            page = reply.read().decode()
    finally:
        server.stop()
    assert [(d["kind"], d["by"], d["from"], d["to"]) for d in shown] == [
        ("transition", "machine order v1", "new", "open"),
        ("timeout", "machine order v1", "open", "cancelled"),
    ]
    assert "Decisions of the services" in page and "machine order v1" in page
