"""`sample_event` builds a valid instance of every contract in the catalog, with the fields a
test names, and says which fields there are when one is misspelt."""

from __future__ import annotations

from decimal import Decimal

import pytest

from choreograph import sample_event
from choreograph.contracts.catalog import load_catalog
from choreograph.contracts.codegen import bind_models
from choreograph_examples.contracts.orders import OrderPlaced
from tests.unit.cli.test_schemas_lint_and_codegen import REPO


def test_every_contract_of_the_catalog_has_a_valid_sample() -> None:
    catalog = load_catalog(REPO / "schemas/avro")
    models = bind_models(catalog.contracts.values())
    assert len(models) == len(catalog.contracts) > 20
    for name, model in models.items():
        event = sample_event(model)
        assert type(event).from_avro(event.to_avro()) == event, name


def test_named_fields_win_and_nested_records_are_filled() -> None:
    order = sample_event(OrderPlaced, order_id="o-7", total=Decimal("9.99"))
    assert order.order_id == "o-7" and order.total == Decimal("9.99")
    assert len(order.lines) == 1 and order.lines[0].quantity == 1
    assert order.placed_at.tzinfo is not None


def test_a_misspelt_field_is_named_with_the_fields_there_are() -> None:
    with pytest.raises(TypeError, match=r"has no field order_idd; its fields: order_id, "):
        sample_event(OrderPlaced, order_idd="o-1")
