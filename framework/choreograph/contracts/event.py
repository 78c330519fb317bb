"""Base classes of generated event models, Avro-range types, and the violation error.

A generated model carries its Avro schema, so a service needs no schema files at run time, and
validates on construction; publishing validates again (a model can be built unchecked with
`model_construct`), so a bad payload never leaves the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictBytes,
    StrictStr,
    ValidationError,
)
from pydantic import StrictInt as _StrictInt

from choreograph.contracts.fast_init import FastInit, fast_init_for

Int32 = Annotated[_StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[_StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
Boolean = StrictBool
String = StrictStr
Bytes = StrictBytes

__all__ = [
    "AvroRecord",
    "Boolean",
    "Bytes",
    "ContractViolation",
    "Event",
    "Int32",
    "Int64",
    "String",
]


class ContractViolation(ValueError):
    """A payload breaks its contract. `problems` lists (field path, rule, message); `read`
    says it was found decoding a record (the record's fault), not building an event."""

    read = False

    def __init__(self, event_type: str, problems: list[tuple[str, str, str]]) -> None:
        self.event_type = event_type
        self.problems = problems
        lines = [f"{event_type}.{path or '<root>'}: [{rule}] {msg}" for path, rule, msg in problems]
        super().__init__("contract violation:\n  " + "\n  ".join(lines))

    @classmethod
    def from_validation(cls, event_type: str, err: ValidationError) -> ContractViolation:
        problems = []
        for e in err.errors():
            path = ""
            for part in e["loc"]:
                path += (
                    f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
                )
            nested = e.get("ctx", {}).get("error")
            if isinstance(nested, ContractViolation):  # a nested record's own __init__ raised
                problems += [(f"{path}.{p}" if path else p, r, m) for p, r, m in nested.problems]
            else:
                problems.append((path, e["type"], e["msg"]))
        return cls(event_type, problems)


_set = object.__setattr__
_FIELD_COUNTS: dict[type, int] = {}  # per model class (pydantic's `model_fields` is slow to read)
_FAST_INITS: dict[type, FastInit] = {}  # per model class: its generated constructor (fast_init)


def _pydantic_decides(instance: BaseModel, data: dict[str, Any]) -> bool:
    return False


class AvroRecord(BaseModel):
    """A record of an Avro schema: strict on unknown fields, immutable once built.

    Every instance is valid: construction validates, models are frozen, and pydantic's two
    unchecked paths (`model_construct`, `model_copy(update=...)`) validate here too. So
    publishing need not validate again, and a bad payload still cannot leave the process.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    __avro_name__: ClassVar[str] = ""
    __avro_flat__: ClassVar[bool | None] = None  # no nested records and no aliases

    def __init__(self, **data: Any) -> None:
        cls = type(self)
        init = _FAST_INITS.get(cls)
        if init is None:
            init = _FAST_INITS[cls] = fast_init_for(cls) or _pydantic_decides
        if init(self, data):  # the generated checks passed: built as pydantic builds it
            return
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ContractViolation.from_validation(type(self).__avro_name__, err) from None

    @classmethod
    def model_construct(  # type: ignore[override]  # same call, but validates
        cls, _fields_set: set[str] | None = None, **values: Any
    ) -> Self:
        return cls.from_avro(values)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        if not update:
            return super().model_copy(deep=deep)
        return type(self).from_avro({**self.model_dump(by_alias=True), **update})

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ContractViolation.from_validation(cls.__avro_name__, err) from None

    @classmethod
    def trusted(cls, data: dict[str, Any]) -> Self:
        """Build from values already guaranteed by Avro decoding (flat models only). Every
        field is there (Avro decoding fills defaults), so the instance is set up directly, as
        pydantic's `model_construct` would, without its per-field work (the hot path)."""
        count = _FIELD_COUNTS.get(cls)
        if count is None:
            count = _FIELD_COUNTS[cls] = len(cls.model_fields)
        if len(data) != count:
            return BaseModel.model_construct.__func__(cls, **data)  # type: ignore[attr-defined,no-any-return]
        obj = cls.__new__(cls)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(data))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    @classmethod
    def _is_flat(cls) -> bool:
        flat = cls.__avro_flat__
        if flat is None:
            flat = cls.__avro_flat__ = all(
                field.alias is None and not _holds_records(field.annotation)
                for field in cls.model_fields.values()
            )
        return flat

    def to_avro(self) -> dict[str, Any]:
        """The payload as fastavro writes it: field names as in the schema, Python values."""
        if type(self)._is_flat():
            return self.__dict__  # fastavro only reads it; models are frozen
        return self.model_dump(by_alias=True)


def _holds_records(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_records(arg) for arg in get_args(annotation))


class Event(AvroRecord):
    """A top-level contract: one .avsc file, one registry subject per topic."""

    __avro_schema__: ClassVar[dict[str, Any]] = {}
    __avro_domain__: ClassVar[str] = ""
    __avro_topic__: ClassVar[str] = ""
