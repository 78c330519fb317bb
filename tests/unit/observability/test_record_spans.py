"""Spans of a team service's handled records and fired timers (the otel extra): each record's span
is a child of its traceparent and says what was handled and how it ended."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from choreograph.observability.tracing import RecordSpans
from choreograph.runtime.errors import ConfigurationError

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_record_span_joins_the_records_trace_with_what_happened() -> None:
    exporter = InMemorySpanExporter()
    spans = RecordSpans("payments", exporter, batch=False)
    headers = [("ce_type", b"com.acme.orders.OrderPlaced"),
               ("traceparent", f"00-{TRACE}-{PARENT}-01".encode())]  # fmt: skip
    spans.record(headers, "com.acme.orders.OrderPlaced", b"o-1", "ok", 1_000, 5_000,
                 ("orders.events", 3, 42))  # fmt: skip
    [span] = exporter.get_finished_spans()
    assert span.name == "handle com.acme.orders.OrderPlaced" and span.kind is SpanKind.CONSUMER
    assert span.context is not None and span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT, 16)
    assert (span.start_time, span.end_time) == (1_000, 5_000)
    assert dict(span.attributes or {}) == {
        "choreograph.service": "payments",
        "choreograph.event_type": "com.acme.orders.OrderPlaced",
        "choreograph.key": "o-1",
        "choreograph.outcome": "ok",
        "messaging.system": "kafka",
        "messaging.destination.name": "orders.events",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 42,
    }
    assert span.resource.attributes["service.name"] == "payments"


def test_a_failed_handling_and_a_timer_are_spans_too() -> None:
    exporter = InMemorySpanExporter()
    spans = RecordSpans("payments", exporter, batch=False)
    spans.record(None, "", b"o-2", "failed", 1, 2, ("orders.events", 0, 7), ValueError("no"))
    spans.timer("payment-timeout", "o-2", "ok", 3, 4)
    failed, timer = exporter.get_finished_spans()
    assert failed.parent is None  # no traceparent: a trace of its own
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: no"
    assert [e.name for e in failed.events] == ["exception"]
    assert timer.name == "timer payment-timeout"
    assert (timer.attributes or {})["choreograph.key"] == "o-2"


def test_an_endpoint_without_the_otel_extra_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigurationError, match=r"install choreograph\[otel\]"):
        RecordSpans.otlp("payments", "http://collector:4318")
