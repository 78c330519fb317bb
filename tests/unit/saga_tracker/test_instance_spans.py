"""Ended instances as OpenTelemetry traces: one per instance, inside the start event's trace,
a span per step with its outcome, and the same span ids if exported again."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from choreograph.testing.testkit import TestKit
from saga_tracker.otel import InstanceSpans
from saga_tracker.service import build_tracker
from tests.unit.saga_tracker.test_tracker_service import (
    HAPPY_PATH,
    MODELS,
    T0,
    V1,
    definitions,
    instance,
    send,
)


def tracked(exporter: InMemorySpanExporter) -> TestKit:
    spans = InstanceSpans(exporter, batch=False)
    return TestKit(build_tracker(definitions(V1), MODELS, spans=spans), start=T0)


def test_a_completed_instance_is_one_trace_joined_to_its_start_event() -> None:
    exporter = InMemorySpanExporter()
    kit = tracked(exporter)
    sent = []
    for kind in HAPPY_PATH:
        sent.append(send(kit, f"com.acme.{kind}"))
        kit.advance(timedelta(minutes=1))
    start = sent[0].traceparent
    assert start is not None
    _, trace_hex, parent_hex, _ = start.split("-")
    finished = exporter.get_finished_spans()
    [root] = [s for s in finished if s.name == "order-fulfilment"]
    assert root.context is not None and root.parent is not None
    assert root.context.trace_id == int(trace_hex, 16)  # the services' own trace
    assert root.parent.span_id == int(parent_hex, 16)  # under the start event's span
    assert root.status.status_code is StatusCode.OK
    assert root.attributes is not None and root.attributes["choreograph.business_key"] == "o-1"
    inst = instance(kit)
    assert len(root.events) == len(inst.timeline)
    steps = {s.name: s for s in finished if s.parent and s.parent.span_id == root.context.span_id}
    assert set(steps) == {f"order-fulfilment.{n}" for n in ("payment", "reservation", "shipping")}
    for name, span in steps.items():
        state = inst.steps[name.split(".")[1]]
        assert state.started_at is not None and state.ended_at is not None
        assert span.start_time == int(state.started_at.timestamp() * 1e9)
        assert span.end_time == int(state.ended_at.timestamp() * 1e9)
        assert span.status.status_code is StatusCode.OK

    again = InMemorySpanExporter()
    exporting = InstanceSpans(again, batch=False)  # a retried handling exports the same spans
    for name in inst.steps:
        exporting.step_ended(inst, name)
    exporting.ended(inst)
    ids = sorted(s.context.span_id for s in finished if s.context)
    assert sorted(s.context.span_id for s in again.get_finished_spans() if s.context) == ids


def test_a_timed_out_step_is_an_error_in_an_undone_instance() -> None:
    exporter = InMemorySpanExporter()
    kit = tracked(exporter)
    send(kit, "com.acme.orders.OrderPlaced")
    send(kit, "com.acme.payments.PaymentAuthorized")
    kit.advance(timedelta(minutes=11))  # the reservation times out: both are undone
    # Running still: its steps that ended are exported already, under the instance's span id.
    early = {s.name: s for s in exporter.get_finished_spans()}
    assert set(early) == {"order-fulfilment.payment", "order-fulfilment.reservation"}
    assert early["order-fulfilment.payment"].status.status_code is StatusCode.OK
    assert early["order-fulfilment.reservation"].status.status_code is StatusCode.ERROR
    send(kit, "com.acme.payments.PaymentRefunded")
    send(kit, "com.acme.inventory.StockReleased")
    assert instance(kit).status == "compensated"
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert len(exporter.get_finished_spans()) == 3  # the instance's own span came at its end
    root = finished["order-fulfilment"]
    assert root.context is not None
    assert early["order-fulfilment.payment"].parent is not None
    assert early["order-fulfilment.payment"].parent.span_id == root.context.span_id
    assert finished["order-fulfilment"].status.status_code is StatusCode.ERROR
    reservation = finished["order-fulfilment.reservation"]
    assert reservation.status.status_code is StatusCode.ERROR
    assert reservation.attributes is not None
    assert reservation.attributes["choreograph.step.status"] != "completed"
