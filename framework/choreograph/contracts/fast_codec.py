"""Avro readers and writers generated per schema, for flat records of primitive fields: the
per-record hot path of `AvroSerde`, which fastavro's general machinery (a buffer object, a
schema walk and a dict per call) made its largest single cost.

Written by hand because no maintained library generates per-schema Python codecs, and the
semantics must be fastavro's exactly: the same bytes out (zig-zag varints, little-endian floats,
UTF-8 strings, a union's branch index), the same values in. Only what is covered here is
generated (records whose fields are null, boolean, int, long, float, double, bytes, string, an
enum, or a union of null and one of these, without logical types); any other schema returns
None and keeps fastavro. A differential property test (tests/unit/contracts/test_fast_codec.py)
checks both directions against fastavro for every contract of the repository and for a schema
of every covered type.

A reader is generated for a writer schema read by the same schema (no resolution: defaults,
promotions and renames are fastavro's). Truncated or malformed bodies raise, as fastavro's do;
the serde turns that into a SerdeError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Reader = Callable[[bytes, int], Any]  # (value, where its Avro body starts) -> dict or model
Writer = Callable[[dict[str, Any], bytes], bytes]  # (field values, frame to put first)

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


def _kind(field_type: Any) -> tuple[str, Any] | None:
    """("prim", name), ("enum", symbols) or ("opt", (null first, inner kind)); None when not
    covered."""
    if isinstance(field_type, str):
        return ("prim", field_type) if field_type in _PRIMITIVES else None
    if isinstance(field_type, dict):
        if "logicalType" in field_type:
            return None
        kind = field_type.get("type")
        if kind == "enum" and isinstance(field_type.get("symbols"), list):
            return ("enum", tuple(field_type["symbols"]))
        if isinstance(kind, str) and kind in _PRIMITIVES and len(field_type) == 1:
            return ("prim", kind)
        return None
    if isinstance(field_type, list) and len(field_type) == 2 and "null" in field_type:
        other = field_type[1] if field_type[0] == "null" else field_type[0]
        inner = _kind(other)
        if inner is None or inner[0] == "opt" or inner == ("prim", "null"):
            return None
        return ("opt", (field_type[0] == "null", inner))
    return None


def _fields(schema: Any) -> list[tuple[str, tuple[str, Any]]] | None:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    found = []
    for field in schema.get("fields", []):
        kind = _kind(field.get("type"))
        if kind is None or not isinstance(field.get("name"), str) or field.get("aliases"):
            return None
        found.append((field["name"], kind))
    return found


# -- reading ------------------------------------------------------------------------------------


def _varint(b: bytes, i: int, x: int) -> tuple[int, int]:
    """The rest of a varint whose first byte `x` (>= 0x80) was read at i - 1: (value, next i)."""
    n, shift = x & 0x7F, 7
    while True:
        x = b[i]
        i += 1
        n |= (x & 0x7F) << shift
        if x < 0x80:
            return (n >> 1) ^ -(n & 1), i
        shift += 7


def _read_kind(lines: list[str], target: str, kind: tuple[str, Any], depth: str) -> None:
    """Lines that read one value of `kind` at b[i] into `target` (i moves past it)."""

    def varint(into: str) -> None:
        lines.extend([
            f"{depth}x = b[i]; i += 1",
            f"{depth}if x < 0x80: {into} = (x >> 1) ^ -(x & 1)",
            f"{depth}else: {into}, i = _varint(b, i, x)",
        ])  # fmt: skip

    what, arg = kind
    if what == "enum":
        varint("n")
        lines.append(f"{depth}{target} = {arg!r}[n] if n >= 0 else _bad('enum index')")
        return
    if what == "opt":
        null_first, inner = arg
        varint("u")
        lines.append(f"{depth}if u == {0 if null_first else 1}: {target} = None")
        lines.append(f"{depth}elif u == {1 if null_first else 0}:")
        _read_kind(lines, target, inner, depth + "    ")
        lines.append(f"{depth}else: _bad('union index')")
        return
    if arg == "null":
        lines.append(f"{depth}{target} = None")
    elif arg == "boolean":
        lines.append(f"{depth}{target} = b[i] == 1; i += 1")
    elif arg in ("int", "long"):
        varint(target)
    elif arg == "double":
        lines.append(f"{depth}{target} = _DOUBLE.unpack_from(b, i)[0]; i += 8")
    elif arg == "float":
        lines.append(f"{depth}{target} = _FLOAT.unpack_from(b, i)[0]; i += 4")
    else:  # string, bytes: a length, then the bytes
        varint("n")
        lines.append(f"{depth}if n < 0 or i + n > len(b): _bad('length')")
        lines.append(
            f"{depth}{target} = b[i:i + n]{'.decode()' if arg == 'string' else ''}; i += n"
        )


def _bad(what: str) -> Any:
    raise ValueError(f"invalid Avro data: {what}")


def reader_for(schema: Any, into: type | None = None) -> Reader | None:
    """A function reading the Avro body that starts at `i` in a value, written with `schema`,
    into the dict fastavro builds; None when the schema is not covered.

    `into`: a flat pydantic model of the same schema. The function then returns the instance
    `into.trusted(values)` builds (what Avro decoding guarantees needs no validation), set up in
    the generated code itself: one call per record instead of three."""
    fields = _fields(schema)
    if fields is None:
        return None
    lines = ["def read(b, i):"]
    for n, (_, kind) in enumerate(fields):
        _read_kind(lines, f"f{n}", kind, "    ")
    names = ", ".join(f"{name!r}: f{n}" for n, (name, _) in enumerate(fields))
    if into is None:
        lines.append(f"    return {{{names}}}")
    else:  # as AvroRecord.trusted: pydantic's own model_construct, without its per-field work
        lines += [
            "    o = _new(_M)",
            f"    _set(o, '__dict__', {{{names}}})",
            "    _set(o, '__pydantic_fields_set__', set(_NAMES))",
            "    _set(o, '__pydantic_extra__', None)",
            "    _set(o, '__pydantic_private__', None)",
            "    return o",
        ]
    scope: dict[str, Any] = {"_varint": _varint, "_bad": _bad, "_DOUBLE": _DOUBLE,
                             "_FLOAT": _FLOAT, "_new": object.__new__, "_set": object.__setattr__,
                             "_M": into, "_NAMES": tuple(name for name, _ in fields)}  # fmt: skip
    exec(compile("\n".join(lines), f"<avro reader {schema.get('name')}>", "exec"), scope)
    read: Reader = scope["read"]
    return read


# -- writing ------------------------------------------------------------------------------------


def _zigzag(n: int) -> bytes:
    """A long as Avro writes it (zig-zag, then base-128 varint)."""
    u = (n << 1) ^ (n >> 63) if n < 0 else n << 1
    if u < 0x80:
        return _BYTE[u]
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


_BYTE = [bytes([n]) for n in range(0x80)]


def _write_kind(lines: list[str], value: str, kind: tuple[str, Any], depth: str) -> None:
    """Lines that append `value` of `kind` to `out` (a list of bytes)."""
    what, arg = kind
    if what == "enum":
        lines.append(f"{depth}out.append(_zigzag({value}_index[{value}]))")
        return
    if what == "opt":
        null_first, inner = arg
        null, other = (_BYTE[0], _BYTE[2]) if null_first else (_BYTE[2], _BYTE[0])
        lines.append(f"{depth}if {value} is None: out.append({null!r})")
        lines.append(f"{depth}else:")
        lines.append(f"{depth}    out.append({other!r})")
        _write_kind(lines, value, inner, depth + "    ")
        return
    if arg == "null":
        return
    if arg == "boolean":
        lines.append(f"{depth}out.append(b'\\x01' if {value} else b'\\x00')")
    elif arg in ("int", "long"):
        lines.append(f"{depth}out.append(_zigzag({value}))")
    elif arg == "double":
        lines.append(f"{depth}out.append(_DOUBLE.pack({value}))")
    elif arg == "float":
        lines.append(f"{depth}out.append(_FLOAT.pack({value}))")
    elif arg == "string":
        lines.append(f"{depth}s = {value}.encode()")
        lines.append(f"{depth}out.append(_zigzag(len(s))); out.append(s)")
    else:  # bytes
        lines.append(f"{depth}out.append(_zigzag(len({value}))); out.append({value})")


def writer_for(schema: Any) -> Writer | None:
    """A function writing a record's values (a dict by field name, as `to_avro` gives them)
    after `prefix` (the wire format's frame), byte for byte as fastavro writes them; None when
    the schema is not covered."""
    fields = _fields(schema)
    if fields is None:
        return None
    lines = ["def write(v, prefix):", "    out = [prefix]"]
    scope: dict[str, Any] = {"_zigzag": _zigzag, "_DOUBLE": _DOUBLE, "_FLOAT": _FLOAT}
    for n, (name, kind) in enumerate(fields):
        lines.append(f"    f{n} = v[{name!r}]")
        enum = kind if kind[0] == "enum" else kind[1][1] if kind[0] == "opt" else None
        if enum is not None and enum[0] == "enum":
            scope[f"f{n}_index"] = {symbol: i for i, symbol in enumerate(enum[1])}
        _write_kind(lines, f"f{n}", kind, "    ")
    lines.append("    return b''.join(out)")
    exec(compile("\n".join(lines), f"<avro writer {schema.get('name')}>", "exec"), scope)
    write: Writer = scope["write"]
    return write
