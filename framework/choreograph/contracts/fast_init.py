"""Validating constructors generated per model, for the flat records handlers build per event.

pydantic's `__init__` costs about a microsecond and a half for a four-field record, most of it
in general machinery (argument collection, a validator walk, error plumbing) rather than in the
checks themselves. For a model whose fields are all strict text, bytes, booleans or integers of
an Avro range, optionally nullable, the checks are a type test and a range test each; this
module generates exactly those, and builds the instance as pydantic does. Anything it does not
decide (a missing field without a simple default, an unknown field, a value of another type or
out of range) goes to pydantic, so the error, and every case outside the covered ones, is
pydantic's own. Models with validators of their own, post-init hooks, aliases or fields of any
other type get no generated constructor.

Written by hand because pydantic has no cheaper path that validates (`model_construct` does
not); `tests/unit/contracts/test_fast_init.py` checks that it accepts and refuses exactly what
pydantic does.
"""

from __future__ import annotations

from collections.abc import Callable
from types import UnionType
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel, Strict
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

FastInit = Callable[[BaseModel, dict[str, Any]], bool]  # True: built; False: ask pydantic
_SIMPLE_DEFAULTS = (str, int, bool, bytes, type(None))


def _check(annotation: Any, metadata: list[Any], value: str) -> str | None:
    """A Python expression true when `value` passes the field's validation; None when the
    field is not one this module covers."""
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1 or len(get_args(annotation)) != 2:
            return None
        optional, annotation = True, args[0]
        inner = getattr(annotation, "__metadata__", None)
        if inner is not None:  # Optional[Annotated[int, Strict(), Field(ge=..., le=...)]]
            for part in inner:
                metadata = [*metadata, *(part.metadata if isinstance(part, FieldInfo) else [part])]
            annotation = get_args(annotation)[0]
    strict = [m for m in metadata if isinstance(m, Strict)]
    bounds = [m for m in metadata if isinstance(m, Ge | Le)]
    if len(strict) + len(bounds) != len(metadata) or not strict or not strict[0].strict:
        return None
    if annotation in (str, bool, bytes) and not bounds:
        check = f"type({value}) is {annotation.__name__}"
    elif annotation is int and len(bounds) == 2:
        lo = next(m.ge for m in bounds if isinstance(m, Ge))
        hi = next(m.le for m in bounds if isinstance(m, Le))
        check = f"type({value}) is int and {lo!r} <= {value} <= {hi!r}"
    else:
        return None
    return f"({value} is None or {check})" if optional else check


def fast_init_for(model: type[BaseModel]) -> FastInit | None:
    """The generated constructor of `model`, or None when it is not covered."""
    decorators = model.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
        or decorators.field_serializers
        or decorators.model_serializers
        or decorators.computed_fields
        or model.__pydantic_post_init__ is not None
        or model.model_config.get("extra") != "forbid"
        or model.__private_attributes__
    ):
        return None
    lines = ["def init(o, d):", "    n = len(d)"]
    names: list[str] = []
    required = 0
    for i, (name, field) in enumerate(model.model_fields.items()):
        if field.alias is not None or field.validation_alias is not None:
            return None
        check = _check(field.annotation, list(field.metadata), f"v{i}")
        if check is None:
            return None
        names.append(name)
        if field.is_required():
            required += 1
            lines.append(f"    v{i} = d.get({name!r}, _MISSING)")
            lines.append(f"    if v{i} is _MISSING: return False")
        else:
            default = field.default
            if field.default_factory is not None or default is PydanticUndefined:
                return None
            if type(default) not in _SIMPLE_DEFAULTS:
                return None
            lines.append(f"    v{i} = d.get({name!r}, _MISSING)")
            lines.append(f"    if v{i} is _MISSING: v{i} = {default!r}; n += 1")
        lines.append(f"    if not ({check}): return False")
    count = len(names)
    # Every key named a field (no unknown ones): the keys given plus the defaults filled in.
    lines.append(f"    if n != {count}: return False")
    values = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    fields_set = "set(_NAMES)" if required == count else "set(d)"
    lines += [
        f"    _set(o, '__dict__', {{{values}}})",
        f"    _set(o, '__pydantic_fields_set__', {fields_set})",
        "    _set(o, '__pydantic_extra__', None)",
        "    _set(o, '__pydantic_private__', None)",
        "    return True",
    ]
    scope: dict[str, Any] = {"_MISSING": object(), "_set": object.__setattr__,
                             "_NAMES": tuple(names)}  # fmt: skip
    exec(compile("\n".join(lines), f"<fast init {model.__name__}>", "exec"), scope)
    init: FastInit = scope["init"]
    return init
