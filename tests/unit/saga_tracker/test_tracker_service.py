"""The tracker service, driven in memory: correlation, pinning, timers, compensations, incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from choreograph.contracts.envelope import Envelope
from choreograph.process.definition import parse_definition
from choreograph.testing.testkit import TestKit
from saga_tracker.codec import decode, encode
from saga_tracker.definitions import Definitions, command_and_incident_models
from saga_tracker.service import REPARTITION, build_tracker

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
V1 = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
MODELS = command_and_incident_models(REPO / "schemas/avro")


def definitions(*texts: str) -> Definitions:
    return Definitions(parse_definition(t, "p.yaml").definition for t in texts)


@pytest.fixture
def kit() -> TestKit:
    return TestKit(build_tracker(definitions(V1), MODELS), start=T0)


def send(kit: TestKit, kind: str, corr: str = "c-1", key: str = "o-1") -> Envelope:
    envelope = Envelope.new(kind, "some-team", key, correlation_id=corr, now=kit.now)
    kit.deliver(REPARTITION, corr.encode(), b"body not read", envelope.to_headers())
    return envelope


def instance(kit: TestKit, corr: str = "c-1", process: str = "order-fulfilment"):  # type: ignore[no-untyped-def]
    return decode(kit.store("instances").get(f"{corr}/{process}"))


HAPPY_PATH = (
    "orders.OrderPlaced",
    "payments.PaymentAuthorized",
    "inventory.StockReserved",
    "shipping.ShipmentDispatched",
    "orders.OrderCompleted",
)


def test_completed_saga_leaves_no_incident(kit: TestKit) -> None:
    for kind in HAPPY_PATH:
        send(kit, f"com.acme.{kind}")
        kit.advance(timedelta(minutes=1))
    inst = instance(kit)
    traces = kit.emitted(topic="choreograph.traces")
    assert inst.status == "completed" and len(kit.outputs) == len(traces)  # no command, no alert
    assert [t.event.status for t in traces] == ["completed"]  # on change, not at start
    assert traces[-1].key == "c-1" and traces[-1].event.ended_at == inst.ended_at
    assert [s.latency_ms for s in traces[-1].event.steps] == [60_000, 60_000, 60_000]
    assert kit.next_deadline() is None  # every deadline cancelled


def test_timed_out_step_is_compensated_with_a_real_command_and_an_incident(kit: TestKit) -> None:
    placed = send(kit, "com.acme.orders.OrderPlaced")
    send(kit, "com.acme.payments.PaymentAuthorized")
    kit.advance(timedelta(minutes=10, seconds=1))  # reservation deadline: 10 min after payment
    refund = kit.emitted(topic="payments.commands")
    assert len(refund) == 1 and refund[0].key == "o-1"
    assert (
        refund[0].event.order_id == "o-1" and refund[0].event.reason == "step reservation timed out"
    )
    assert refund[0].envelope.correlation_id == "c-1"
    [alert] = kit.emitted(topic="choreograph.alerts")
    assert (alert.event.status, alert.event.severity, alert.event.step) == (
        "RAISED",
        "critical",
        "reservation",
    )
    assert alert.event.owner == "orders-oncall" and alert.key == "c-1"
    assert instance(kit).status == "compensating"  # until refund and release are confirmed
    assert [r.key for r in kit.emitted(topic="inventory.commands")] == ["o-1"]  # in doubt
    send(kit, "com.acme.payments.PaymentRefunded")
    send(kit, "com.acme.inventory.StockReleased")
    assert instance(kit).status == "compensated"
    assert placed.correlation_id == "c-1"


def test_a_refund_confirmed_after_the_escalation_still_ends_the_saga(kit: TestKit) -> None:
    send(kit, "com.acme.orders.OrderPlaced")
    send(kit, "com.acme.payments.PaymentAuthorized")
    kit.advance(timedelta(minutes=10, seconds=1))  # reservation times out: refund, release sent
    kit.advance(timedelta(minutes=10, seconds=1))  # neither confirmed in time: escalations
    assert instance(kit).status == "needs_manual_resolution"
    send(kit, "com.acme.payments.PaymentRefunded")  # the undos were only slow
    send(kit, "com.acme.inventory.StockReleased")
    inst = instance(kit)
    # The escalations are resolved; the stuck reservation's page stays until it reports.
    assert inst.status == "compensated" and list(inst.open_incidents) == ["reservation"]
    alerts = [(e.event.status, e.event.step) for e in kit.emitted(topic="choreograph.alerts")]
    assert alerts == [
        ("RAISED", "reservation"),
        ("RAISED", "payment"),
        ("RAISED", "reservation"),
        ("RESOLVED", "payment"),
        ("RESOLVED", "reservation"),
    ]
    statuses = [t.event.status for t in kit.emitted(topic="choreograph.traces")]
    assert statuses == ["compensating", "needs_manual_resolution", "compensated"]
    # The reservation reports at last: it happened, perhaps after its release was handled, so
    # the release is sent again (releasing is safe to repeat) and the page waits for it.
    send(kit, "com.acme.inventory.StockReserved")
    inst = instance(kit)
    assert inst.status == "compensating" and list(inst.open_incidents) == ["reservation"]
    assert len(kit.emitted(topic="inventory.commands")) == 2
    send(kit, "com.acme.inventory.StockReleased")
    inst = instance(kit)
    assert inst.status == "compensated" and not inst.open_incidents


def test_alert_then_recovery_resolves_the_incident(kit: TestKit) -> None:
    for kind in ("orders.OrderPlaced", "payments.PaymentAuthorized", "inventory.StockReserved"):
        send(kit, f"com.acme.{kind}")
    kit.advance(timedelta(hours=1, minutes=1))  # shipping is late: alert only
    send(kit, "com.acme.shipping.ShipmentDispatched")
    statuses = [(e.event.status, e.event.step) for e in kit.emitted(topic="choreograph.alerts")]
    assert statuses == [("RAISED", "shipping"), ("RESOLVED", "shipping")]
    severities = {e.event.severity for e in kit.emitted(topic="choreograph.alerts")}
    assert severities == {"warning"}  # resolve matches the raise, label for label


def test_instances_stay_on_the_version_they_started_with() -> None:
    v2 = V1.replace("version: 1", "version: 2").replace("deadline: 15m", "deadline: 5m")
    kit = TestKit(build_tracker(definitions(V1, v2), MODELS), start=T0, partitions=1)
    old = (
        definitions(V1)
        .starting("com.acme.orders.OrderPlaced")[0]
        .start(Envelope.new("com.acme.orders.OrderPlaced", "t", "o-old", correlation_id="old"), T0)[
            0
        ]
    )
    kit.store("instances").put("old/order-fulfilment", encode(old))  # committed at once
    send(kit, "com.acme.orders.OrderPlaced", corr="new", key="o-new")
    send(kit, "com.acme.orders.OrderCompleted", corr="old", key="o-old")
    assert instance(kit, "new").version == 2 and instance(kit, "old").version == 1
    assert instance(kit, "old").status == "completed"


def test_unrelated_and_malformed_records_are_skipped(kit: TestKit) -> None:
    send(kit, "com.acme.shipping.ShipmentDispatched", corr="nobody")  # no instance, not a start
    kit.deliver(REPARTITION, b"x", b"", [("ce_type", b"com.acme.orders.OrderPlaced")])
    assert kit.outcomes == ["ok", "malformed"] and kit.dead_letters == []
    assert list(kit.store("instances").items()) == []


def test_events_that_overtake_the_start_are_parked_then_applied_in_event_time_order(
    kit: TestKit,
) -> None:
    payment = Envelope.new(
        "com.acme.payments.PaymentAuthorized",
        "pay",
        "o-1",
        correlation_id="c-1",
        now=kit.now + timedelta(seconds=2),
    )
    kit.deliver(REPARTITION, b"c-1", b"", payment.to_headers())  # arrives first
    assert (
        list(kit.store("instances").items()) == [] and len(list(kit.store("parked").items())) == 1
    )
    send(kit, "com.acme.orders.OrderPlaced")
    inst = instance(kit)
    assert (
        inst.steps["payment"].status == "completed"
        and inst.steps["reservation"].status == "running"
    )
    assert list(kit.store("parked").items()) == []


def test_parked_events_whose_start_never_comes_expire(kit: TestKit) -> None:
    send(kit, "com.acme.payments.PaymentAuthorized", corr="orphan")
    assert len(list(kit.store("parked").items())) == 1
    kit.advance(timedelta(hours=1, seconds=1))
    assert list(kit.store("parked").items()) == []


def _order_value(kit: TestKit) -> bytes:
    from decimal import Decimal

    from choreograph_examples.contracts.orders import OrderLine, OrderPlaced

    order = OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        customer_email="a@example.com",
        lines=[OrderLine(sku="MUG-1", quantity=1)],
        total=Decimal("12.50"),
        placed_at=T0,
    )
    return kit.serde.serialize(order, "orders.events")


def test_the_router_tracks_nothing_from_a_record_the_services_would_dead_letter() -> None:
    from choreograph_examples.contracts.payments import RefundPayment
    from saga_tracker.metrics import TrackerMetrics
    from saga_tracker.service import build_router

    metrics = TrackerMetrics()
    kit = TestKit(build_router(definitions(V1), ["orders.events"], metrics=metrics), start=T0)
    placed = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1", now=T0)
    refund = kit.serde.serialize(RefundPayment(order_id="o-1", reason="x"), "payments.commands")
    kit.deliver("orders.events", b"o-1", b"\x00garbage", placed.to_headers())  # unreadable
    kit.deliver("orders.events", b"o-1", refund, placed.to_headers())  # mislabelled
    assert [letter.attempts for letter in kit.dead_letters] == [1, 1]
    # A key that is not text is malformed, like a broken envelope: counted and skipped.
    kit.deliver("orders.events", b"\xff", _order_value(kit), placed.to_headers())
    assert kit.outcomes == ["malformed"]
    assert kit.emitted(topic=REPARTITION) == []
    counted = {
        s.labels["reason"]: s.value
        for s in metrics.rejected.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert counted == {"unreadable": 1.0, "mislabelled": 1.0}

    kit.deliver("orders.events", b"o-1", _order_value(kit), placed.to_headers())
    [forwarded] = kit.emitted(topic=REPARTITION)
    assert forwarded.key == placed.correlation_id


def test_a_minimal_start_event_is_tracked_under_its_key() -> None:
    from saga_tracker.service import build_router

    router = TestKit(build_router(definitions(V1), ["orders.events"]), start=T0)
    minimal = [("ce_specversion", b"1.0"), ("ce_id", b"java-1"), ("ce_source", b"/java"),
               ("ce_type", b"com.acme.orders.OrderPlaced"), ("x-java", b"\xfe")]  # fmt: skip
    router.deliver("orders.events", b"o-9", _order_value(router), minimal)
    [forwarded] = router.emitted(topic=REPARTITION)
    assert forwarded.key == "o-9"
    tracker = TestKit(build_tracker(definitions(V1), MODELS), start=T0)
    tracker.deliver(REPARTITION, b"o-9", forwarded.value, forwarded.envelope.to_headers())
    inst = instance(tracker, corr="o-9")
    assert (inst.correlation_id, inst.business_key) == ("o-9", "o-9")


def test_a_command_that_would_name_no_business_entity_is_withheld_and_pages(kit: TestKit) -> None:
    nameless = Envelope.new("com.acme.orders.OrderPlaced", "java", "", correlation_id="c-1")
    kit.deliver(REPARTITION, b"c-1", None, nameless.to_headers())
    assert instance(kit).business_key == ""
    kit.advance(timedelta(minutes=15, seconds=1))  # payment in doubt: its refund is due
    assert kit.emitted(topic="payments.commands") == []  # not a refund of order ''
    pages = [e.event for e in kit.emitted(topic="choreograph.alerts")]
    [withheld] = [p for p in pages if "not sent" in p.summary]  # besides the timeout's page
    assert withheld.severity == "critical" and withheld.step == "payment"
    assert "order_id would be empty" in withheld.summary
    assert "payment.compensation" in instance(kit).open_incidents


def test_the_timeline_keeps_where_each_event_was_read_even_when_it_was_parked() -> None:
    """A capture reads an instance's records at these coordinates instead of scanning topics."""
    from choreograph.runtime.context import REPARTITIONED_FROM, Origin
    from saga_tracker.service import build_router

    router = TestKit(
        build_router(definitions(V1), ["orders.events", "payments.events"]), start=T0, partitions=1
    )
    placed = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1", now=T0)
    paid = Envelope.new(
        "com.acme.payments.PaymentAuthorized", "pay", "o-1", correlation_id=placed.correlation_id,
        now=T0 + timedelta(seconds=1),
    )  # fmt: skip
    from decimal import Decimal

    from choreograph_examples.contracts.payments import PaymentAuthorized

    payment = router.serde.serialize(
        PaymentAuthorized(
            order_id="o-1", payment_id="p-1", amount=Decimal("12.50"), currency="EUR"
        ),
        "payments.events",
    )
    router.deliver("orders.events", b"o-1", b"", [])  # offset 0 of orders.events: malformed
    router.deliver("payments.events", b"o-1", payment, paid.to_headers())  # offset 0
    router.deliver("orders.events", b"o-1", _order_value(router), placed.to_headers())  # 1
    forwarded = router.emitted(topic=REPARTITION)
    origins = [dict(f.headers)[REPARTITIONED_FROM] for f in forwarded]
    assert origins == [b"payments.events/0/0", b"orders.events/0/1"]

    tracker = TestKit(build_tracker(definitions(V1), MODELS), start=T0)
    for f in forwarded:  # the payment overtakes the order: parked, then applied with its origin
        tracker.deliver(REPARTITION, f.key.encode(), f.value, f.headers)
    inst = instance(tracker, corr=placed.correlation_id)
    read = {e.event_type: Origin.parse(e.origin) for e in inst.timeline if e.kind == "event"}
    assert read == {
        "com.acme.orders.OrderPlaced": Origin("orders.events", 0, 1),
        "com.acme.payments.PaymentAuthorized": Origin("payments.events", 0, 0),
    }
    assert decode(encode(inst)).timeline == inst.timeline  # stored with the instance


