"""Generated constructors build the very instance pydantic builds, for the values they take, and
leave every other call to pydantic, which decides and says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from bench.workload import Tallied, Tick
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, field_validator

from choreograph.contracts.event import _CONSTRUCTORS, ContractViolation
from choreograph.contracts.fast_models import constructor_for
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import RefundPayment

ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5),
    st.binary(max_size=5),
)  # fmt: skip


def built(model: type[Any], data: dict[str, Any]) -> tuple[Any, Any]:
    """(instance or error type) through the model as services call it, and through pydantic."""
    try:
        ours: Any = model(**data)
    except ContractViolation as err:
        ours = (ContractViolation, tuple(p[:2] for p in err.problems))
    try:
        obj = model.__new__(model)
        BaseModel.__init__(obj, **data)
        theirs: Any = obj
    except Exception as err:
        theirs = (ContractViolation, tuple(
            (".".join(str(x) for x in e["loc"]), e["type"]) for e in err.errors()  # type: ignore[attr-defined]
        ))  # fmt: skip
    return ours, theirs


@pytest.mark.parametrize("model", [Tick, Tallied, RefundPayment], ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_same_instance_or_the_same_refusal_as_pydantic(model: type[Any], data: Any) -> None:
    fields = list(model.model_fields)
    chosen = data.draw(st.lists(st.sampled_from(fields), unique=True))
    values = {name: data.draw(ANYTHING) for name in chosen}
    ours, theirs = built(model, values)
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and ours[0] is ContractViolation
    else:
        assert ours == theirs
        assert ours.__dict__ == theirs.__dict__ and list(ours.__dict__) == list(theirs.__dict__)
        assert ours.model_fields_set == theirs.model_fields_set


def test_plain_values_take_the_generated_path_and_others_do_not() -> None:
    tick = Tick(id="a", key="k", seq=1, amount=2, behaviour="ok")
    assert _CONSTRUCTORS[Tick] is not None and tick.model_fields_set == set(tick.__dict__)
    assert Tick(id="a", key="k", seq=1, amount=2).behaviour == "ok"  # a default: pydantic's
    with pytest.raises(ContractViolation):
        Tick(id="a", key="k", seq=True, amount=2, behaviour="ok")  # a bool is no long
    with pytest.raises(ContractViolation):
        Tick(id="a", key="k", seq=2**63, amount=2, behaviour="ok")
    assert constructor_for(OrderPlaced) is None  # nested lines, decimals, timestamps

    class Checked(Tallied):  # a model with a validator of its own keeps pydantic
        @field_validator("key")
        @classmethod
        def upper(cls, value: str) -> str:
            return value.upper()

    assert constructor_for(Checked) is None
    assert Checked(input_id="i", key="k", count=1, total=1).key == "K"
