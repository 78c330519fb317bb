"""The envelope of a record whose headers have a shape seen before: the hot path of reading.

`Envelope.from_headers` checks every CloudEvents rule on every record. Most of what it checks
is the same for every record one producer sends: the header names, the spec version, source,
type, content type and extension names. Here those are checked once per distinct shape, by the
full rules (the first record of a shape goes through `from_headers`), and remembered in a
bounded table; per record only the attributes that vary are decoded (id, time, subject,
correlation, causation, trace context, extension values).

Anything off the common path returns None, and the caller takes the full path, so a record is
read or refused exactly as `from_headers` would: a header that is not bytes, a repeated name, no
`ce_subject` (the key is the fallback there), a structured or non-Avro content type, bytes that
are not UTF-8, an empty id, a time that is not RFC 3339.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from choreograph.contracts.envelope import (
    _KNOWN,
    AVRO_CONTENT_TYPE,
    Envelope,
    EnvelopeError,
    Headers,
    _parse_time,
)

MAX_SHAPES = 4096  # distinct (names, constant values) a process remembers; then it starts over


class _Shape(NamedTuple):
    source: str
    type: str
    extensions: tuple[str, ...]  # `ce_*` names that are extensions, sorted


_SHAPES: dict[tuple[object, ...], _Shape | None] = {}  # None: a shape never read here
_make = Envelope._make
_now = datetime.now


def known_shape(headers: Headers | None) -> Envelope | None:
    """The envelope `Envelope.from_headers(headers)` gives, when the headers have a shape this
    process has validated before (or validates now); None when the full path must decide."""
    if not headers:
        return None
    try:
        h = dict(headers)
    except (TypeError, ValueError):
        return None
    if len(h) != len(headers):
        return None  # a repeated name: which one counts is the full path's rule
    get = h.get
    key = (get("ce_specversion"), get("ce_source"), get("ce_type"), get("content-type"), *h)
    shape = _SHAPES.get(key)
    if shape is None:
        if key in _SHAPES:
            return None
        shape = _learn(key, headers, h)
        if shape is None:
            return None
    try:
        event_id = h["ce_id"].decode()  # type: ignore[union-attr]
        raw_time = get("ce_time")
        when = _parse_time(raw_time.decode()) if raw_time else _now(UTC)  # type: ignore[union-attr]
        subject = h["ce_subject"].decode()  # type: ignore[union-attr]
        correlation = get("ce_correlationid")
        causation = get("ce_causationid")
        traceparent = get("traceparent")
        tracestate = get("tracestate")
        extensions = (
            {name: h[name].decode() for name in shape.extensions}  # type: ignore[union-attr]
            if shape.extensions
            else {}
        )
        return _make(
            event_id or _refuse(),
            shape.source,
            shape.type,
            subject,
            (correlation.decode() if correlation else "") or subject or event_id,  # type: ignore[union-attr]
            when,
            None if causation is None else causation.decode(),  # type: ignore[union-attr]
            None if traceparent is None else traceparent.decode(),  # type: ignore[union-attr]
            None if tracestate is None else tracestate.decode(),  # type: ignore[union-attr]
            AVRO_CONTENT_TYPE,
            extensions,
        )
    except (AttributeError, UnicodeDecodeError, EnvelopeError):
        return None


def _refuse() -> str:
    raise EnvelopeError("empty ce_id")


def _learn(key: tuple[object, ...], headers: Headers, h: Mapping[str, object]) -> _Shape | None:
    """Validate a new shape by the full rules on its first record; remember it if valid."""
    content_type = h.get("content-type")
    if content_type is not None and content_type != AVRO_CONTENT_TYPE.encode():
        return _remember(key, None)  # structured or another binary type: the full path reads it
    if "ce_subject" not in h or not all(type(v) is bytes for v in h.values()):
        return _remember(key, None)
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError:
        return None  # maybe only this record's id or time: not a verdict on the shape
    extensions = tuple(sorted(n for n in h if n.startswith("ce_") and n not in _KNOWN))
    if set(extensions) != set(envelope.extensions):
        return _remember(key, None)  # an extension that is not text: the full path leaves it out
    return _remember(key, _Shape(envelope.source, envelope.type, extensions))


def _remember(key: tuple[object, ...], shape: _Shape | None) -> _Shape | None:
    if len(_SHAPES) >= MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape
