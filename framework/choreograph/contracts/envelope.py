"""CloudEvents envelope in Kafka headers (binary content mode), with process correlation.

Every event carries who sent it, what it is, which business entity it concerns, which process
instance it belongs to (ce_correlationid) and which event caused it (ce_causationid), plus W3C
trace context. Consumers such as the saga tracker correlate from headers without decoding bodies.

An event emitted while another is being handled inherits the handled event's correlation id,
takes its id as causation id and continues its trace: `handling()` marks the event in hand for
the current task or thread, and `Envelope.new` reads it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType

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
# RFC 3986 URI-reference: an optional scheme, then unreserved, reserved or %-encoded characters.
_URI_REFERENCE = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$"
)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")
_SOURCES_SEEN: set[str] = set()  # valid ones: a service sees few sources, checked once each
_EXTENSIONS_SEEN: set[str] = {"correlationid", "causationid"}
_SPEC_HEADER = ("ce_specversion", SPECVERSION.encode())
# (type, source) -> their headers, encoded once: a service emits few types from one source.
_CONSTANT_HEADERS: dict[tuple[str, str], tuple[tuple[str, bytes], tuple[str, bytes]]] = {}
_AVRO_HEADER = ("content-type", AVRO_CONTENT_TYPE.encode())


_last_time: tuple[datetime | None, bytes] = (None, b"")


def _rfc3339(moment: datetime) -> bytes:
    """RFC 3339 text of `moment`. Events emitted in one poll share a timestamp: format it once."""
    global _last_time
    last, text = _last_time
    if moment is not last:
        text = moment.isoformat(timespec="microseconds").replace("+00:00", "Z").encode()
        _last_time = (moment, text)
    return text


class EnvelopeError(ValueError):
    """Headers are not a valid CloudEvents envelope."""


_last_parsed: tuple[str, datetime] = ("", datetime.min)


def _parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp (`ce_time`); anything looser is refused. Events a service emits in
    one poll share their time, so consecutive records often carry the same text: parsed once."""
    global _last_parsed
    if text == _last_parsed[0]:
        return _last_parsed[1]
    parsed = _parse_time_text(text)
    _last_parsed = (text, parsed)
    return parsed


def _parse_time_text(text: str) -> datetime:
    # The form every platform event has (YYYY-MM-DDTHH:MM:SS.ffffffZ; its separators sit at
    # every third place from the fifth): fromisoformat checks its digits and ranges.
    if len(text) == 27 and text[4:20:3] == "--T::." and text[26] == "Z":
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise EnvelopeError(f"ce_time {text!r} is not RFC 3339") from None
    m = _RFC3339.match(text)
    if m is None:
        raise EnvelopeError(f"ce_time {text!r} is not RFC 3339")
    day, clock, fraction, zone = m.groups()
    try:
        if zone == "Z" and fraction is not None and len(fraction) == 6:
            return datetime.fromisoformat(text)  # the form every platform event has
        micro = f".{(fraction + '000000')[:6]}" if fraction else ""
        offset = "+00:00" if zone in ("Z", "z") else zone
        return datetime.fromisoformat(f"{day}T{clock}{micro}{offset}")
    except ValueError:
        raise EnvelopeError(f"ce_time {text!r} is not RFC 3339") from None


def new_traceparent(trace_id: str | None = None, sampled: bool = True) -> str:
    trace = trace_id or secrets.token_hex(16)
    return f"00-{trace}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def child_traceparent(parent: str | None, span_id: str | None = None) -> str:
    """A new span in the parent's trace; a fresh trace when the parent is absent or invalid."""
    m = _TRACEPARENT.match(parent or "")
    if not m or m.group(1) == "0" * 32:
        return new_traceparent()
    return f"00-{m.group(1)}-{span_id or secrets.token_hex(8)}-{m.group(3)}"


# Ids must be unique, not secret: a random prefix per process and a counter are enough, and cost
# neither a system call nor a random draw per event. A forked child draws a new prefix, so it
# never repeats its parent's ids. Event ids keep the UUIDv4 layout (version and variant bits).
class _IdSource:
    __slots__ = ("count", "prefix", "span_prefix")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        r = int.from_bytes(os.urandom(16), "big")
        h = f"{r:032x}"
        # 8-4-4: random, version 4; then the variant nibble and 3 random digits
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{8 | (r & 3):x}{h[17:20]}-"
        self.span_prefix = h[20:28]
        self.count = int.from_bytes(os.urandom(4), "big")  # not from 0: less alike across runs

    def next(self) -> tuple[str, str]:
        """A UUIDv4-shaped event id and a W3C span id (hot path)."""
        self.count = n = self.count + 1
        low = n & 0xFFFFFFFFFFFF
        return f"{self.prefix}{low:012x}", f"{self.span_prefix}{(n & 0xFFFFFFFF) or 1:08x}"


