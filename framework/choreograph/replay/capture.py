"""The capture file: every record of chosen process instances, portable and self-contained.

Format `choreograph-capture/1`, JSON lines. The first line is the header:

    {"format": "choreograph-capture/1", "created_at": "...", "source": "...",
     "masked": true, "schemas": {"44": "<Avro schema JSON>", ...}}

then one line per record, in the order they were read (per partition, by offset):

    {"topic": "orders.events", "partition": 0, "offset": 17, "timestamp": 1764500000000,
     "key": "<base64>", "value": "<base64>", "headers": [["ce_id", "<base64>"], ...]}

Values stay in the registry's wire format; the writer schemas they name are embedded by id, so a
capture replays without the registry. With `masked`, every field tagged `"pii": true` in its
schema holds a keyed hash of the original instead: same type, and equal originals stay equal, so
a replay branches as production did.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

FORMAT = "choreograph-capture/1"
_HEADER = struct.Struct(">bI")


class CaptureError(ValueError):
    """A capture file that cannot be read, or a capture that cannot be made; says why."""


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass(frozen=True)
class CapturedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int  # epoch ms, as the broker recorded it
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode(errors="replace")
        return None

    @property
    def schema_id(self) -> int | None:
        if self.value is None or len(self.value) < 5 or self.value[0] != 0:
            return None
        return int(_HEADER.unpack_from(self.value)[1])

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": _b64(self.key),
            "value": _b64(self.value),
            "headers": [[k, _b64(v)] for k, v in self.headers],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CapturedRecord:
        return cls(
            raw["topic"],
            int(raw["partition"]),
            int(raw["offset"]),
            int(raw["timestamp"]),
            _unb64(raw.get("key")),
            _unb64(raw.get("value")),
            [(k, _unb64(v)) for k, v in raw.get("headers", [])],
        )


@dataclass
class Capture:
    records: list[CapturedRecord]
    schemas: dict[int, str]  # writer schemas by registry id
    masked: bool
    source: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def write(self, path: Path) -> None:
        header = {
            "format": FORMAT,
            "created_at": self.created_at,
            "source": self.source,
            "masked": self.masked,
            "schemas": {str(k): v for k, v in sorted(self.schemas.items())},
        }
        with path.open("w") as out:
            out.write(json.dumps(header, sort_keys=True) + "\n")
            for record in self.records:
                out.write(json.dumps(record.to_json(), sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Capture:
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise CaptureError(f"cannot read capture {path}: {err}") from None
        if not lines:
            raise CaptureError(f"{path} is empty, not a capture")
        try:
            header = json.loads(lines[0])
            if header.get("format") != FORMAT:
                raise CaptureError(
                    f"{path} is {header.get('format')!r}, not {FORMAT}: capture it again with "
                    "this version of choreograph"
                )
            records = [CapturedRecord.from_json(json.loads(line)) for line in lines[1:] if line]
        except (ValueError, KeyError, TypeError) as err:
            if isinstance(err, CaptureError):
                raise
            raise CaptureError(f"{path} is not a valid capture: {err}") from None
        schemas = {int(k): v for k, v in header.get("schemas", {}).items()}
        return cls(records, schemas, bool(header.get("masked")), header.get("source", ""),
                   header.get("created_at", ""))  # fmt: skip

    def instances(self) -> dict[str, list[CapturedRecord]]:
        """Records by process instance (correlation id), in capture order."""
        found: dict[str, list[CapturedRecord]] = {}
        for record in self.records:
            found.setdefault(record.header("ce_correlationid") or "", []).append(record)
        return found


# -- masking -------------------------------------------------------------------------------------


def pii_fields(schema: Any, prefix: str = "") -> set[str]:
    """Dotted paths of the fields tagged `"pii": true`, through nested records."""
    found: set[str] = set()
    if isinstance(schema, dict) and schema.get("type") == "record":
        for f in schema.get("fields", []):
            path = f"{prefix}{f['name']}"
            if f.get("pii"):
                found.add(path)
            found |= pii_fields(f["type"], path + ".")
    elif isinstance(schema, dict) and schema.get("type") == "array":
        found |= pii_fields(schema["items"], prefix)
    elif isinstance(schema, list):
        for branch in schema:
            found |= pii_fields(branch, prefix)
    return found


def mask_value(value: Any, secret: bytes) -> Any:
    """A keyed hash of `value` of the same type: equal values stay equal."""
    digest = hashlib.blake2b(repr(value).encode(), key=secret[:64], digest_size=16).digest()
    if isinstance(value, str):
        return "masked-" + digest.hex()[:20]
    if isinstance(value, bytes):
        return digest
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    if isinstance(value, float):
        return float(int.from_bytes(digest[:4], "big"))
    return value  # other types are left as they are (documented)


def _mask(data: Any, paths: set[str], secret: bytes, prefix: str = "") -> Any:
    if isinstance(data, list):
        return [_mask(item, paths, secret, prefix) for item in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        if path in paths and value is not None:
            out[name] = mask_value(value, secret)
        else:
            out[name] = _mask(value, paths, secret, path + ".")
    return out


def masked(value: bytes, schema_text: str, secret: bytes) -> bytes:
    """The value with its PII fields masked, in the same wire format and schema id."""
    raw = json.loads(schema_text)
    paths = pii_fields(raw)
    if not paths:
        return value
    parsed = fastavro.parse_schema(raw, named_schemas={})
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, return_record_name=False)
    out = io.BytesIO()
    out.write(value[:5])
    fastavro.schemaless_writer(out, parsed, _mask(record, paths, secret))
    return out.getvalue()


# -- collecting ----------------------------------------------------------------------------------


Progress = Callable[[str, int, int], None]  # topic, records read, records kept


def select(
    records: Iterable[CapturedRecord],
    *,
    correlation_ids: set[str] | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> Iterator[CapturedRecord]:
    """Records of the chosen instances (by header alone) within the time range."""
    for record in records:
        if since_ms is not None and record.timestamp < since_ms:
            continue
        if until_ms is not None and record.timestamp > until_ms:
            continue
        if correlation_ids is not None and record.header("ce_correlationid") not in correlation_ids:
            continue
        yield record


def build_capture(
    records: Iterable[CapturedRecord],
    schema_text: Callable[[int], str],
    *,
    mask: bool = True,
    secret: bytes = b"",
    source: str = "",
) -> Capture:
    """A capture of `records` with their writer schemas embedded, PII masked unless `mask` is
    False."""
    kept: list[CapturedRecord] = []
    schemas: dict[int, str] = {}
    for record in records:
        schema_id = record.schema_id
        value = record.value
        if schema_id is not None:
            if schema_id not in schemas:
                schemas[schema_id] = schema_text(schema_id)
            if mask and value is not None:
                try:
                    value = masked(value, schemas[schema_id], secret or b"choreograph")
                except (ValueError, TypeError, EOFError, IndexError) as err:
                    raise CaptureError(
                        f"{record.topic}[{record.partition}]@{record.offset} cannot be masked "
                        f"({err}); capture without it, or with --unmasked if that is allowed"
                    ) from None
        kept.append(
            CapturedRecord(
                record.topic,
                record.partition,
                record.offset,
                record.timestamp,
                record.key,
                value,
                record.headers,
            )
        )
    return Capture(kept, schemas, mask, source)
