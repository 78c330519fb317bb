"""Avro schema compatibility: can a reader schema decode data written with a writer schema?

Follows the Avro specification's schema-resolution rules, as the Java SchemaCompatibility that
registries use applies them (names compare unqualified or through the reader's aliases; writer
fields the reader lacks are skipped; reader fields the writer lacks need a default; an enum reader
needs every writer symbol or an enum default). On top of those, decimal precision and scale are
checked: the registry ignores logical types, but a scale change silently rescales every amount,
so this checker reports it as `strict` (breaking here, accepted by the registry).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from choreograph.contracts.avro_model import (
    Array,
    Enum,
    Fixed,
    Map,
    Named,
    Primitive,
    Record,
    Schema,
    Union,
    kind,
    type_label,
)

PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class Mode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader cannot decode a writer's data."""

    rule: str
    message: str
    fix: str
    reader_path: str
    writer_path: str
    strict: bool = False
    """Breaking here but accepted by registries that ignore logical types."""
    reader_label: str = ""  # the reader's type (or field name) the problem is about
    writer_label: str = ""  # the writer's


@dataclass(frozen=True)
class Finding:
    """An incompatibility placed in a compatibility check: which version, which direction."""

    problem: Incompatibility
    direction: str  # "backward" (new reads old data) or "forward" (old reads new data)
    version: int | str

    @property
    def path_in_new(self) -> str:
        p = self.problem
        return p.reader_path if self.direction == "backward" else p.writer_path

    def describe(self) -> str:
        if self.direction == "backward":
            who = f"the new schema cannot read data written with version {self.version}"
        else:
            who = (
                f"consumers on version {self.version} cannot read data written with the new schema"
            )
        return f"{who}: {self.problem.message}"


def _json(value: Any) -> str:
    return json.dumps(value)


def _suggest_default(schema: Schema) -> Any:
    if isinstance(schema, Union):
        return None if kind(schema.branches[0]) == "null" else _suggest_default(schema.branches[0])
    if isinstance(schema, Primitive):
        return {
            "null": None,
            "boolean": False,
            "int": 0,
            "long": 0,
            "float": 0.0,
            "double": 0.0,
        }.get(schema.type, "")
    if isinstance(schema, Enum):
        return schema.default or schema.symbols[0]
    if isinstance(schema, Array):
        return []
    if isinstance(schema, Map):
        return {}
    return None


