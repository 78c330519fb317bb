"""Render pydantic v2 event models from the .avsc contracts, one Python module per domain.

Generated code (checked in, verified in CI with `choreograph schemas codegen --check`) rather than
models bound at run time: teams get classes that mypy and editors understand, reviews show the
Python shape of a contract change, and the .avsc stays the source of truth because any drift fails
the check. `bind_models` executes the same rendered source, for tools that need models without
generated files; both paths share this one renderer.
"""

from __future__ import annotations

import datetime as dt
import json
import keyword
import sys
import types
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from choreograph.contracts.avro_model import (
    Array,
    Enum,
    Field,
    Fixed,
    Map,
    Named,
    Primitive,
    Record,
    Schema,
    Union,
    default_problem,
    named_types,
)
from choreograph.contracts.catalog import Contract

HEADER = (
    '"""Event models of the `{domain}` domain, generated from {source} by '
    "`choreograph schemas codegen`.\n\n"
    'Do not edit: change the .avsc files and generate again.\n"""\n'
)
IMPORTS = """\
# ruff: noqa
import datetime
import json
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from choreograph.contracts.event import AvroRecord, Boolean, Bytes, Event, Int32, Int64, String
"""
RESERVED = frozenset(
    {
        "copy",
        "dict",
        "json",
        "schema",
        "validate",
        "construct",
        "fields",
        "from_avro",
        "to_avro",
        "validated",
    }
)


class CodegenError(ValueError):
    """The contracts cannot be rendered as one module (e.g. two types share a short name)."""


def _py_name(name: str) -> str:
    if keyword.iskeyword(name) or name.startswith("model_") or name in RESERVED:
        return f"{name}_"
    return name


