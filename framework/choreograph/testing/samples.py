"""`sample_event(Model, **fields)`: a valid instance of any generated event model, built from
the Avro schema the model carries, with the fields a test cares about given by name.

A test then says only what matters to it (`sample_event(OrderPlaced, order_id="o-1")`), and
stays valid when the contract gains a field with no default. Values are fixed, not random, so a
failing test fails the same way again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, TypeVar

from choreograph.contracts.event import Event

E = TypeVar("E", bound=Event)

MOMENT = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)


def sample_event(model: type[E], **fields: Any) -> E:
    """An instance of `model` with `fields` as given and every other field a valid sample."""
    schema = model.__avro_schema__
    if not schema:
        raise TypeError(f"{model!r} carries no Avro schema: pass a generated event model")
    unknown = set(fields) - {f["name"] for f in schema["fields"]} - set(model.model_fields)
    if unknown:
        raise TypeError(
            f"{model.__avro_name__} has no field {', '.join(sorted(unknown))}; "
            f"its fields: {', '.join(f['name'] for f in schema['fields'])}"
        )
    named: dict[str, Any] = {}
    values = _record(schema, named, schema.get("namespace", ""))
    return model(**{**values, **fields})


def _record(schema: dict[str, Any], named: dict[str, Any], namespace: str) -> dict[str, Any]:
    _remember(schema, named, namespace)
    space = schema.get("namespace", namespace)
    out: dict[str, Any] = {}
    for field in schema["fields"]:
        out[field["name"]] = _value(field["type"], named, space, field["name"])
    return out


def _remember(schema: dict[str, Any], named: dict[str, Any], namespace: str) -> None:
    name = schema["name"]
    space = schema.get("namespace", namespace)
    full = name if "." in name or not space else f"{space}.{name}"
    named[full] = schema
    named.setdefault(name, schema)


def _value(schema: Any, named: dict[str, Any], namespace: str, field: str) -> Any:
    if isinstance(schema, list):  # a union: its first branch, as Avro defaults go
        return _value(schema[0], named, namespace, field)
    if isinstance(schema, str):
        if schema in named or f"{namespace}.{schema}" in named:
            found = named.get(f"{namespace}.{schema}", named.get(schema))
            return _value(found, named, namespace, field)
        return _primitive(schema, None, field)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "decimal":
        return Decimal(1).scaleb(-int(schema.get("scale", 0)))
    if kind == "record":
        return _record(schema, named, namespace)
    if kind == "enum":
        _remember(schema, named, namespace)
        return schema.get("default", schema["symbols"][0])
    if kind == "fixed":
        _remember(schema, named, namespace)
        return b"\x00" * int(schema["size"])
    if kind == "array":
        return [_value(schema["items"], named, namespace, field)]
    if kind == "map":
        return {"key": _value(schema["values"], named, namespace, field)}
    return _primitive(kind, logical, field)


def _primitive(kind: str, logical: str | None, field: str) -> Any:
    if logical in ("timestamp-millis", "timestamp-micros"):
        return MOMENT
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return MOMENT.replace(tzinfo=None)
    if logical == "date":
        return MOMENT.date()
    if logical in ("time-millis", "time-micros"):
        return MOMENT.time()
    if logical == "uuid":
        return uuid.UUID(int=1)
    if kind == "string":
        if "email" in field:
            return "someone@example.com"
        return f"{field}-1" if field.endswith("id") else field
    return {
        "null": None,
        "boolean": True,
        "int": 1,
        "long": 1,
        "float": 1.0,
        "double": 1.0,
        "bytes": b"\x01",
    }[kind]
