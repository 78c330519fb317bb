"""An inventory-like service whose orders input runs behind its payments input still handles
every payment after the order it pays for: records of a task go in timestamp order across its
inputs, whatever the fetch timing.

Orders are large (their partition takes many fetches) and published before their payments; some
orders fail once, so their partition pauses for a retry back-off while payments keep arriving.
A control run that does not order its inputs shows the set-up really puts payments first."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from choreograph import Context, EventPublisher, RetryPolicy, Service, ServiceConfig
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.engine import Engine
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
ORDERS = 24
PADDING = 300_000  # bytes of each order: its partition needs many fetches


def inventory_like(name: str, orders: str, payments: str, flaky: set[str]) -> Service:
    service = Service(name, [orders, payments], stores=["orders"])
    failed_once: set[str] = set()

    @service.handle(OrderPlaced, topic=orders)
    def remember(ctx: Context, event: OrderPlaced) -> None:
        if ctx.key in flaky and ctx.key not in failed_once:
            failed_once.add(ctx.key)
            raise ConnectionResetError("warehouse API hiccup")  # retried: the partition pauses
        ctx.store("orders").put(ctx.key, {"placed": True})

    @service.handle(PaymentAuthorized, topic=payments)
    def reserve(ctx: Context, event: PaymentAuthorized) -> None:
        order = ctx.store("orders").get(ctx.key)
        if order is None:
            raise LookupError(f"payment for unknown order {ctx.key}")
        ctx.store("orders").put(ctx.key, {**order, "reserved": True})

    return service


def run(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
    input_idle_ms: int,
    attempts: int = 3,
    flaky: frozenset[str] = frozenset({"o-3", "o-11"}),
) -> tuple[Engine, list[str]]:
    orders, payments = new_topic("orders.events"), new_topic("payments.events")
    keys = [f"o-{i}" for i in range(ORDERS)]
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )
    for key in keys:
        big = OrderPlaced(
            **{**order_placed(key, "20").model_dump(), "customer_email": "e" * PADDING}
        )
        placed = publisher.publish(big, key, topic=orders)
        time.sleep(0.002)  # the payment is stamped after its order
        paid = PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal("20"))
        publisher.publish(paid, key, topic=payments, parent=placed)
    publisher.flush()
    name = f"inv-{uuid.uuid4().hex[:8]}"
    config = ServiceConfig(
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        state_dir=tmp_path / name,
        input_idle_ms=input_idle_ms,
        retry=RetryPolicy(max_attempts=attempts, initial_backoff_s=0.5),
        consumer={"max.partition.fetch.bytes": 400_000, "fetch.max.bytes": 1_000_000},
    )
    engine = Engine(inventory_like(name, orders, payments, set(flaky)), config)
    with engine_thread(engine):

        def settled() -> bool:
            handled = sum(
                v
                for k, v in counts(engine).items()
                if k[1] in ("ok", "dlq") and k[0] == PaymentAuthorized.__avro_name__
            )
            return handled >= ORDERS

        # No commit from here: the engine is not thread-safe, and it commits as it stops.
        wait_for(settled, "every payment handled or dead-lettered", seconds=90)
    return engine, keys


def counts(engine: Engine) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for metric in engine.metrics.registry.collect():
        if metric.name == "choreograph_events":
            for s in metric.samples:
                if s.name.endswith("_total"):
                    found[(s.labels["type"], s.labels["outcome"])] = s.value
    return found


def sample(engine: Engine, name: str) -> float:
    value = engine.metrics.registry.get_sample_value(name, {"service": engine.service.name})
    return value or 0.0


def test_payments_wait_for_the_orders_input_that_is_behind(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    engine, _ = run(bootstrap_servers, registry_url, new_topic, tmp_path, input_idle_ms=0)
    found = counts(engine)
    assert found.get((PaymentAuthorized.__avro_name__, "ok")) == ORDERS, found
    assert not found.get((PaymentAuthorized.__avro_name__, "dlq")), found
    assert sample(engine, "choreograph_input_wait_seconds_total") > 0  # it did wait
    assert sample(engine, "choreograph_input_order_enforced_total") == 0
    assert sample(engine, "choreograph_input_order_late_total") == 0


def test_without_ordering_the_same_traffic_loses_payments(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The control: the set-up does put payments before their orders (none is retried here,
    so a payment handled before its order is dead-lettered at once)."""
    engine, _ = run(
        bootstrap_servers, registry_url, new_topic, tmp_path, -1, attempts=1, flaky=frozenset()
    )
    assert counts(engine).get((PaymentAuthorized.__avro_name__, "dlq"), 0) > 0