class _Module:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.classes: dict[str, str] = {}  # fullname -> class name
        self.sources: dict[str, Any] = {}  # fullname -> raw definition, to detect conflicts
        self.blocks: list[str] = []
        self.recursive = False
        self.forward_ref = False  # the annotation being rendered names a class not defined yet

    def class_name(self, named: Named) -> str:
        return self.classes[named.fullname]

    def annotation(self, s: Schema, defining: set[str]) -> str:
        if isinstance(s, Primitive):
            return _primitive_annotation(s)
        if isinstance(s, Named) and s.fullname in self.classes:
            name = self.class_name(s)
            if s.fullname in defining:
                self.recursive = self.forward_ref = True
            return name
        if isinstance(s, Fixed):
            if s.logical == "decimal":
                return (
                    f"Annotated[Decimal, Field(max_digits={s.precision}, decimal_places={s.scale})]"
                )
            return f"Annotated[bytes, Field(min_length={s.size}, max_length={s.size})]"
        if isinstance(s, Array):
            return f"list[{self.annotation(s.items, defining)}]"
        if isinstance(s, Map):
            return f"dict[str, {self.annotation(s.values, defining)}]"
        if isinstance(s, Union):
            return " | ".join(self.annotation(b, defining) for b in s.branches)
        raise CodegenError(f"cannot render {s!r}")

    def default(self, s: Schema, value: Any) -> str:
        if isinstance(s, Union):
            branch = next(b for b in s.branches if default_problem(b, value) is None)
            return self.default(branch, value)
        if isinstance(s, Primitive):
            return _primitive_default(s, value)
        if isinstance(s, Enum):
            return f"{self.class_name(s)}.{value}"
        if isinstance(s, Fixed):
            return repr(value.encode("latin-1"))
        if isinstance(s, Record):
            return f"{self.class_name(s)}.model_validate({value!r})"
        if isinstance(s, Array):
            return "[" + ", ".join(self.default(s.items, v) for v in value) + "]"
        if isinstance(s, Map):
            return (
                "{"
                + ", ".join(f"{k!r}: {self.default(s.values, v)}" for k, v in value.items())
                + "}"
            )
        raise CodegenError(f"cannot render a default for {s!r}")

    def add_named(self, named: Named, contract: Contract, top: bool) -> None:
        if named.fullname in self.sources or isinstance(named, Fixed):
            return  # fixed types render inline as constrained bytes
        short = named.name
        if short in self.classes.values():
            other = next(k for k, v in self.classes.items() if v == short)
            raise CodegenError(
                f"{contract.path}: {named.fullname} and {other} would both be class {short} in "
                f"module {self.domain}; rename one"
            )
        self.classes[named.fullname] = short
        self.sources[named.fullname] = named
        if isinstance(named, Enum):
            self.blocks.append(self._enum(named))
        elif isinstance(named, Record):
            self.blocks.append(self._record(named, contract if top else None))

    def _enum(self, e: Enum) -> str:
        lines = [f"class {e.name}(StrEnum):", f"    {_doc(e.doc or e.fullname)}"]
        lines += [f"    {sym} = {sym!r}" for sym in e.symbols]
        return "\n".join(lines)

    def _record(self, r: Record, contract: Contract | None) -> str:
        base = "Event" if contract else "AvroRecord"
        lines = [f"class {r.name}({base}):", f"    {_doc(r.doc or r.fullname)}", ""]
        lines.append(f"    __avro_name__: ClassVar[str] = {r.fullname!r}")
        if contract:
            lines.append(f"    __avro_domain__: ClassVar[str] = {contract.domain!r}")
            lines.append(f"    __avro_topic__: ClassVar[str] = {contract.topic!r}")
            schema_json = json.dumps(contract.raw, separators=(",", ":"), sort_keys=False)
            lines.append(
                f"    __avro_schema__: ClassVar[dict[str, Any]] = json.loads({schema_json!r})"
            )
        lines.append("")
        for f in r.fields:
            lines.append(self._field(f, {r.fullname}))
        return "\n".join(lines)

    def _field(self, f: Field, defining: set[str]) -> str:
        self.forward_ref = False
        annot = self.annotation(f.type, defining)
        if self.forward_ref:
            annot = repr(annot)  # resolved by model_rebuild() at the end of the module
        name = _py_name(f.name)
        args: list[str] = []
        if f.has_default:
            expr = self.default(f.type, f.default)
            mutable = isinstance(f.type, (Array, Map, Record)) or expr.endswith(")")
            args.append(f"default_factory=lambda: {expr}" if mutable else f"default={expr}")
        if name != f.name:
            args.append(f"alias={f.name!r}")
        if f.doc:
            args.append(f"description={f.doc!r}")
        return f"    {name}: {annot}" + (f" = Field({', '.join(args)})" if args else "")


