"""CloudEvents envelope in Kafka headers (binary content mode), with process correlation.

Every event carries who sent it, what it is, which business entity it concerns, which process
instance it belongs to (ce_correlationid) and which event caused it (ce_causationid), plus W3C
trace context. Consumers such as the saga tracker correlate from headers without decoding bodies.

An event emitted while another is being handled inherits the handled event's correlation id,
takes its id as causation id and continues its trace: `handling()` marks the event in hand for
the current task or thread, and `Envelope.new` reads it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

SPECVERSION = "1.0"
AVRO_CONTENT_TYPE = "application/avro"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")
_KNOWN = {
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "content-type",
    "ce_correlationid",
    "ce_causationid",
    "traceparent",
    "tracestate",
}

Headers = Sequence[tuple[str, bytes | str | None]]


class EnvelopeError(ValueError):
    """Headers are not a valid CloudEvents envelope."""


def new_traceparent(trace_id: str | None = None, sampled: bool = True) -> str:
    trace = trace_id or secrets.token_hex(16)
    return f"00-{trace}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def child_traceparent(parent: str | None) -> str:
    """A new span in the parent's trace; a fresh trace when the parent is absent or invalid."""
    m = _TRACEPARENT.match(parent or "")
    if not m or m.group(1) == "0" * 32:
        return new_traceparent()
    return f"00-{m.group(1)}-{secrets.token_hex(8)}-{m.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    m = _TRACEPARENT.match(traceparent or "")
    return m.group(1) if m else None


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    subject: str
    correlation_id: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    content_type: str = AVRO_CONTENT_TYPE
    extensions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        type: str,
        source: str,
        subject: str,
        *,
        parent: Envelope | None = None,
        correlation_id: str | None = None,
        now: datetime | None = None,
    ) -> Envelope:
        """Envelope for a new event; follows `parent`, else the event being handled, if any."""
        parent = parent or current_envelope()
        if parent is not None:
            return cls(
                id=str(uuid.uuid4()),
                source=source,
                type=type,
                subject=subject,
                correlation_id=correlation_id or parent.correlation_id,
                time=now or datetime.now(UTC),
                causation_id=parent.id,
                traceparent=child_traceparent(parent.traceparent),
                tracestate=parent.tracestate,
            )
        event_id = str(uuid.uuid4())
        return cls(
            id=event_id,
            source=source,
            type=type,
            subject=subject,
            # The first event of a process instance names the instance after itself.
            correlation_id=correlation_id or event_id,
            time=now or datetime.now(UTC),
            traceparent=new_traceparent(),
        )

    def to_headers(self) -> list[tuple[str, str | bytes | None]]:
        pairs = [
            ("ce_specversion", SPECVERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat(timespec="microseconds").replace("+00:00", "Z")),
            ("ce_subject", self.subject),
            ("content-type", self.content_type),
            ("ce_correlationid", self.correlation_id),
        ]
        if self.causation_id:
            pairs.append(("ce_causationid", self.causation_id))
        if self.traceparent:
            pairs.append(("traceparent", self.traceparent))
        if self.tracestate:
            pairs.append(("tracestate", self.tracestate))
        pairs += sorted(self.extensions.items())
        return [(k, v.encode()) for k, v in pairs]

    @classmethod
    def from_headers(cls, headers: Headers | None) -> Envelope:
        values: dict[str, str] = {}
        for key, raw in headers or ():
            if raw is None:
                continue
            try:
                values[key] = raw.decode() if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                raise EnvelopeError(f"header {key} is not UTF-8") from None
        missing = [k for k in _REQUIRED if not values.get(k)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if values["ce_specversion"] != SPECVERSION:
            raise EnvelopeError(f"unsupported ce_specversion {values['ce_specversion']!r}")
        try:
            when = datetime.fromisoformat(values["ce_time"]) if "ce_time" in values else None
        except ValueError:
            raise EnvelopeError(f"ce_time {values['ce_time']!r} is not RFC 3339") from None
        return cls(
            id=values["ce_id"],
            source=values["ce_source"],
            type=values["ce_type"],
            subject=values.get("ce_subject", ""),
            correlation_id=values.get("ce_correlationid") or values["ce_id"],
            time=when or datetime.now(UTC),
            causation_id=values.get("ce_causationid"),
            traceparent=values.get("traceparent"),
            tracestate=values.get("tracestate"),
            content_type=values.get("content-type", AVRO_CONTENT_TYPE),
            extensions={k: v for k, v in values.items() if k not in _KNOWN},
        )

    def with_extensions(self, **extra: str) -> Envelope:
        return replace(self, extensions={**self.extensions, **extra})


_handling: ContextVar[Envelope | None] = ContextVar("choreograph_handling", default=None)


def current_envelope() -> Envelope | None:
    """The envelope of the event being handled in this task or thread, if any."""
    return _handling.get()


@contextlib.contextmanager
def handling(envelope: Envelope) -> Iterator[Envelope]:
    """Mark `envelope` as the event in hand: events emitted inside follow it."""
    token = _handling.set(envelope)
    try:
        yield envelope
    finally:
        _handling.reset(token)
