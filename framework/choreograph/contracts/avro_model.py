"""A small typed model of Avro schemas: names, namespaces, aliases, defaults, logical types.

fastavro parses schemas for encoding; this model exists because compatibility checks, linting and
code generation need what fastavro normalises away (aliases as written, raw defaults, field order,
where in the document something stands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


class SchemaError(ValueError):
    """The schema document is not a valid Avro schema; `path` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '/'}: {message}")
        self.path = path or "/"
        self.message = message


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(eq=False)
class Schema:
    path: str


@dataclass(eq=False)
class Primitive(Schema):
    type: str
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(eq=False)
class Named(Schema):
    fullname: str
    aliases: tuple[str, ...] = ()
    doc: str | None = None

    @property
    def name(self) -> str:
        return self.fullname.rsplit(".", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.fullname.rsplit(".", 1)[0] if "." in self.fullname else ""


@dataclass(eq=False)
class Field:
    name: str
    type: Schema
    default: Any = NO_DEFAULT
    aliases: tuple[str, ...] = ()
    doc: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


@dataclass(eq=False)
class Record(Named):
    fields: list[Field] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def field_named(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(eq=False)
class Enum(Named):
    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class Fixed(Named):
    size: int = 0
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(eq=False)
class Array(Schema):
    items: Schema


@dataclass(eq=False)
class Map(Schema):
    values: Schema


@dataclass(eq=False)
class Union(Schema):
    branches: list[Schema]


def type_label(schema: Schema) -> str:
    """How a schema is named in messages: `long`, `record com.acme.Order`, `union[null, string]`."""
    if isinstance(schema, Primitive):
        if schema.logical == "decimal":
            return f"{schema.type} (decimal({schema.precision},{schema.scale}))"
        return schema.type
    if isinstance(schema, Record):
        return f"record {schema.fullname}"
    if isinstance(schema, Enum):
        return f"enum {schema.fullname}"
    if isinstance(schema, Fixed):
        return f"fixed {schema.fullname}[{schema.size}]"
    if isinstance(schema, Array):
        return f"array<{type_label(schema.items)}>"
    if isinstance(schema, Map):
        return f"map<{type_label(schema.values)}>"
    if isinstance(schema, Union):
        return "union[" + ", ".join(type_label(b) for b in schema.branches) + "]"
    return "?"


def kind(schema: Schema) -> str:
    """The Avro type kind, used to match union branches: `record`, `int`, `array`..."""
    if isinstance(schema, Primitive):
        return schema.type
    return type(schema).__name__.lower()


class _Parser:
    def __init__(self) -> None:
        self.named: dict[str, Named] = {}

    def fullname(self, name: str, namespace: str | None, path: str) -> str:
        if "." in name:
            parts = name.split(".")
        else:
            parts = [*(namespace.split(".") if namespace else []), name]
        for part in parts:
            if not NAME_RE.match(part):
                raise SchemaError(
                    path, f"invalid name {name!r}: each part must match {NAME_RE.pattern}"
                )
        return ".".join(parts)

    def aliases(self, raw: Any, namespace: str, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            raise SchemaError(path, "aliases must be a list of names")
        return tuple(self.fullname(a, namespace, path) for a in raw)

    def parse(self, raw: Any, namespace: str, path: str) -> Schema:
        if isinstance(raw, str):
            if raw in PRIMITIVES:
                return Primitive(path, raw)
            candidates = [raw] if "." in raw else [f"{namespace}.{raw}" if namespace else raw, raw]
            for candidate in candidates:
                if candidate in self.named:
                    return self.named[candidate]
            raise SchemaError(path, f"unknown type {raw!r}")
        if isinstance(raw, list):
            return self.union(raw, namespace, path)
        if not isinstance(raw, dict):
            raise SchemaError(path, f"a schema is a string, list or object, not {raw!r}")
        t = raw.get("type")
        if t in ("record", "error"):
            return self.record(raw, namespace, path)
        if t == "enum":
            return self.enum(raw, namespace, path)
        if t == "fixed":
            return self.fixed(raw, namespace, path)
        if t == "array":
            if "items" not in raw:
                raise SchemaError(path, "array needs 'items'")
            return Array(path, self.parse(raw["items"], namespace, f"{path}/items"))
        if t == "map":
            if "values" not in raw:
                raise SchemaError(path, "map needs 'values'")
            return Map(path, self.parse(raw["values"], namespace, f"{path}/values"))
        if isinstance(t, str) and t in PRIMITIVES:
            return self.primitive(raw, t, path)
        if isinstance(t, (dict, list)) or (isinstance(t, str) and t not in PRIMITIVES):
            return self.parse(t, namespace, f"{path}/type")
        raise SchemaError(path, f"unknown type {t!r}")

    def primitive(self, raw: dict[str, Any], t: str, path: str) -> Primitive:
        logical = raw.get("logicalType")
        if logical == "decimal" and t == "bytes":
            precision, scale = self.decimal_params(raw, path, None)
            return Primitive(path, t, "decimal", precision, scale)
        return Primitive(path, t, logical if isinstance(logical, str) else None)

    def decimal_params(self, raw: dict[str, Any], path: str, size: int | None) -> tuple[int, int]:
        precision, scale = raw.get("precision"), raw.get("scale", 0)
        if not isinstance(precision, int) or precision < 1:
            raise SchemaError(path, "decimal needs a positive integer 'precision'")
        if not isinstance(scale, int) or not 0 <= scale <= precision:
            raise SchemaError(path, "decimal 'scale' must be an integer from 0 to precision")
        if size is not None and precision > _max_fixed_precision(size):
            raise SchemaError(path, f"decimal precision {precision} does not fit in fixed[{size}]")
        return precision, scale

    def register(self, named: Named, path: str) -> None:
        if named.fullname in self.named:
            raise SchemaError(path, f"{named.fullname} is defined twice")
        self.named[named.fullname] = named

    def record(self, raw: dict[str, Any], namespace: str, path: str) -> Record:
        name = raw.get("name")
        if not isinstance(name, str):
            raise SchemaError(path, "record needs a 'name'")
        ns = raw.get("namespace", namespace) if "." not in name else name.rsplit(".", 1)[0]
        full = self.fullname(name, ns, path)
        ns = full.rsplit(".", 1)[0] if "." in full else ""
        known = {"type", "name", "namespace", "doc", "aliases", "fields"}
        rec = Record(
            path,
            full,
            self.aliases(raw.get("aliases"), ns, path),
            raw.get("doc"),
            attrs={k: v for k, v in raw.items() if k not in known},
        )
        self.register(rec, path)
        raw_fields = raw.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaError(path, "record needs a 'fields' list")
        seen: set[str] = set()
        for i, rf in enumerate(raw_fields):
            fpath = f"{path}/fields/{i}"
            if not isinstance(rf, dict) or not isinstance(rf.get("name"), str):
                raise SchemaError(fpath, "a field needs a 'name'")
            fname = rf["name"]
            if not NAME_RE.match(fname):
                raise SchemaError(fpath, f"invalid field name {fname!r}")
            if fname in seen:
                raise SchemaError(fpath, f"field {fname!r} is defined twice")
            seen.add(fname)
            if "type" not in rf:
                raise SchemaError(fpath, f"field {fname!r} needs a 'type'")
            ftype = self.parse(rf["type"], ns, f"{fpath}/type")
            default = rf.get("default", NO_DEFAULT)
            if default is not NO_DEFAULT:
                problem = default_problem(ftype, default)
                if problem:
                    raise SchemaError(
                        f"{fpath}/default", f"default of field {fname!r} is invalid: {problem}"
                    )
            aliases = rf.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise SchemaError(fpath, "field aliases must be a list of names")
            fknown = {"name", "type", "default", "doc", "aliases", "order"}
            rec.fields.append(
                Field(
                    fname,
                    ftype,
                    default,
                    tuple(aliases),
                    rf.get("doc"),
                    {k: v for k, v in rf.items() if k not in fknown},
                    fpath,
                )
            )
        return rec

    def enum(self, raw: dict[str, Any], namespace: str, path: str) -> Enum:
        name = raw.get("name")
        if not isinstance(name, str):
            raise SchemaError(path, "enum needs a 'name'")
        full = self.fullname(name, raw.get("namespace", namespace), path)
        ns = full.rsplit(".", 1)[0] if "." in full else ""
        symbols = raw.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise SchemaError(path, "enum needs a 'symbols' list of strings")
        for s in symbols:
            if not NAME_RE.match(s):
                raise SchemaError(path, f"invalid enum symbol {s!r}")
        if len(set(symbols)) != len(symbols):
            raise SchemaError(path, "enum symbols must be unique")
        default = raw.get("default")
        if default is not None and default not in symbols:
            raise SchemaError(path, f"enum default {default!r} is not one of its symbols")
        en = Enum(
            path,
            full,
            self.aliases(raw.get("aliases"), ns, path),
            raw.get("doc"),
            tuple(symbols),
            default,
        )
        self.register(en, path)
        return en

    def fixed(self, raw: dict[str, Any], namespace: str, path: str) -> Fixed:
        name, size = raw.get("name"), raw.get("size")
        if not isinstance(name, str):
            raise SchemaError(path, "fixed needs a 'name'")
        if not isinstance(size, int) or size < 0:
            raise SchemaError(path, "fixed needs a non-negative integer 'size'")
        full = self.fullname(name, raw.get("namespace", namespace), path)
        ns = full.rsplit(".", 1)[0] if "." in full else ""
        fx = Fixed(path, full, self.aliases(raw.get("aliases"), ns, path), raw.get("doc"), size)
        if raw.get("logicalType") == "decimal":
            fx.logical = "decimal"
            fx.precision, fx.scale = self.decimal_params(raw, path, size)
        self.register(fx, path)
        return fx

    def union(self, raw: list[Any], namespace: str, path: str) -> Union:
        branches = [self.parse(b, namespace, f"{path}/{i}") for i, b in enumerate(raw)]
        seen: set[str] = set()
        for b in branches:
            if isinstance(b, Union):
                raise SchemaError(path, "a union may not directly contain another union")
            key = b.fullname if isinstance(b, Named) else kind(b)
            if key in seen:
                raise SchemaError(path, f"union has two branches of type {key}")
            seen.add(key)
        return Union(path, branches)


def _max_fixed_precision(size: int) -> int:
    return int((8 * size - 1) * 0.30102999566398120) if size > 0 else 0


def default_problem(schema: Schema, value: Any) -> str | None:
    """Why `value` is not a valid JSON default for `schema`, or None when it is."""
    if isinstance(schema, Union):
        if not schema.branches:
            return "an empty union has no default"
        # Avro 1.12: the default may match any branch; the first one that matches is used.
        if any(default_problem(b, value) is None for b in schema.branches):
            return None
        return f"matches no branch of {type_label(schema)}"
    if isinstance(schema, Primitive):
        t = schema.type
        if t == "null":
            return None if value is None else "expected null"
        if t == "boolean":
            return None if isinstance(value, bool) else "expected true or false"
        if t in ("int", "long"):
            lo, hi = INT_RANGE if t == "int" else LONG_RANGE
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer for {t}"
            return None if lo <= value <= hi else f"{value} is out of range for {t}"
        if t in ("float", "double"):
            ok = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
            return None if ok else f"expected a number for {t}"
        if t in ("string", "bytes"):
            return None if isinstance(value, str) else f"expected a JSON string for {t}"
    if isinstance(schema, Enum):
        return (
            None if value in schema.symbols else f"{value!r} is not a symbol of {schema.fullname}"
        )
    if isinstance(schema, Fixed):
        if not isinstance(value, str):
            return "expected a JSON string for fixed"
        return (
            None
            if len(value) == schema.size
            else f"expected {schema.size} characters for fixed[{schema.size}]"
        )
    if isinstance(schema, Array):
        if not isinstance(value, list):
            return "expected a JSON array"
        return next((p for p in (default_problem(schema.items, v) for v in value) if p), None)
    if isinstance(schema, Map):
        if not isinstance(value, dict):
            return "expected a JSON object"
        return next(
            (p for p in (default_problem(schema.values, v) for v in value.values()) if p), None
        )
    if isinstance(schema, Record):
        if not isinstance(value, dict):
            return f"expected a JSON object for {schema.fullname}"
        for f in schema.fields:
            if f.name in value:
                problem = default_problem(f.type, value[f.name])
                if problem:
                    return f"field {f.name}: {problem}"
            elif not f.has_default:
                return f"field {f.name} is missing and has no default"
        return None
    return None


def parse_schema(raw: Any) -> Schema:
    """Parse a JSON-decoded Avro schema; raise SchemaError with a path on the first problem."""
    return _Parser().parse(raw, "", "")


def named_types(schema: Schema) -> list[Named]:
    """Every named type defined in the schema, depth first, each once."""
    out: list[Named] = []
    seen: set[int] = set()

    def walk(s: Schema) -> None:
        if id(s) in seen:
            return
        seen.add(id(s))
        if isinstance(s, Named):
            out.append(s)
        if isinstance(s, Record):
            for f in s.fields:
                walk(f.type)
        elif isinstance(s, Array):
            walk(s.items)
        elif isinstance(s, Map):
            walk(s.values)
        elif isinstance(s, Union):
            for b in s.branches:
                walk(b)

    walk(schema)
    return out
