"""CloudEvents structured content mode on Kafka (`content-type: application/cloudevents+json`).

The Kafka protocol binding says implementations SHOULD read it: the whole event, attributes and
data, is one JSON object in the record value. The data is either `data_base64` (here: an Avro
body in the Confluent wire format, as in binary mode) or `data` (JSON, validated against the
contract of the event type). The platform itself always writes binary mode.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from choreograph.contracts.envelope import Envelope, EnvelopeError, Headers

STRUCTURED = "application/cloudevents+json"
_TO_HEADER = {"datacontenttype": "content-type", "traceparent": "traceparent"}
_NOT_ATTRIBUTES = {"data", "data_base64", "tracestate"}


@dataclass(frozen=True)
class StructuredEvent:
    envelope: Envelope
    body: bytes | None  # Avro, Confluent wire format (from data_base64)
    data: Any  # JSON data, when the event carries `data`


def is_structured_type(content_type: str) -> bool:
    """Whether a `content-type` header's value names structured content mode."""
    return content_type.split(";")[0].strip().lower() == STRUCTURED


def others(headers: Headers | None) -> list[tuple[str, str | bytes | None]]:
    """Headers that are not CloudEvents attributes or trace context, as they came."""
    return [
        (name, value)
        for name, value in headers or ()
        if name not in ("content-type", "traceparent", "tracestate") and not name.startswith("ce_")
    ]


def read_structured(value: bytes | None, key: str | None = None) -> StructuredEvent:
    """Parse a structured-mode record; raises EnvelopeError when it is not a valid event."""
    try:
        event = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("structured CloudEvent is not JSON") from None
    if not isinstance(event, dict):
        raise EnvelopeError("structured CloudEvent is not a JSON object")
    attributes: dict[str, str] = {}
    for name, raw in event.items():
        if name in _NOT_ATTRIBUTES or raw is None:
            continue
        if not isinstance(raw, (str, int, bool)):
            raise EnvelopeError(f"CloudEvents attribute {name!r} must be a string")
        attributes[_TO_HEADER.get(name, f"ce_{name}")] = str(raw)
    if isinstance(event.get("tracestate"), str):
        attributes["tracestate"] = event["tracestate"]
    envelope = Envelope.from_attributes(attributes, key)
    body: bytes | None = None
    if "data_base64" in event:
        try:
            body = base64.b64decode(event["data_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise EnvelopeError("data_base64 is not base64") from None
    return StructuredEvent(envelope, body, event.get("data"))
