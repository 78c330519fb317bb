"""Schema evolution cases with known verdicts, shared by the unit test of the checker and the
integration test that asks the real registry for its verdict on the same case.

verdict: "compatible", "incompatible" or "invalid" (the new schema is not valid Avro).
strict: the checker rejects what registries accept: they ignore logical types (decimal scale and
precision) and check enum and fixed defaults only for being strings, though such a default fails
when a reader needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def rec(
    *fields: dict[str, Any], name: str = "Order", ns: str = "com.acme", **extra: Any
) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": ns, "fields": list(fields), **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


ID = f("id", "string")


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def fixed(size: int, **extra: Any) -> dict[str, Any]:
    return {"type": "fixed", "name": "Hash", "size": size, **extra}


def decimal(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


@dataclass
class Case:
    name: str
    mode: str
    versions: list[Any]
    verdict: str
    rules: set[str] = field(default_factory=set)
    strict: bool = False


def one_field(mode: str, old: Any, new: Any, verdict: str, name: str, *rules: str) -> Case:
    return Case(name, mode, [rec(ID, f("x", old)), rec(ID, f("x", new))], verdict, set(rules))


CASES: list[Case] = [
    Case("identical", "BACKWARD", [rec(ID), rec(ID)], "compatible"),
    Case(
        "add-field-with-default",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", "int", default=0))],
        "compatible",
    ),
    Case(
        "add-field-no-default",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", "int"))],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "add-field-no-default-forward", "FORWARD", [rec(ID), rec(ID, f("n", "int"))], "compatible"
    ),
    Case(
        "add-field-no-default-full",
        "FULL",
        [rec(ID), rec(ID, f("n", "int"))],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "add-field-with-default-full",
        "FULL",
        [rec(ID), rec(ID, f("n", "int", default=1))],
        "compatible",
    ),
    Case("remove-field-backward", "BACKWARD", [rec(ID, f("n", "int")), rec(ID)], "compatible"),
    Case(
        "remove-field-with-default-forward",
        "FORWARD",
        [rec(ID, f("n", "int", default=0)), rec(ID)],
        "compatible",
    ),
    Case(
        "remove-field-no-default-forward",
        "FORWARD",
        [rec(ID, f("n", "int")), rec(ID)],
        "incompatible",
        {"field-missing-default"},
    ),
    one_field("BACKWARD", "int", "long", "compatible", "promote-int-long"),
    one_field(
        "FORWARD", "int", "long", "incompatible", "promote-int-long-forward", "type-mismatch"
    ),
    one_field("BACKWARD", "int", "float", "compatible", "promote-int-float"),
    one_field("BACKWARD", "int", "double", "compatible", "promote-int-double"),
    one_field("BACKWARD", "long", "double", "compatible", "promote-long-double"),
    one_field("BACKWARD", "float", "double", "compatible", "promote-float-double"),
    one_field("BACKWARD", "long", "int", "incompatible", "narrow-long-int", "type-mismatch"),
    one_field(
        "BACKWARD", "double", "float", "incompatible", "narrow-double-float", "type-mismatch"
    ),
    one_field("BACKWARD", "long", "float", "compatible", "promote-long-float"),
    one_field("FULL", "string", "bytes", "compatible", "string-to-bytes-full"),
    one_field("BACKWARD", "bytes", "string", "compatible", "bytes-to-string"),
    one_field("BACKWARD", "string", "int", "incompatible", "string-to-int", "type-mismatch"),
    one_field(
        "BACKWARD", "boolean", "string", "incompatible", "boolean-to-string", "type-mismatch"
    ),
    Case(
        "rename-field-no-alias",
        "BACKWARD",
        [rec(ID, f("qty", "int")), rec(ID, f("quantity", "int"))],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "rename-field-with-alias",
        "BACKWARD",
        [rec(ID, f("qty", "int")), rec(ID, f("quantity", "int", aliases=["qty"]))],
        "compatible",
    ),
    Case(
        "rename-field-with-alias-forward",
        "FORWARD",
        [rec(ID, f("qty", "int")), rec(ID, f("quantity", "int", aliases=["qty"]))],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "rename-nested-record-no-alias",
        "BACKWARD",
        [rec(ID, f("a", rec(ID, name="Address"))), rec(ID, f("a", rec(ID, name="Location")))],
        "incompatible",
        {"name-mismatch"},
    ),
    Case(
        "rename-nested-record-with-alias",
        "BACKWARD",
        [
            rec(ID, f("a", rec(ID, name="Address"))),
            rec(ID, f("a", rec(ID, name="Location", aliases=["com.acme.Address"]))),
        ],
        "compatible",
    ),
    Case(
        "change-nested-namespace",
        "BACKWARD",
        [
            rec(ID, f("a", rec(ID, name="Address", ns="com.acme.v1"))),
            rec(ID, f("a", rec(ID, name="Address", ns="com.acme.v2"))),
        ],
        "compatible",
    ),
    one_field(
        "BACKWARD",
        enum("NEW", "PAID"),
        enum("NEW", "PAID", "SHIPPED"),
        "compatible",
        "enum-add-symbol",
    ),
    one_field(
        "FORWARD",
        enum("NEW", "PAID"),
        enum("NEW", "PAID", "SHIPPED"),
        "incompatible",
        "enum-add-symbol-forward",
        "enum-symbols-missing",
    ),
    one_field(
        "FORWARD",
        enum("NEW", "PAID", default="NEW"),
        enum("NEW", "PAID", "SHIPPED", default="NEW"),
        "compatible",
        "enum-add-symbol-forward-with-default",
    ),
    one_field(
        "BACKWARD",
        enum("NEW", "PAID", "VOID"),
        enum("NEW", "PAID"),
        "incompatible",
        "enum-remove-symbol",
        "enum-symbols-missing",
    ),
    one_field(
        "BACKWARD",
        enum("NEW", "PAID", "VOID"),
        enum("NEW", "PAID", default="NEW"),
        "compatible",
        "enum-remove-symbol-with-default",
    ),
    one_field(
        "BACKWARD",
        enum("NEW", "PAID"),
        {"type": "enum", "name": "State", "symbols": ["NEW", "PAID"]},
        "incompatible",
        "enum-renamed",
        "name-mismatch",
    ),
    one_field(
        "BACKWARD", fixed(16), fixed(32), "incompatible", "fixed-size-change", "fixed-size-mismatch"
    ),
    one_field("FULL", fixed(16), fixed(16), "compatible", "fixed-same-size"),
    one_field(
        "BACKWARD",
        fixed(16),
        {"type": "fixed", "name": "Digest", "size": 16},
        "incompatible",
        "fixed-renamed",
        "name-mismatch",
    ),
    one_field("BACKWARD", "string", ["null", "string"], "compatible", "make-nullable"),
    one_field(
        "FORWARD",
        "string",
        ["null", "string"],
        "incompatible",
        "make-nullable-forward",
        "union-branch-unreadable",
    ),
    one_field(
        "BACKWARD",
        ["null", "string"],
        "string",
        "incompatible",
        "make-required",
        "union-branch-unreadable",
    ),
    one_field(
        "BACKWARD", ["null", "string"], ["null", "string", "int"], "compatible", "union-add-branch"
    ),
    one_field(
        "FORWARD",
        ["null", "string"],
        ["null", "string", "int"],
        "incompatible",
        "union-add-branch-forward",
        "union-missing-branch",
    ),
    one_field(
        "BACKWARD",
        ["null", "string", "int"],
        ["null", "string"],
        "incompatible",
        "union-remove-branch",
        "union-missing-branch",
    ),
    one_field("BACKWARD", ["null", "int"], ["null", "long"], "compatible", "union-branch-promoted"),
    one_field("BACKWARD", "int", ["null", "long"], "compatible", "promote-into-union"),
    one_field(
        "BACKWARD",
        ["int", "string"],
        ["long", "string"],
        "compatible",
        "union-promote-first-branch",
    ),
    one_field(
        "BACKWARD",
        {"type": "array", "items": "int"},
        {"type": "array", "items": "long"},
        "compatible",
        "array-items-promoted",
    ),
    one_field(
        "BACKWARD",
        {"type": "array", "items": "long"},
        {"type": "array", "items": "int"},
        "incompatible",
        "array-items-narrowed",
        "type-mismatch",
    ),
    one_field(
        "BACKWARD",
        {"type": "map", "values": "string"},
        {"type": "map", "values": "int"},
        "incompatible",
        "map-values-changed",
        "type-mismatch",
    ),
    one_field(
        "BACKWARD",
        {"type": "map", "values": "int"},
        {"type": "map", "values": "double"},
        "compatible",
        "map-values-promoted",
    ),
    one_field(
        "BACKWARD",
        {"type": "array", "items": "string"},
        {"type": "map", "values": "string"},
        "incompatible",
        "array-to-map",
        "type-mismatch",
    ),
    one_field(
        "BACKWARD",
        rec(ID, name="Line"),
        "string",
        "incompatible",
        "record-to-string",
        "type-mismatch",
    ),
    Case(
        "nested-field-no-default",
        "BACKWARD",
        [
            rec(ID, f("a", rec(ID, name="Address"))),
            rec(ID, f("a", rec(ID, f("zip", "string"), name="Address"))),
        ],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "nested-field-with-default",
        "FULL",
        [
            rec(ID, f("a", rec(ID, name="Address"))),
            rec(ID, f("a", rec(ID, f("zip", "string", default=""), name="Address"))),
        ],
        "compatible",
    ),
    Case(
        "recursive-add-default",
        "FULL",
        [
            rec(f("v", "int"), f("next", ["null", "Node"], default=None), name="Node"),
            rec(
                f("v", "int"),
                f("next", ["null", "Node"], default=None),
                f("w", "int", default=0),
                name="Node",
            ),
        ],
        "compatible",
    ),
    one_field("BACKWARD", decimal(10, 2), decimal(12, 2), "compatible", "decimal-precision-raised"),
    Case(
        "decimal-scale-changed",
        "BACKWARD",
        [rec(ID, f("x", decimal(10, 2))), rec(ID, f("x", decimal(10, 4)))],
        "incompatible",
        {"decimal-scale-changed"},
        strict=True,
    ),
    Case(
        "decimal-precision-reduced",
        "BACKWARD",
        [rec(ID, f("x", decimal(12, 2))), rec(ID, f("x", decimal(8, 2)))],
        "incompatible",
        {"decimal-precision-reduced"},
        strict=True,
    ),
    Case(
        "bytes-to-decimal",
        "BACKWARD",
        [rec(ID, f("x", "bytes")), rec(ID, f("x", decimal(8, 2)))],
        "incompatible",
        {"decimal-logical-changed"},
        strict=True,
    ),
    Case(
        "invalid-default-type",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", "int", default="zero"))],
        "invalid",
    ),
    Case(
        "union-default-later-branch",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", ["string", "null"], default=None))],
        "compatible",
    ),
    Case(
        "invalid-default-union-no-branch",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", ["null", "string"], default=5))],
        "invalid",
    ),
    Case(
        "invalid-default-long-range",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", "int", default=2**31))],
        "invalid",
    ),
    Case(
        "invalid-fixed-default-size",
        "BACKWARD",
        [rec(ID), rec(ID, f("h", fixed(4), default="abc"))],
        "invalid",
        strict=True,
    ),
    Case(
        "invalid-enum-default",
        "BACKWARD",
        [rec(ID), rec(ID, f("s", enum("A", "B"), default="C"))],
        "invalid",
        strict=True,
    ),
    Case(
        "backward-ok-but-not-transitive",
        "BACKWARD",
        [rec(ID), rec(ID, f("n", "int", default=0)), rec(ID, f("n", "int"))],
        "compatible",
    ),
    Case(
        "backward-transitive",
        "BACKWARD_TRANSITIVE",
        [rec(ID), rec(ID, f("n", "int", default=0)), rec(ID, f("n", "int"))],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "forward-ok-but-not-transitive",
        "FORWARD",
        [rec(ID, f("n", "int")), rec(ID, f("n", "int", default=0)), rec(ID)],
        "compatible",
    ),
    Case(
        "forward-transitive",
        "FORWARD_TRANSITIVE",
        [rec(ID, f("n", "int")), rec(ID, f("n", "int", default=0)), rec(ID)],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "full-transitive",
        "FULL_TRANSITIVE",
        [rec(ID, f("n", "int")), rec(ID, f("n", "int", default=0)), rec(ID)],
        "incompatible",
        {"field-missing-default"},
    ),
    Case(
        "full-transitive-ok",
        "FULL_TRANSITIVE",
        [
            rec(ID),
            rec(ID, f("n", "int", default=0)),
            rec(ID, f("n", "int", default=0), f("m", "string", default="")),
        ],
        "compatible",
    ),
    Case(
        "none-accepts-anything",
        "NONE",
        [rec(ID, f("n", "int")), rec(ID, f("n", "string"))],
        "compatible",
    ),
]
