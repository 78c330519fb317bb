"""Tracker metrics: transitions counted as they happen, gauges from the committed stats store,
and value at risk read from the start event's body."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from choreograph.contracts.publisher import encode_event
from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from saga_tracker.metrics import OpenInstances, TrackerMetrics
from saga_tracker.service import REPARTITION, build_tracker
from tests.unit.saga_tracker.test_tracker_service import (
    HAPPY_PATH,
    MODELS,
    T0,
    V1,
    definitions,
    send,
)

P = {"process": "order-fulfilment"}


def setup() -> tuple[TestKit, CollectorRegistry]:
    metrics = TrackerMetrics()
    kit = TestKit(build_tracker(definitions(V1), MODELS, metrics=metrics), start=T0)
    registry = CollectorRegistry()
    metrics.register(registry)
    registry.register(OpenInstances(lambda: kit.tasks))
    return kit, registry


def place(kit: TestKit, corr: str, total: str) -> None:
    order = OrderPlaced(
        order_id=corr,
        customer_id="c",
        customer_email="e@x",
        total=Decimal(total),
        lines=[OrderLine(sku="s", quantity=1)],
        placed_at=T0,
    )
    _, value, envelope = encode_event(
        kit.serde, order, corr, "shop", topic=REPARTITION, correlation_id=corr, now=kit.now
    )
    kit.deliver(REPARTITION, corr.encode(), value, envelope.to_headers())


def test_value_in_flight_and_at_risk_follow_instances() -> None:
    kit, registry = setup()
    place(kit, "a", "120.50")
    place(kit, "b", "30.00")
    gauge = registry.get_sample_value
    assert gauge("choreograph_saga_active_instances", P) == 2
    assert gauge("choreograph_saga_value_in_flight", P) == 150.5
    assert gauge("choreograph_saga_value_at_risk", P) == 0
    for kind in ("payments.PaymentAuthorized", "inventory.StockReserved"):
        send(kit, f"com.acme.{kind}", corr="a", key="a")
    kit.advance(timedelta(hours=1, minutes=1))  # a's shipping is late: alert, value at risk
    # b's payment timed out: it may have happened, so its refund was sent, and escalated when
    # nobody confirmed it. Both are at risk; b no longer counts as in flight.
    assert gauge("choreograph_saga_value_at_risk", P) == 150.5
    assert gauge("choreograph_saga_active_instances", P) == 1
    assert gauge("choreograph_saga_value_in_flight", P) == 120.5
    send(kit, "com.acme.payments.PaymentRefunded", corr="b", key="b")  # b undone after all
    assert gauge("choreograph_saga_value_at_risk", P) == 120.5
    send(kit, "com.acme.shipping.ShipmentDispatched", corr="a", key="a")  # recovers
    assert gauge("choreograph_saga_value_at_risk", P) == 0
    send(kit, "com.acme.orders.OrderCompleted", corr="a", key="a")
    assert gauge("choreograph_saga_active_instances", P) == 0
    assert gauge("choreograph_saga_value_in_flight", P) == 0


def test_durations_sla_timeouts_and_compensations_are_counted() -> None:
    kit, registry = setup()
    value = registry.get_sample_value
    for kind in HAPPY_PATH:
        send(kit, f"com.acme.{kind}", corr="fast")
        kit.advance(timedelta(minutes=1))
    assert value("choreograph_saga_duration_seconds_count", {**P, "status": "completed"}) == 1
    assert value("choreograph_saga_duration_seconds_sum", {**P, "status": "completed"}) == 240
    assert value("choreograph_saga_sla_total", {**P, "met": "true"}) == 1
    step = {**P, "step": "payment"}
    assert value("choreograph_saga_step_seconds_count", step) == 1
    send(kit, "com.acme.orders.OrderPlaced", corr="slow")
    send(kit, "com.acme.payments.PaymentAuthorized", corr="slow")
    kit.advance(timedelta(minutes=11))  # reservation times out: refund and release sent
    kit.advance(timedelta(minutes=11))  # neither confirmed: two escalations
    # The reservation's own deadline, then its release's.
    assert value("choreograph_saga_timeouts_total", {**P, "step": "reservation"}) == 2
    sent = {**P, "step": "payment", "outcome": "sent"}
    failed = {**P, "step": "payment", "outcome": "failed"}
    assert value("choreograph_saga_compensations_total", sent) == 1
    assert value("choreograph_saga_compensations_total", failed) == 1
    assert value("choreograph_saga_incidents_total", {**P, "severity": "critical"}) == 3
    assert value("choreograph_saga_sla_total", {**P, "met": "false"}) == 1
    ended = {**P, "status": "needs_manual_resolution"}
    assert value("choreograph_saga_duration_seconds_count", ended) == 1


def test_a_late_refund_counts_as_completed_and_clears_the_value_at_risk() -> None:
    kit, registry = setup()
    value = registry.get_sample_value
    place(kit, "late", "80.00")
    send(kit, "com.acme.payments.PaymentAuthorized", corr="late", key="late")
    kit.advance(timedelta(minutes=22))  # reservation timed out, then refund and release escalated
    assert value("choreograph_saga_value_at_risk", P) == 80
    send(kit, "com.acme.payments.PaymentRefunded", corr="late", key="late")
    completed = {**P, "step": "payment", "outcome": "completed"}
    assert value("choreograph_saga_compensations_total", completed) == 1
    assert value("choreograph_saga_value_at_risk", P) == 80  # the release is still in doubt
    send(kit, "com.acme.inventory.StockReleased", corr="late", key="late")
    assert value("choreograph_saga_value_at_risk", P) == 0
    assert value("choreograph_saga_active_instances", P) == 0


def test_paused_instances_are_counted_and_their_sla_clock_stands_still() -> None:
    from tests.unit.saga_tracker.test_batches import action
    from tests.unit.saga_tracker.test_tracker_service import instance

    kit, registry = setup()
    place(kit, "a", "10.00")
    place(kit, "b", "10.00")
    action(kit, "a", "pause")
    gauge = registry.get_sample_value
    assert gauge("choreograph_saga_paused_instances", P) == 1
    kit.advance(timedelta(hours=5))  # far past the process deadline (2 h) and the SLA
    assert not [e for e in instance(kit, "a").timeline if e.kind == "timeout"]
    assert next(e.step for e in instance(kit, "b").timeline if e.kind == "timeout") == "payment"
    action(kit, "a", "resume")
    assert gauge("choreograph_saga_paused_instances", P) == 0
    for kind in HAPPY_PATH[1:]:
        send(kit, f"com.acme.{kind}", corr="a", key="a")
    # 5 h from start to end, all but minutes of it paused: within the 2 h SLA.
    assert gauge("choreograph_saga_sla_total", {**P, "met": "true"}) == 1
