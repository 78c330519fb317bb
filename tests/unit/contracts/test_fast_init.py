"""The generated constructors accept and refuse exactly what pydantic does: for every flat
contract of the repository, with values of the right types and of wrong ones (a bool for an int,
text for bytes, out of an Avro range, a str subclass, None), missing and unknown fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from choreograph.contracts.event import ContractViolation, Event, Int64, String
from choreograph.contracts.fast_init import fast_init_for
from tests.unit.contracts.test_fast_codec import FLAT_MODELS, named, records


class Text(str):
    pass


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=5), st.binary(max_size=5), st.builds(Text, st.text(max_size=3)),
    st.just(2**63), st.just(-(2**63) - 1), st.just(2**31),
)  # fmt: skip
COVERED = [(s, m) for s, m in FLAT_MODELS if fast_init_for(m) is not None]


def outcome(build: Any) -> Any:
    try:
        built = build()
    except (ContractViolation, ValidationError):
        return "refused"
    return (built, built.__pydantic_fields_set__, built.__pydantic_extra__,
            built.__pydantic_private__)  # fmt: skip


def by_pydantic(model: Any, values: dict[str, Any]) -> Any:
    """What pydantic alone builds (`model_validate` would call the model's own `__init__`)."""
    instance = model.__new__(model)
    BaseModel.__init__(instance, **values)
    return instance


def test_the_flat_contracts_get_generated_constructors() -> None:
    assert {s["name"] for s, _ in COVERED} >= {"Tick", "Tallied", "RefundPayment"}


@pytest.mark.parametrize(("schema", "model"), COVERED, ids=named)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_generated_constructors_agree_with_pydantic(
    schema: dict[str, Any], model: Any, data: st.DataObject
) -> None:
    values = dict(data.draw(records(schema)))
    names = list(values)
    for _ in range(data.draw(st.integers(0, 3))):
        change = data.draw(st.sampled_from(["odd", "drop", "extra"]))
        if change == "odd":
            values[data.draw(st.sampled_from(names))] = data.draw(ODD_VALUES)
        elif change == "drop" and values:
            values.pop(data.draw(st.sampled_from(sorted(values))))
        else:
            values[data.draw(st.sampled_from(["unknown", "Id", "x_1"]))] = 1
    assert outcome(lambda: model(**values)) == outcome(lambda: by_pydantic(model, values))


EDGE_VALUES = [None, True, False, 0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63,
               -(2**63), -(2**63) - 1, 1.0, "", "x", Text("x"), b"", b"x",
               bytearray(b"x")]  # fmt: skip


@pytest.mark.parametrize(("schema", "model"), COVERED, ids=named)
def test_every_field_takes_and_refuses_the_edge_values_pydantic_does(
    schema: dict[str, Any], model: Any
) -> None:
    valid = {f["name"]: example(f["type"]) for f in schema["fields"]}
    assert outcome(lambda: model(**valid)) != "refused"
    for name in valid:
        for odd in EDGE_VALUES:
            values = {**valid, name: odd}
            ours, theirs = (
                outcome(lambda values=values: model(**values)),
                outcome(lambda values=values: by_pydantic(model, values)),
            )
            assert ours == theirs, (name, odd)


def example(field_type: Any) -> Any:
    if isinstance(field_type, list):
        return None if "null" in field_type else example(field_type[0])
    if isinstance(field_type, dict):
        return (
            field_type["symbols"][0]
            if field_type.get("type") == "enum"
            else example(field_type["type"])
        )
    return {"string": "s", "long": 1, "int": 1, "boolean": True, "bytes": b"b", "double": 1.0,
            "float": 1.0, "null": None}[field_type]  # fmt: skip


def test_defaults_are_filled_and_not_counted_as_set() -> None:
    class Defaulted(Event):
        __avro_name__ = "test.fast.Defaulted"
        id: String
        note: String = "none"
        count: Int64 | None = None

    assert fast_init_for(Defaulted) is not None
    built = Defaulted(id="a")
    assert built.model_dump() == {"id": "a", "note": "none", "count": None}
    assert built.__pydantic_fields_set__ == {"id"}
    assert Defaulted(id="a", count=3).count == 3
    with pytest.raises(ContractViolation):
        Defaulted(id="a", count="3")


def test_a_model_with_validators_of_its_own_is_left_to_pydantic() -> None:
    class Checked(Event):
        __avro_name__ = "test.fast.Checked"
        id: String

        @field_validator("id")
        @classmethod
        def not_blank(cls, v: str) -> str:
            if not v.strip():
                raise ValueError("blank")
            return v

    assert fast_init_for(Checked) is None
    with pytest.raises(ContractViolation, match="blank"):
        Checked(id=" ")
