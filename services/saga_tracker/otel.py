"""Process instances as OpenTelemetry traces, exported over OTLP as their steps end.

One trace per instance, in the trace of the event that started it (the trace id of its
`traceparent`, and that event's span as the parent), so the instance joins the spans the services
emit themselves. The instance is one span from its start to its end, with its timeline as span
events; each step that started is a child span with its outcome. A step's span is exported when
the step ends (completed, failed, timed out, voided), so a running instance shows in the trace
viewer with the steps it went through; the instance's own span follows when it ends, with the
spans of steps still under way then. Span ids are derived from the correlation id, so an instance
exported twice (a handling that is retried) gives the same spans.

Optional (the `otel` extra) and off by default: `saga-tracker run --otlp-endpoint
http://collector:4318` turns it on.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from choreograph.contracts.envelope import trace_id as trace_id_of
from saga_tracker.instance import Instance, StepState

SUCCEEDED = frozenset({"completed", "resolved"})
UNDER_WAY = frozenset({"running", "settling"})  # a step that has not ended
FAILED_STEPS = frozenset({"failed", "timed_out", "compensation_failed"})


class _PlannedIds(IdGenerator):
    """Span ids chosen by the exporter (derived from the instance), random otherwise."""

    def __init__(self) -> None:
        self._planned = threading.local()
        self._random = RandomIdGenerator()

    def plan(self, ids: Sequence[int]) -> None:
        self._planned.ids = list(ids)

    def generate_span_id(self) -> int:
        ids: list[int] | None = getattr(self._planned, "ids", None)
        return ids.pop(0) if ids else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self._random.generate_trace_id()


def _derived(*parts: str, bits: int = 64) -> int:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class InstanceSpans:
    def __init__(
        self, exporter: SpanExporter, service_name: str = "saga-tracker", *, batch: bool = True
    ) -> None:
        self._ids = _PlannedIds()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), id_generator=self._ids
        )
        processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batch else _Simple(exporter)  # tests read at once
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("choreograph.saga_tracker")

    @classmethod
    def otlp(cls, endpoint: str, service_name: str = "saga-tracker") -> InstanceSpans:
        """Export over OTLP/HTTP to `endpoint` (e.g. http://collector:4318)."""
        return cls(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"), service_name)

    @staticmethod
    def _remote(trace_id: int, span_id: int) -> Context:
        sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        return trace.set_span_in_context(
            NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=sampled))
        )

    @staticmethod
    def _ids_of(inst: Instance) -> tuple[str, int, int]:
        """The instance's key, trace id and the span id of what it is a child of."""
        key = f"{inst.correlation_id}/{inst.process}"
        found = trace_id_of(inst.traceparent)
        trace_id = int(found, 16) if found else _derived(key, bits=128)
        parent_span = (
            int(inst.traceparent.split("-")[2], 16) if found and inst.traceparent else None
        )
        return key, trace_id, parent_span or _derived(key, "parent")

    def step_ended(self, inst: Instance, name: str) -> None:
        """Export the span of step `name`, which has just ended, under the instance's span (which
        is exported when the instance ends)."""
        step = inst.steps[name]
        begun = step.started_at or step.ended_at
        if begun is None:
            return
        key, trace_id, _ = self._ids_of(inst)
        self._ids.plan([_derived(key, name)])
        self._step_span(inst, step, self._remote(trace_id, _derived(key)), begun)

    def ended(self, inst: Instance) -> None:
        """Export the instance's span, and those of its steps still under way (the others went
        when they ended): call once it has ended (again gives the same span ids)."""
        if inst.ended_at is None:
            return
        key, trace_id, parent_span = self._ids_of(inst)
        parent = self._remote(trace_id, parent_span)
        started = [
            s for s in inst.steps.values() if s.started_at is not None and s.status in UNDER_WAY
        ]
        self._ids.plan([_derived(key), *(_derived(key, s.name) for s in started)])
        root = self.tracer.start_span(
            inst.process,
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=_ns(inst.started_at),
            attributes=self._attributes(inst),
        )
        for entry in inst.timeline:
            root.add_event(
                entry.kind if not entry.event_type else entry.event_type,
                {k: v for k, v in (("event_id", entry.event_id), ("source", entry.source),
                                   ("step", entry.step or ""), ("note", entry.note)) if v},
                timestamp=_ns(entry.at),
            )  # fmt: skip
        inside = trace.set_span_in_context(root)
        for step in started:
            assert step.started_at is not None
            self._step_span(inst, step, inside, step.started_at)
        if inst.status in SUCCEEDED:
            root.set_status(Status(StatusCode.OK))
        else:
            root.set_status(Status(StatusCode.ERROR, inst.failure_reason or inst.status))
        root.end(end_time=_ns(inst.ended_at))

    def _step_span(self, inst: Instance, step: StepState, parent: Context, begun: datetime) -> None:
        span = self.tracer.start_span(
            f"{inst.process}.{step.name}",
            context=parent,
            start_time=_ns(begun),
            attributes={
                "choreograph.step": step.name,
                "choreograph.step.status": step.status,
                "choreograph.correlation_id": inst.correlation_id,
            },
        )
        timed_out = any(e.kind == "timeout" and e.step == step.name for e in inst.timeline)
        if timed_out:  # undone since, perhaps: the timeout is its outcome
            span.set_status(Status(StatusCode.ERROR, "step timed out"))
        elif step.status in FAILED_STEPS:
            span.set_status(Status(StatusCode.ERROR, f"step {step.status}"))
        elif step.status == "completed":
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=_ns(step.ended_at or inst.ended_at or begun))

    @staticmethod
    def _attributes(inst: Instance) -> dict[str, Any]:
        found: dict[str, Any] = {
            "choreograph.correlation_id": inst.correlation_id,
            "choreograph.process": inst.process,
            "choreograph.process.version": inst.version,
            "choreograph.business_key": inst.business_key,
            "choreograph.status": inst.status,
        }
        if inst.failure_reason:
            found["choreograph.failure_reason"] = inst.failure_reason
        if inst.value is not None:
            found["choreograph.value"] = inst.value
        return found

    def close(self) -> None:
        self.provider.shutdown()


class _Simple(SpanProcessor):
    """Export each span as it ends (for tests that read the exporter at once)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def on_end(self, span: Any) -> None:
        self.exporter.export((span,))

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