_id_source = _IdSource()
os.register_at_fork(after_in_child=_id_source.reseed)
_ids = _id_source.next


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
    def _make(
        cls,
        id: str,
        source: str,
        type: str,
        subject: str,
        correlation_id: str,
        time: datetime,
        causation_id: str | None,
        traceparent: str | None,
        tracestate: str | None,
        content_type: str,
        extensions: dict[str, str],
    ) -> Envelope:
        """The same instance the generated `__init__` builds, set up in one step: a frozen
        dataclass sets each field through `object.__setattr__`, and every handled and emitted
        event builds one (the hot path)."""
        envelope = _new_object(cls)
        _set_attribute(
            envelope,
            "__dict__",
            {
                "id": id,
                "source": source,
                "type": type,
                "subject": subject,
                "correlation_id": correlation_id,
                "time": time,
                "causation_id": causation_id,
                "traceparent": traceparent,
                "tracestate": tracestate,
                "content_type": content_type,
                "extensions": extensions,
            },
        )
        return envelope

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
            event_id, span_id = _ids()
            return cls._make(
                event_id,
                source,
                type,
                subject,
                correlation_id or parent.correlation_id,
                now or datetime.now(UTC),
                parent.id,
                child_traceparent(parent.traceparent, span_id),
                parent.tracestate,
                AVRO_CONTENT_TYPE,
                {},
            )
        event_id, _ = _ids()
        return cls._make(
            event_id,
            source,
            type,
            subject,
            # The first event of a process instance names the instance after itself.
            correlation_id or event_id,
            now or datetime.now(UTC),
            None,
            new_traceparent(),
            None,
            AVRO_CONTENT_TYPE,
            {},
        )

    @classmethod
    def emitted(
        cls,
        type: str,
        source: str,
        subject: str,
        parent: Envelope | None,
        now: datetime,
    ) -> tuple[Envelope, list[tuple[str, str | bytes | None]]]:
        """The envelope of an event emitted while handling `parent` (else the event in hand),
        with its headers: what `new` and `to_headers` give, built in one go, the constant
        headers of each type and source encoded once (the hot path of every emit)."""
        parent = parent or current_envelope()
        if parent is None:
            envelope = cls.new(type, source, subject, now=now)
            return envelope, envelope.to_headers()
        event_id, span_id = _ids()
        traceparent = child_traceparent(parent.traceparent, span_id)
        correlation, causation, tracestate = parent.correlation_id, parent.id, parent.tracestate
        envelope = cls._make(
            event_id, source, type, subject, correlation, now, causation, traceparent,
            tracestate, AVRO_CONTENT_TYPE, {},
        )  # fmt: skip
        constant = _CONSTANT_HEADERS.get((type, source))
        if constant is None:
            if len(_CONSTANT_HEADERS) > 10_000:
                _CONSTANT_HEADERS.clear()
            constant = _CONSTANT_HEADERS[(type, source)] = (
                ("ce_source", source.encode()),
                ("ce_type", type.encode()),
            )
        headers: list[tuple[str, str | bytes | None]] = [
            _SPEC_HEADER,
            ("ce_id", event_id.encode()),
            constant[0],
            constant[1],
            ("ce_time", _rfc3339(now)),
            ("ce_subject", subject.encode()),
            _AVRO_HEADER,
            ("ce_correlationid", correlation.encode()),
        ]
        if causation:
            headers.append(("ce_causationid", causation.encode()))
        headers.append(("traceparent", traceparent.encode()))
        if tracestate:
            headers.append(("tracestate", tracestate.encode()))
        return envelope, headers

    def to_headers(self) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [
            _SPEC_HEADER,
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", _rfc3339(self.time)),
            ("ce_subject", self.subject.encode()),
            _AVRO_HEADER
            if self.content_type == AVRO_CONTENT_TYPE
            else ("content-type", self.content_type.encode()),
            ("ce_correlationid", self.correlation_id.encode()),
        ]
        if self.causation_id:
            headers.append(("ce_causationid", self.causation_id.encode()))
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode()))
        if self.tracestate:
            headers.append(("tracestate", self.tracestate.encode()))
        headers += [(k, v.encode()) for k, v in sorted(self.extensions.items())]
        return headers

    @classmethod
    def from_headers(cls, headers: Headers | None, key: str | None = None) -> Envelope:
        """Parse the CloudEvents and trace headers (binary content mode). Any other header is
        not read, whatever its bytes: it belongs to someone else and travels on with the record
        untouched. A CloudEvents extension (`ce_*`) that is not text is left out of
        `extensions` rather than failing. `key`: the record's key, the last fallback for the
        correlation id and the business key (see `from_attributes`)."""
        return cls.from_attributes(read_headers(headers), key)

    @classmethod
    def from_attributes(cls, values: dict[str, str], key: str | None = None) -> Envelope:
        """An envelope from CloudEvents attributes named as Kafka headers (`ce_id`, ...),
        validated as the CloudEvents 1.0 spec says: `ce_id` and `ce_type` non-empty, `ce_source`
        a URI-reference, `ce_time` RFC 3339, extension names lower-case letters and digits.

        Producers outside the platform may send only the required attributes. The process
        instance (correlation id) is then, in this order: `ce_correlationid`, `ce_subject`, the
        record key, `ce_id`; the business key (subject) is `ce_subject` when present (even
        empty: a forwarding reader has resolved it), else the record key."""
        get = values.get
        if get("ce_specversion") != SPECVERSION or not (
            get("ce_id") and get("ce_source") and get("ce_type")
        ):
            missing = [k for k in _REQUIRED if not get(k)]
            if missing:
                raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
            raise EnvelopeError(f"unsupported ce_specversion {values['ce_specversion']!r}")
        source = values["ce_source"]
        if source not in _SOURCES_SEEN:
            if not _URI_REFERENCE.match(source):
                raise EnvelopeError(f"ce_source {source!r} is not a URI-reference")
            if len(_SOURCES_SEEN) > 10_000:
                _SOURCES_SEEN.clear()
            _SOURCES_SEEN.add(source)
        raw_time = get("ce_time")
        when = _parse_time(raw_time) if raw_time else datetime.now(UTC)
        extensions: dict[str, str] = {}
        others = [name for name in values if name not in _KNOWN]  # extensions, if any
        for name in sorted(others) if others else ():
            attribute = name[3:]
            if attribute not in _EXTENSIONS_SEEN:
                if not _EXTENSION_NAME.match(attribute):
                    raise EnvelopeError(
                        f"CloudEvents extension name {attribute!r} must be lower-case "
                        "letters and digits"
                    )
                _EXTENSIONS_SEEN.add(attribute)
            extensions[name] = values[name]
        subject = get("ce_subject", key or "")
        return cls._make(
            values["ce_id"],
            source,
            values["ce_type"],
            subject,
            get("ce_correlationid") or subject or values["ce_id"],
            when,
            get("ce_causationid"),
            get("traceparent"),
            get("tracestate"),
            get("content-type", AVRO_CONTENT_TYPE),
            extensions,
        )

    def with_extensions(self, **extra: str) -> Envelope:
        return replace(self, extensions={**self.extensions, **extra})