class _Resolver:
    def __init__(self) -> None:
        self.cache: dict[tuple[int, int], list[Incompatibility]] = {}

    def check(self, r: Schema, w: Schema) -> list[Incompatibility]:
        key = (id(r), id(w))
        if key in self.cache:  # recursion: a pair in progress counts as compatible
            return self.cache[key]
        self.cache[key] = []
        result = self._check(r, w)
        self.cache[key] = result
        return result

    def _bad(
        self, rule: str, r: Schema, w: Schema, message: str, fix: str, strict: bool = False
    ) -> list[Incompatibility]:
        return [
            Incompatibility(
                rule, message, fix, r.path or "/", w.path or "/", strict,
                type_label(r), type_label(w),
            )
        ]  # fmt: skip

    def _check(self, r: Schema, w: Schema) -> list[Incompatibility]:
        if isinstance(w, Union):
            out: list[Incompatibility] = []
            for branch in w.branches:
                problems = self.check(r, branch)
                if problems and not isinstance(r, Union):
                    out += self._bad(
                        "union-branch-unreadable",
                        r,
                        branch,
                        f"writer union branch {type_label(branch)} cannot be read as "
                        f"{type_label(r)}",
                        f"make the field a union that includes {type_label(branch)}",
                    )
                else:
                    out += problems
            return out
        if isinstance(r, Union):
            for branch in r.branches:
                if not self.check(branch, w):
                    return []
            return self._bad(
                "union-missing-branch",
                r,
                w,
                f"{type_label(w)} is not among the reader union's branches {type_label(r)}",
                f"add {type_label(w)} to the union",
            )
        if kind(r) == kind(w):
            return self._same_kind(r, w)
        promoted = PROMOTIONS.get(w.type, frozenset()) if isinstance(w, Primitive) else frozenset()
        if isinstance(r, Primitive) and r.type in promoted:
            return self._decimal(r, w)
        return self._bad(
            "type-mismatch",
            r,
            w,
            f"{type_label(w)} cannot be read as {type_label(r)}",
            f"keep type {type_label(w)} (allowed widenings: int->long->float->double, "
            "string<->bytes), or add a new field and deprecate this one",
        )

    def _names(self, r: Named, w: Named) -> list[Incompatibility]:
        if r.name == w.name or w.fullname in r.aliases:
            return []
        return self._bad(
            "name-mismatch",
            r,
            w,
            f"{kind(r)} name {r.fullname} does not match the writer's {w.fullname}",
            f'keep the name {w.name}, or add "aliases": ["{w.fullname}"] to {r.fullname}',
        )

    def _same_kind(self, r: Schema, w: Schema) -> list[Incompatibility]:
        if isinstance(r, Record) and isinstance(w, Record):
            return self._names(r, w) or self._record(r, w)
        if isinstance(r, Enum) and isinstance(w, Enum):
            return self._names(r, w) or self._enum(r, w)
        if isinstance(r, Fixed) and isinstance(w, Fixed):
            problems = self._names(r, w)
            if not problems and r.size != w.size:
                problems = self._bad(
                    "fixed-size-mismatch",
                    r,
                    w,
                    f"fixed {r.fullname} has size {r.size}, the writer's has {w.size}",
                    f"keep size {w.size}, or define a new fixed type under a new name",
                )
            return problems or self._decimal(r, w)
        if isinstance(r, Array) and isinstance(w, Array):
            return self.check(r.items, w.items)
        if isinstance(r, Map) and isinstance(w, Map):
            return self.check(r.values, w.values)
        return self._decimal(r, w)

    def _record(self, r: Record, w: Record) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        for rf in r.fields:
            wf = w.field_named(rf.name) or next(
                (f for a in rf.aliases if (f := w.field_named(a))), None
            )
            if wf is None:
                if not rf.has_default:
                    out.append(
                        Incompatibility(
                            "field-missing-default",
                            f"field {rf.name!r} of {r.fullname} is absent from the writer's "
                            "schema and has no default",
                            f'add "default": {_json(_suggest_default(rf.type))} to field '
                            f'{rf.name!r}, or list the old field name in its "aliases"',
                            rf.path,
                            w.path or "/",
                            reader_label=rf.name,
                        )
                    )
                continue
            out += self.check(rf.type, wf.type)
        return out

    def _enum(self, r: Enum, w: Enum) -> list[Incompatibility]:
        missing = [s for s in w.symbols if s not in r.symbols]
        if not missing or r.default in r.symbols:
            return []
        return self._bad(
            "enum-symbols-missing",
            r,
            w,
            f"enum {r.fullname} lacks writer symbols {', '.join(missing)}",
            f'keep symbols {", ".join(missing)}, or give the enum a "default" symbol so readers '
            "map unknown symbols to it",
        )

    def _decimal(self, r: Schema, w: Schema) -> list[Incompatibility]:
        rd = getattr(r, "logical", None) == "decimal"
        wd = getattr(w, "logical", None) == "decimal"
        if not (rd or wd):
            return []
        if rd != wd:
            which = "gains" if rd else "loses"
            return self._bad(
                "decimal-logical-changed",
                r,
                w,
                f"the field {which} its decimal logical type ({type_label(w)} -> {type_label(r)})",
                "keep the logical type; add a new field for the new representation",
                strict=True,
            )
        rp, rs = getattr(r, "precision", None), getattr(r, "scale", None)
        wp, ws = getattr(w, "precision", None), getattr(w, "scale", None)
        if rs != ws:
            return self._bad(
                "decimal-scale-changed",
                r,
                w,
                f"decimal scale changes from {ws} to {rs}: every value would be read rescaled",
                f"keep scale {ws}; add a new field for the new scale",
                strict=True,
            )
        if rp is not None and wp is not None and rp < wp:
            return self._bad(
                "decimal-precision-reduced",
                r,
                w,
                f"decimal precision drops from {wp} to {rp}: larger written values do not fit",
                f"keep precision {wp} or raise it",
                strict=True,
            )
        return []


def forward_fix(problem: Incompatibility, version: int | str) -> Incompatibility:
    """A forward failure seen from the change: the reader is the previous version, the writer
    the new file, so the fix is to what the new file does (the resolver speaks as the reader)."""
    old, new = problem.reader_label, problem.writer_label
    fixes = {
        "type-mismatch": f"keep type {old}: consumers on version {version} read it as {old}; "
        "to change a type, add a new field and deprecate this one",
        "field-missing-default": f"keep field {old!r} in the new schema: consumers on version "
        f"{version} require it. To remove it, first release a version that gives it a default, "
        "then remove it once every consumer has upgraded",
        "union-branch-unreadable": f"do not add {new} to the union: consumers on version "
        f"{version} cannot read it; add a new field instead",
        "union-missing-branch": f"keep the type among {old}: consumers on version {version} "
        "read only those",
        "enum-symbols-missing": "do not add symbols until consumers can cope: first release a "
        'version of the enum with a "default" symbol, then add symbols',
        "name-mismatch": f"keep the name {old}: consumers on version {version} look for it",
    }
    fix = fixes.get(problem.rule)
    return replace(problem, fix=fix) if fix else problem


def can_read(reader: Schema, writer: Schema) -> list[Incompatibility]:
    """Every reason `reader` cannot decode data written with `writer` (empty: it can)."""
    return _Resolver().check(reader, writer)


def check_compatibility(
    new: Schema,
    previous: Sequence[tuple[int | str, Schema]],
    mode: Mode,
    include_strict: bool = True,
) -> list[Finding]:
    """Check `new` against earlier versions (oldest first) under a registry compatibility mode."""
    if mode is Mode.NONE or not previous:
        return []
    targets = previous if mode.transitive else previous[-1:]
    findings: list[Finding] = []
    for version, old in targets:
        if mode.backward:
            findings += [Finding(p, "backward", version) for p in can_read(new, old)]
        if mode.forward:
            findings += [
                Finding(forward_fix(p, version), "forward", version) for p in can_read(old, new)
            ]
    if not include_strict:
        findings = [f for f in findings if not f.problem.strict]
    return findings
