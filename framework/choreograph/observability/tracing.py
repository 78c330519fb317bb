"""OpenTelemetry spans of a team service: one per handled record and one per fired timer.

Optional (the `otel` extra) and off unless `otlp_endpoint` is set (`CHOREOGRAPH_OTLP_ENDPOINT`,
e.g. http://collector:4318). A record's span is a child of the record's `traceparent`, so a
service's handling joins the trace of the event it handled (and the saga tracker's instance
spans, which join it too); it carries the service, event type, key, input position and outcome.
A timer's span starts its own trace unless the timer was set while handling a traced record.

Spans are exported in batches on the SDK's own thread; the per-record cost is one span built
after the handling, only while tracing is on.
"""

from __future__ import annotations

from typing import Any

from choreograph.contracts.envelope import Headers
from choreograph.runtime.errors import ConfigurationError


class RecordSpans:
    def __init__(self, service: str, exporter: Any, *, batch: bool = True) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.service = service
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("choreograph")
        self._propagator = TraceContextTextMapPropagator()
        self._kind = SpanKind.CONSUMER
        self._status, self._code = Status, StatusCode

    @classmethod
    def otlp(cls, service: str, endpoint: str) -> RecordSpans:
        """Export over OTLP/HTTP to `endpoint`; refuses at start-up without the `otel` extra."""
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigurationError(
                f"otlp_endpoint is set ({endpoint}) but OpenTelemetry is not installed: install "
                "choreograph[otel], or unset CHOREOGRAPH_OTLP_ENDPOINT"
            ) from None
        return cls(service, OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))

    def record(
        self,
        headers: Headers | dict[str, Any] | None,
        event_type: str,
        key: bytes | None,
        outcome: str,
        began_ns: int,
        ended_ns: int,
        where: tuple[str, int, int],
        error: BaseException | None = None,
    ) -> None:
        """The span of one handled record: `where` is its topic, partition and offset."""
        topic, partition, offset = where
        carrier = {}
        pairs = headers.items() if isinstance(headers, dict) else headers or ()
        for name, value in pairs:
            if name in ("traceparent", "tracestate") and isinstance(value, bytes):
                carrier[name] = value.decode("ascii", "replace")
        span = self.tracer.start_span(
            f"handle {event_type or 'record'}",
            context=self._propagator.extract(carrier) if carrier else None,
            kind=self._kind,
            start_time=began_ns,
            attributes={
                "choreograph.service": self.service,
                "choreograph.event_type": event_type,
                "choreograph.key": (key or b"").decode("utf-8", "replace"),
                "choreograph.outcome": outcome,
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
            },
        )
        self._end(span, error, ended_ns)

    def timer(
        self, name: str, key: str, outcome: str, began_ns: int, ended_ns: int,
        error: BaseException | None = None,
    ) -> None:  # fmt: skip
        """The span of one fired timer."""
        span = self.tracer.start_span(
            f"timer {name}",
            start_time=began_ns,
            attributes={
                "choreograph.service": self.service,
                "choreograph.timer": name,
                "choreograph.key": key,
                "choreograph.outcome": outcome,
            },
        )
        self._end(span, error, ended_ns)

    def _end(self, span: Any, error: BaseException | None, ended_ns: int) -> None:
        if error is not None:
            span.record_exception(error)
            span.set_status(self._status(self._code.ERROR, f"{type(error).__name__}: {error}"))
        span.end(end_time=ended_ns)

    def close(self) -> None:
        self.provider.shutdown()
