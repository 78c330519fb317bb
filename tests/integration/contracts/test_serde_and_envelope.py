"""Serde and envelope against the real broker and registry."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from choreograph.contracts.catalog import Policy, parse_contract
from choreograph.contracts.codegen import bind_models
from choreograph.contracts.envelope import Envelope, handling, trace_id
from choreograph.contracts.event import ContractViolation
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde, UnknownSubject
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from tests.kafka_helpers import committed_consumer

REPO = Path(__file__).resolve().parents[3]
ORDER = dict(
    order_id="o-1",
    customer_id="c-1",
    customer_email="ada@example.com",
    lines=[OrderLine(sku="SKU-1", quantity=2)],
    total=Decimal("42.50"),
    placed_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
)


def read_back(bootstrap: str, topic: str, n: int) -> list:
    consumer = committed_consumer(bootstrap, topic)
    out = []
    deadline = datetime.now(UTC).timestamp() + 20
    while len(out) < n and datetime.now(UTC).timestamp() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            out.append(msg)
    consumer.close()
    return out


@pytest.mark.integration
def test_published_event_round_trips_with_envelope_and_causation(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("orders.events")
    serde = AvroSerde(registry_url, models=[OrderPlaced], auto_register=True)
    publisher = EventPublisher({"bootstrap.servers": bootstrap_servers}, serde, "orders-service")

    first = publisher.publish(OrderPlaced(**ORDER), "o-1", topic=topic)
    with handling(first):  # as a handler of `first` would
        second = publisher.publish(OrderPlaced(**{**ORDER, "order_id": "o-2"}), "o-2", topic=topic)
    publisher.flush()

    one, two = read_back(bootstrap_servers, topic, 2)
    env1, env2 = Envelope.from_headers(one.headers()), Envelope.from_headers(two.headers())
    assert env1 == first and env2.id == second.id
    assert env1.correlation_id == env1.id and env1.causation_id is None
    assert env2.correlation_id == env1.correlation_id
    assert env2.causation_id == env1.id
    assert trace_id(env2.traceparent) == trace_id(env1.traceparent)
    assert env2.type == "com.acme.orders.OrderPlaced" and env2.subject == "o-2"

    reader = AvroSerde(registry_url, models=[OrderPlaced])  # cold caches: fetches by id
    decoded = reader.deserialize(one.value())
    assert decoded.event == OrderPlaced(**ORDER)
    assert decoded.writer_name == "com.acme.orders.OrderPlaced"


@pytest.mark.integration
def test_new_reader_decodes_old_writer_version_with_defaults(
    registry_url: str, new_topic: Callable[..., str]
) -> None:
    """v1 of a contract writes; the v2 model (one field added with a default) reads."""
    topic = new_topic("orders.events")
    policy = Policy()
    v2_contract = parse_contract(
        (REPO / "schemas/avro/orders/OrderPlaced.avsc").read_text(), "v2", "orders", policy
    )
    v1_raw = copy.deepcopy(v2_contract.raw)
    v1_raw["fields"] = [f for f in v1_raw["fields"] if f["name"] != "currency"]
    import json

    v1_contract = parse_contract(json.dumps(v1_raw), "v1", "orders", policy)
    V1 = bind_models([v1_contract], "v1_models")[v1_contract.fullname]
    writer = AvroSerde(registry_url, auto_register=True)
    v1_fields = {k: v for k, v in ORDER.items() if k != "lines"} | {
        "lines": [{"sku": "S", "quantity": 1}]
    }
    data = writer.serialize(V1(**v1_fields), topic)

    decoded = AvroSerde(registry_url, models=[OrderPlaced]).deserialize(data)
    assert isinstance(decoded.event, OrderPlaced)
    assert decoded.event.currency == "EUR"  # the v2 default, absent from v1 data
    assert decoded.event.lines == [OrderLine(sku="S", quantity=1)]


def test_no_invalid_payload_can_be_built_so_none_can_be_published() -> None:
    """Construction validates, models are frozen, and pydantic's unchecked paths validate too."""
    with pytest.raises(ContractViolation) as err:
        OrderPlaced.model_construct(**{**ORDER, "lines": [{"sku": "S", "quantity": 2**40}]})
    assert err.value.problems[0][:2] == ("lines[0].quantity", "less_than_equal")
    good = OrderPlaced(**ORDER)
    with pytest.raises(ContractViolation, match="total"):
        good.model_copy(update={"total": Decimal("0.001")})
    with pytest.raises(Exception, match="frozen"):
        good.order_id = "changed"  # type: ignore[misc]


@pytest.mark.integration
def test_unregistered_schema_is_a_clear_error_without_auto_registration(
    registry_url: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("orders.events")
    with pytest.raises(UnknownSubject, match=f"{topic}-com.acme.orders.OrderPlaced"):
        AvroSerde(registry_url).serialize(OrderPlaced(**ORDER), topic)