def test_an_instance_has_one_timer_at_its_earliest_deadline(kit: TestKit) -> None:
    from choreograph.runtime.timers import TIMER_INDEX_STORE

    send(kit, "com.acme.orders.OrderPlaced")  # process (2 h) and payment (15 min) armed
    index = [k for k, _ in kit.task_for(b"c-1").stores[TIMER_INDEX_STORE].scan_raw()]
    assert index == [b"c-1\x00deadline:order-fulfilment"]  # one, not one per deadline
    assert kit.next_deadline() == int((T0 + timedelta(minutes=15)).timestamp() * 1000)
    send(kit, "com.acme.payments.PaymentAuthorized")  # payment done: reservation (10 min) next
    kit.advance(timedelta(minutes=9))
    assert kit.next_deadline() == int((T0 + timedelta(minutes=10)).timestamp() * 1000)
    kit.advance(timedelta(minutes=1, seconds=1))  # reservation passes: it is undone
    timeouts = [e.step for e in instance(kit).timeline if e.kind == "timeout"]
    assert timeouts == ["reservation"] and instance(kit).status == "compensating"


def test_a_timer_set_per_deadline_by_an_earlier_version_still_passes_its_deadline(
    kit: TestKit,
) -> None:
    """Timers of instances armed before one timer per instance: each names its deadline; it
    passes that deadline, unless the instance has armed it again for later since."""
    from choreograph.runtime.timers import deadline_ms

    send(kit, "com.acme.orders.OrderPlaced")
    task, key = kit.task_for(b"c-1"), "c-1/order-fulfilment"
    early = T0 + timedelta(minutes=1)
    for name in ("payment", "process"):  # as the earlier version scheduled them
        task.timers.schedule("c-1", f"deadline:order-fulfilment:{name}", deadline_ms(early),
                             {"instance": key, "name": name})  # fmt: skip
    kit.advance(timedelta(minutes=2))
    # Both are armed for later now (15 min, 2 h): the early timers change nothing.
    inst = instance(kit)
    assert inst.steps["payment"].status == "running" and inst.status == "running"
    assert not [e for e in inst.timeline if e.kind == "timeout"]
    inst_timers = dict(inst.timers)
    del inst_timers["payment"]  # as an instance stored before its timers were recorded
    task.timers.schedule("c-1", "deadline:order-fulfilment:payment", deadline_ms(T0 +
                         timedelta(minutes=3)), {"instance": key, "name": "payment"})  # fmt: skip
    store = task.user_store("instances")
    raw = store.get(key)
    raw["timers"] = {n: at.isoformat() for n, at in inst_timers.items()}
    store.put(key, raw)
    task.end_message(ok=True)
    task.committed()
    kit.advance(timedelta(minutes=2))
    passed = [e.step for e in instance(kit).timeline if e.kind == "timeout"]
    assert passed == ["payment"]  # not armed here: it passes
