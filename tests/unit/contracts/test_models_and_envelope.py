"""Generated models and the CloudEvents envelope, without servers."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import fastavro
import pytest

from choreograph.contracts.catalog import Policy, parse_contract
from choreograph.contracts.codegen import bind_models
from choreograph.contracts.envelope import (
    Envelope,
    EnvelopeError,
    child_traceparent,
    handling,
    trace_id,
)
from choreograph.contracts.event import ContractViolation
from choreograph_examples.contracts.orders import (
    CancelReason,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
)


def contract(schema: dict, name: str = "t") -> object:
    return parse_contract(json.dumps(schema), f"{name}.avsc", name, Policy())


def test_violation_names_field_path_and_rule() -> None:
    with pytest.raises(ContractViolation) as err:
        OrderPlaced(
            order_id="o",
            customer_id="c",
            customer_email="e",
            total=Decimal("1.005"),
            lines=[{"sku": "s", "quantity": 2**31}],
            placed_at=datetime.now(UTC),
        )
    problems = {(p, r) for p, r, _ in err.value.problems}
    assert problems == {("lines[0].quantity", "less_than_equal"), ("total", "decimal_max_places")}
    assert "com.acme.orders.OrderPlaced.total" in str(err.value)


def test_unknown_fields_and_wrong_types_are_rejected() -> None:
    with pytest.raises(ContractViolation) as err:
        OrderCancelled(order_id=5, reason="NOPE", colour="red")
    assert {(p, r) for p, r, _ in err.value.problems} == {
        ("order_id", "string_type"),
        ("reason", "enum"),
        ("colour", "extra_forbidden"),
    }


def test_model_payload_encodes_with_its_own_schema() -> None:
    event = OrderCancelled(order_id="o", reason=CancelReason.TIMEOUT)
    parsed = fastavro.parse_schema(OrderCancelled.__avro_schema__, named_schemas={})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, event.to_avro())
    buf.seek(0)
    assert OrderCancelled.from_avro(fastavro.schemaless_reader(buf, parsed)) == event


def test_bound_models_match_generated_ones() -> None:
    from pathlib import Path

    text = (
        Path(__file__).resolve().parents[3] / "schemas/avro/orders/OrderPlaced.avsc"
    ).read_text()
    bound = bind_models([parse_contract(text, "p", "orders", Policy())], "bound_test")
    model = bound["com.acme.orders.OrderPlaced"]
    assert model.__avro_schema__ == OrderPlaced.__avro_schema__
    assert list(model.model_fields) == list(OrderPlaced.model_fields)


def test_codegen_handles_recursion_keywords_defaults_and_logical_types() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "namespace": "t",
        "fields": [
            {"name": "from", "type": "string", "default": "x"},
            {"name": "next", "type": ["null", "Node"], "default": None},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["a"]},
            {
                "name": "at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "default": 0,
            },
            {"name": "hash", "type": {"type": "fixed", "name": "H", "size": 2}, "default": "ab"},
        ],
    }
    Node = bind_models([contract(schema)], "rec_test")["t.Node"]
    n = Node(next={"next": None})
    assert n.from_ == "x" and n.tags == ["a"] and n.hash == b"ab"
    assert n.at == datetime(1970, 1, 1, tzinfo=UTC)
    assert n.to_avro()["from"] == "x" and isinstance(n.next, Node)


def test_envelope_round_trips_through_headers() -> None:
    env = Envelope.new("com.acme.orders.OrderPlaced", "orders", "o-1").with_extensions(
        ce_tenant="eu"
    )
    back = Envelope.from_headers(env.to_headers())
    assert back == env
    headers = dict(env.to_headers())
    assert headers["ce_specversion"] == b"1.0" and headers["content-type"] == b"application/avro"
    assert re.match(rb"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", headers["traceparent"])


def test_child_follows_the_event_in_hand() -> None:
    parent = Envelope.new("a.A", "svc", "k", correlation_id="process-7")
    with handling(parent):
        child = Envelope.new("b.B", "svc2", "k")
    orphan = Envelope.new("b.B", "svc2", "k")
    assert (child.correlation_id, child.causation_id) == ("process-7", parent.id)
    assert trace_id(child.traceparent) == trace_id(parent.traceparent)
    assert child.traceparent != parent.traceparent
    assert orphan.causation_id is None and orphan.correlation_id == orphan.id


def test_invalid_traceparent_starts_a_new_trace() -> None:
    assert trace_id(child_traceparent("garbage")) is not None
    assert trace_id(child_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01")) != "0" * 32


BAD_HEADERS = [
    ([("ce_id", b"1")], "missing CloudEvents headers: ce_specversion, ce_source, ce_type"),
    (
        [("ce_specversion", b"0.3"), ("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")],
        "unsupported",
    ),
    (
        [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"t"),
            ("ce_time", b"yesterday"),
        ],
        "RFC 3339",
    ),
    ([("ce_specversion", b"\xff")], "not UTF-8"),
]


@pytest.mark.parametrize(("headers", "message"), BAD_HEADERS)
def test_bad_headers_are_clear_errors(headers: list, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_headers(headers)


def test_order_line_is_a_value_object() -> None:
    assert OrderLine(sku="a", quantity=1) == OrderLine(sku="a", quantity=1)
    with pytest.raises(Exception, match="frozen"):
        OrderLine(sku="a", quantity=1).quantity = 2  # type: ignore[misc]


def test_event_ids_are_unique_uuid4_and_forked_children_do_not_repeat_them() -> None:
    import os
    import uuid

    from choreograph.contracts.envelope import _ids

    ids = [_ids() for _ in range(20_000)]
    assert all(uuid.UUID(e).version == 4 and uuid.UUID(e).variant == uuid.RFC_4122 for e, _ in ids)
    assert len({e for e, _ in ids}) == len({s for _, s in ids}) == 20_000
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, _ids()[0].encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 64).decode() != _ids()[0]


def test_reading_some_fields_decodes_those_alone() -> None:
    from choreograph import Service
    from choreograph.contracts.serde import MislabelledRecord
    from choreograph.testing.testkit import TestKit

    serde = TestKit(Service("reader", ["orders.events"])).serde
    order = OrderPlaced(
        order_id="o-1",
        customer_id="c",
        customer_email="c@example.com",
        total=Decimal("12.50"),
        lines=[OrderLine(sku="a", quantity=2)],
        placed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = serde.serialize(order, "orders.events")
    assert serde.read_fields(data, ("total",)) == {"total": Decimal("12.50")}
    assert serde.read_fields(data, ("lines", "nope")) == {"lines": [{"sku": "a", "quantity": 2}]}
    assert serde.read_fields(data, ("nope",)) == {}
    with pytest.raises(MislabelledRecord):
        serde.read_fields(data, ("total",), claimed="com.acme.orders.OrderCancelled")
    # A kept field that names a type defined in a field left out: read whole, then picked.
    schema = {
        "type": "record",
        "name": "Pair",
        "namespace": "t",
        "fields": [
            {"name": "first", "type": {"type": "record", "name": "Point", "fields": [
                {"name": "x", "type": "int"}]}},
            {"name": "second", "type": "Point"},
        ],
    }  # fmt: skip
    pair_model = bind_models([contract(schema)], "pair_test")["t.Pair"]
    serde.add_model(pair_model)
    pair = serde.serialize(pair_model(first={"x": 1}, second={"x": 2}), "t.pairs")
    assert serde.read_fields(pair, ("second",)) == {"second": {"x": 2}}


def test_an_emitted_envelope_and_its_headers_are_what_new_and_to_headers_give() -> None:
    from datetime import UTC, datetime

    from choreograph.contracts.envelope import Envelope, handling

    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    parents = [
        Envelope.new("t.In", "src", "k-1", now=now),
        Envelope.from_attributes(
            {
                "ce_specversion": "1.0",
                "ce_id": "i",
                "ce_source": "/s",
                "ce_type": "t.In",
                "tracestate": "vendor=1",
                "traceparent": "junk",
            },
            "k-2",
        ),
    ]
    for parent in parents:
        envelope, headers = Envelope.emitted("t.Out", "svc", "o-1", parent, now)
        assert headers == envelope.to_headers()
        reference = Envelope.new("t.Out", "svc", "o-1", parent=parent, now=now)
        assert {k: v for k, v in envelope.__dict__.items() if k not in ("id", "traceparent")} == {
            k: v for k, v in reference.__dict__.items() if k not in ("id", "traceparent")
        }
        assert envelope.traceparent is not None and reference.traceparent is not None
        if parent.traceparent and parent.traceparent.startswith("00-"):
            assert envelope.traceparent.split("-")[1] == parent.traceparent.split("-")[1]
    with handling(parents[0]):  # no parent given: the event in hand
        envelope, headers = Envelope.emitted("t.Out", "svc", "o-1", None, now)
    assert envelope.causation_id == parents[0].id and headers == envelope.to_headers()
    alone, headers = Envelope.emitted("t.Out", "svc", "o-1", None, now)
    assert alone.correlation_id == alone.id and headers == alone.to_headers()
