"""Validating constructors generated per model, for flat records of primitive fields: building an
output event is on every handler's hot path, and pydantic's validation of a few strict scalars
costs more than the checks themselves.

A generated constructor accepts exactly the values pydantic's strict types accept without
conversion (a `str` for a string, an `int` within range and not a `bool` for int and long, a
`bool`, `bytes`, a `float` for a double, None where the field is optional), every field given by
name, and sets the instance up as pydantic does (`__dict__` in field order, the fields set).
Anything else (a missing field left to its default, a value pydantic would convert or refuse,
a model with validators of its own) goes to pydantic, which decides and says what is wrong, so
the outcome and the error are pydantic's. tests/unit/contracts/test_fast_models.py checks both
against pydantic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Constructor = Callable[[Any, dict[str, Any]], bool]  # sets the instance up; False: not taken

_CHECKS = {
    "string": "type({v}) is str",
    "bytes": "type({v}) is bytes",
    "boolean": "type({v}) is bool",
    "double": "type({v}) is float",
    "int": "type({v}) is int and -2147483648 <= {v} <= 2147483647",
    "long": "type({v}) is int and -9223372036854775808 <= {v} <= 9223372036854775807",
}


def _check(field_type: Any, v: str) -> str | None:
    if isinstance(field_type, str):
        return _CHECKS[field_type].format(v=v) if field_type in _CHECKS else None
    if isinstance(field_type, list) and len(field_type) == 2 and "null" in field_type:
        other = field_type[1] if field_type[0] == "null" else field_type[0]
        inner = _check(other, v)
        return f"({v} is None or {inner})" if inner else None
    if isinstance(field_type, dict) and set(field_type) == {"type"}:
        return _check(field_type["type"], v)
    return None


def constructor_for(model: type[Any]) -> Constructor | None:
    """A constructor for `model`, or None when it is not covered (not flat, a field type other
    than the scalars above, or validators of its own)."""
    decorators = getattr(model, "__pydantic_decorators__", None)
    if getattr(model, "__pydantic_post_init__", None) is not None:
        return None
    if decorators is None or any(
        getattr(decorators, kind)
        for kind in ("validators", "field_validators", "root_validators", "model_validators")
    ):
        return None
    schema = getattr(model, "__avro_schema__", None)
    if not isinstance(schema, dict) or not model._is_flat():
        return None
    names = list(model.model_fields)
    fields = {f.get("name"): f.get("type") for f in schema.get("fields", [])}
    if sorted(names) != sorted(fields):
        return None
    lines = ["def build(obj, data):", f"    if len(data) != {len(names)}: return False"]
    for n, name in enumerate(names):
        check = _check(fields[name], f"v{n}")
        if check is None:
            return None
        lines.append(f"    v{n} = data.get({name!r}, _MISSING)")
        lines.append(f"    if not ({check}): return False")
    values = ", ".join(f"{name!r}: v{n}" for n, name in enumerate(names))
    lines += [
        f"    _set(obj, '__dict__', {{{values}}})",
        f"    _set(obj, '__pydantic_fields_set__', {set(names)!r})",
        "    _set(obj, '__pydantic_extra__', None)",
        "    _set(obj, '__pydantic_private__', None)",
        "    return True",
    ]
    scope: dict[str, Any] = {"_set": object.__setattr__, "_MISSING": _MISSING}
    exec(compile("\n".join(lines), f"<constructor {schema.get('name')}>", "exec"), scope)
    build: Constructor = scope["build"]
    return build


class _Missing:
    """A field not given: never of any checked type."""


_MISSING = _Missing()