def read_headers(headers: Headers | None) -> dict[str, str]:
    """The CloudEvents and trace headers (binary content mode) as text, by header name. Any
    other header is not read, whatever its bytes: it belongs to someone else. A CloudEvents
    extension (`ce_*`) that is not text is left out rather than failing; a known attribute that
    is not UTF-8 is an EnvelopeError."""
    if not headers:
        return {}
    try:  # the platform's own records: known attributes only, all bytes, all UTF-8
        values = {
            name: raw.decode() for name, raw in headers if name in _KNOWN and type(raw) is bytes
        }
    except UnicodeDecodeError:
        values = {}
    if len(values) == len(headers):
        return values
    return _read_headers(headers)


def _read_headers(headers: Headers) -> dict[str, str]:
    """`read_headers` for records that carry other headers, text values or extensions."""
    values: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None or not (name in _KNOWN or name.startswith("ce_")):
            continue
        if isinstance(raw, bytes):
            try:
                values[name] = raw.decode()
            except UnicodeDecodeError:
                if name in _KNOWN:
                    raise EnvelopeError(f"header {name} is not UTF-8") from None
        else:
            values[name] = raw
    return values


def record_key(key: bytes | None) -> str:
    """A record's key as text. Keys name business entities; bytes that are not UTF-8 cannot name
    one, and no retry changes that: EnvelopeError, so the record is dead-lettered at once."""
    if not key:
        return ""
    try:
        return key.decode()
    except UnicodeDecodeError:
        raise EnvelopeError(f"record key is not UTF-8: {key[:40]!r}") from None


_new_object = object.__new__
_set_attribute = object.__setattr__
_handling: ContextVar[Envelope | None] = ContextVar("choreograph_handling", default=None)


def current_envelope() -> Envelope | None:
    """The envelope of the event being handled in this task or thread, if any."""
    return _handling.get()


class handling:
    """Mark `envelope` as the event in hand: events emitted inside follow it."""

    __slots__ = ("envelope", "token")

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope

    def __enter__(self) -> Envelope:
        self.token = _handling.set(self.envelope)
        return self.envelope

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _handling.reset(self.token)