def _doc(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'


def _primitive_annotation(s: Primitive) -> str:
    logical = {
        ("long", "timestamp-millis"): "datetime.datetime",
        ("long", "timestamp-micros"): "datetime.datetime",
        ("long", "local-timestamp-millis"): "datetime.datetime",
        ("long", "local-timestamp-micros"): "datetime.datetime",
        ("int", "date"): "datetime.date",
        ("int", "time-millis"): "datetime.time",
        ("long", "time-micros"): "datetime.time",
        ("string", "uuid"): "uuid.UUID",
    }.get((s.type, s.logical or ""))
    if logical:
        return logical
    if s.logical == "decimal":
        return f"Annotated[Decimal, Field(max_digits={s.precision}, decimal_places={s.scale})]"
    return {
        "null": "None",
        "boolean": "Boolean",
        "int": "Int32",
        "long": "Int64",
        "float": "float",
        "double": "float",
        "bytes": "Bytes",
        "string": "String",
    }[s.type]


def _primitive_default(s: Primitive, value: Any) -> str:
    if s.logical in ("timestamp-millis", "timestamp-micros"):
        scale = 1000 if s.logical == "timestamp-millis" else 1_000_000
        moment = dt.datetime.fromtimestamp(value / scale, tz=dt.UTC)
        return f"datetime.datetime.fromisoformat({moment.isoformat()!r})"
    if s.logical == "date":
        day = dt.date(1970, 1, 1) + dt.timedelta(days=value)
        return f"datetime.date.fromisoformat({day.isoformat()!r})"
    if s.logical == "uuid":
        return f"uuid.UUID({value!r})"
    if s.logical == "decimal":
        raw = value.encode("latin-1")
        unscaled = int.from_bytes(raw, "big", signed=True) if raw else 0
        return f"Decimal({str(Decimal(unscaled).scaleb(-(s.scale or 0)))!r})"
    if s.type == "bytes":
        return repr(value.encode("latin-1"))
    if s.type in ("float", "double"):
        return repr(float(value))
    return repr(value)


def render_domain(domain: str, contracts: Iterable[Contract], source: str) -> str:
    """The Python source of one domain's module."""
    module = _Module(domain)
    ordered = sorted(contracts, key=lambda c: c.fullname)
    for contract in ordered:
        # Nested types first (depth-first order puts the top record first; reverse it).
        for named in reversed(named_types(contract.schema)):
            module.add_named(named, contract, top=named is contract.schema)
    parts = [HEADER.format(domain=domain, source=source), IMPORTS]
    parts += [f"\n\n{block}\n" for block in module.blocks]
    events = ", ".join(module.class_name(c.schema) for c in ordered)
    parts.append(f"\n\nEVENTS: tuple[type[Event], ...] = ({events},)\n")
    if module.recursive:
        parts.append("\nfor _model in list(globals().values()):\n")
        parts.append("    if isinstance(_model, type) and issubclass(_model, AvroRecord):\n")
        parts.append("        _model.model_rebuild()\n")
    return "".join(parts)


def render_all(
    contracts: Iterable[Contract],
    source: str,
    pulled: Iterable[Contract] = (),
    pulled_from: str = "",
) -> dict[str, str]:
    """File name -> source for every domain, plus the package's __init__.py. `pulled`: other
    teams' contracts (from `pulled_from`), generated beside the repository's own."""
    by_domain: dict[str, list[Contract]] = {}
    origin: dict[str, str] = {}
    for folder, group in ((source, contracts), (pulled_from, pulled)):
        for c in group:
            if origin.setdefault(c.domain, folder) != folder:
                raise CodegenError(
                    f"domain {c.domain} is both in {origin[c.domain]} and in {folder}: a "
                    "repository pulls only the domains it does not own"
                )
            by_domain.setdefault(c.domain, []).append(c)
    files = {
        f"{d}.py": render_domain(d, cs, f"{origin[d]}/{d}") for d, cs in sorted(by_domain.items())
    }
    names = ", ".join(repr(d) for d in sorted(by_domain))
    files["__init__.py"] = (
        f'"""Event models generated from {source} by `choreograph schemas codegen`. '
        'Do not edit."""\n\n'
        f"DOMAINS = ({names}{',' if len(by_domain) == 1 else ''})\n"
    )
    return files


def write(out: Path, files: dict[str, str]) -> list[Path]:
    """Write generated files; remove generated modules of domains that no longer exist."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    for stale in stale_files(out, files):
        stale.unlink()
        written.append(stale)
    return written


def stale_files(out: Path, files: dict[str, str]) -> list[Path]:
    marker = "by `choreograph schemas codegen`"
    return [
        p for p in sorted(out.glob("*.py")) if p.name not in files and marker in p.read_text()[:300]
    ]


def drift(out: Path, files: dict[str, str]) -> list[str]:
    """What differs between the generated files on disk and what the contracts render to."""
    problems = []
    for name, text in files.items():
        path = out / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: out of date")
    problems += [
        f"{p}: generated for a domain that no longer exists" for p in stale_files(out, files)
    ]
    return problems


def bind_models(
    contracts: Iterable[Contract], module_name: str = "choreograph_bound_models"
) -> dict[str, type]:
    """Models for `contracts` without generated files: full name -> class."""
    out: dict[str, type] = {}
    by_domain: dict[str, list[Contract]] = {}
    for c in contracts:
        by_domain.setdefault(c.domain, []).append(c)
    for domain, cs in by_domain.items():
        name = f"{module_name}.{domain}"
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(render_domain(domain, cs, "<bound>"), f"<{name}>", "exec"), module.__dict__)
        for c in cs:
            out[c.fullname] = getattr(module, c.schema.name)
    return out
