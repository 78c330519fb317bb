"""A service with several inputs keeps partition N of every input on one instance.

A task is a partition number with its stores: if one instance owned orders[0] and another
payments[0], an order's events would meet two copies of its state. Two instances share the
group here; each must own the same partition numbers of both inputs, and every key's events,
whichever input they came from, must be handled by one instance only."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from choreograph import Context, EventPublisher, Service, ServiceConfig
from choreograph.contracts.serde import AvroSerde
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
PARTITIONS = 4


def assignment(admin: AdminClient, group: str) -> dict[str, dict[str, set[int]]]:
    """Member -> topic -> partitions."""
    described = admin.describe_consumer_groups([group])[group].result(10)
    found: dict[str, dict[str, set[int]]] = {}
    for member in described.members:
        topics: dict[str, set[int]] = defaultdict(set)
        for tp in member.assignment.topic_partitions:
            topics[tp.topic].add(tp.partition)
        found[member.group_instance_id or member.member_id] = dict(topics)
    return found


def test_two_instances_own_whole_tasks_and_a_key_meets_one_instance(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    admin: AdminClient,
    tmp_path: Path,
) -> None:
    orders, payments = (
        new_topic("orders.events", PARTITIONS),
        new_topic("payments.events", PARTITIONS),
    )
    name = f"copart-{uuid.uuid4().hex[:8]}"
    handled: dict[str, set[str]] = defaultdict(set)  # key -> instances that handled it
    lock = threading.Lock()

    def build() -> Service:
        service = Service(name, [orders, payments], stores=["seen"])

        def note(ctx: Context, key: str) -> None:
            store = ctx.store("seen")
            store.put(key, (store.get(key) or 0) + 1)
            with lock:
                handled[key].add(ctx.instance_id.split("/")[0])

        @service.handle(OrderPlaced, topic=orders)
        def placed(ctx: Context, event: OrderPlaced) -> None:
            note(ctx, event.order_id)

        @service.handle(PaymentAuthorized, topic=payments)
        def paid(ctx: Context, event: PaymentAuthorized) -> None:
            note(ctx, event.order_id)

        return service

    def config(instance: str) -> ServiceConfig:
        return ServiceConfig(
            bootstrap_servers=bootstrap_servers,
            registry_url=registry_url,
            instance_id=instance,
            state_dir=tmp_path / instance,
        )

    from choreograph.runtime.engine import Engine

    with (
        engine_thread(Engine(build(), config("a"))),
        engine_thread(Engine(build(), config("b"))),
    ):
        wait_for(
            lambda: len(owned := assignment(admin, name)) == 2 and all(owned.values()),
            "both instances to own partitions",
            seconds=60,
        )
        owned = assignment(admin, name)
        for member, topics in owned.items():
            assert topics.get(orders) == topics.get(payments), f"{member} splits tasks: {owned}"
        publisher = EventPublisher(
            {"bootstrap.servers": bootstrap_servers},
            AvroSerde(registry_url, auto_register=True),
            "shop",
        )
        keys = [f"k{i}" for i in range(40)]
        for key in keys:
            first = publisher.publish(
                order_placed(key, "1.00"),
                key,
                topic=orders,
            )
            paid = PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal("1.00"))
            publisher.publish(paid, key, topic=payments, parent=first)
        publisher.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(handled) < len(keys):
            time.sleep(0.2)
        time.sleep(1)
    assert sorted(handled) == sorted(keys)
    split = {k: who for k, who in handled.items() if len(who) > 1}
    assert not split, f"keys whose events met two instances: {split}"
