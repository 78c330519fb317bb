"""group_by on the real broker: orders keyed by order id become points per customer through the
service's internal repartition topic, created co-partitioned, exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from choreograph import AvroSerde, Context, EventPublisher, Service, ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph.state.store import decode_value
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.integration.saga_tracker.helpers import wait_for
from tests.reliability.choreography import committed_records
from tests.unit.runtime.test_records_that_lie import ORDER
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration


def test_points_per_customer_exactly_once(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    orders, rewards = new_topic("orders.events", 3), new_topic("payments.events", 3)
    name = f"loyalty-{uuid.uuid4().hex[:6]}"
    service = Service(name, [orders], outputs=[rewards], stores=["points"])
    by_customer = service.group_by(OrderPlaced, key=lambda e: e.customer_id, topic=orders)

    @by_customer.handle
    def add_points(ctx: Context, event: OrderPlaced) -> None:
        points = ctx.store("points")
        before = points.get(ctx.key) or 0
        points.put(ctx.key, before + 1)
        if before + 1 == 10:  # one reward per customer, at the tenth order
            reward = PaymentAuthorized(order_id=event.order_id, payment_id="pts", amount=Decimal(0))
            ctx.emit(reward, topic=rewards)

    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )
    customers = [f"c-{i}" for i in range(3)]
    for n in range(30):  # ten orders per customer, spread over every partition by order id
        order_id = f"o-{name}-{n}"
        placed = ORDER.model_copy(update={"order_id": order_id, "customer_id": customers[n % 3]})
        publisher.publish(placed, order_id, topic=orders)
    publisher.flush()

    config = ServiceConfig(
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        instance_id="l",
        state_dir=tmp_path,
        auto_register_schemas=True,
        commit_interval_ms=100,
    )
    with engine_thread(Engine(service, config)):
        changelog = f"{name}.points.changelog"

        def final_points() -> dict[str, int]:
            found: dict[str, int] = {}
            for record in committed_records(bootstrap_servers, changelog, idle_s=1.0):
                found[(record.key or b"").decode()] = decode_value(record.value or b"0")
            return found

        wait_for(lambda: final_points() == {c: 10 for c in customers}, "all points", 60)
    internal = f"{name}.orderplaced-by-key.repartition"
    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=10)
    assert len(metadata.topics[internal].partitions) == 3  # co-partitioned with the inputs
    # Each customer's points grew one by one in one partition of the changelog, and one reward
    # each was written, exactly once.
    partitions: dict[str, set[int]] = {}
    for record in committed_records(bootstrap_servers, f"{name}.points.changelog", 1.0):
        partitions.setdefault((record.key or b"").decode(), set()).add(record.partition)
    assert set(partitions) == set(customers)
    assert all(len(found) == 1 for found in partitions.values()), partitions
    rewarded = Counter(
        record.key for record in committed_records(bootstrap_servers, rewards, idle_s=1.0)
    )
    assert sorted(rewarded.values()) == [1, 1, 1]
