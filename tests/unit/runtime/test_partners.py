"""A service paces its calls to a partner to a declared rate, the whole service together: each
partition task takes turns at its share of the rate. The TestKit records the waits; production
sleeps them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from choreograph import Context, Service
from choreograph.runtime.errors import TopologyError
from choreograph.runtime.partners import Pacer, Partner
from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced


def order(n: int) -> OrderPlaced:
    return OrderPlaced(order_id=f"o-{n}", customer_id="c", customer_email="c@example.com",
                       lines=[OrderLine(sku="S", quantity=1)], total=Decimal("1.00"),
                       placed_at=datetime(2026, 5, 1, tzinfo=UTC))  # fmt: skip


def charging(per_second: float) -> tuple[Service, list[float]]:
    service = Service("charging", ["orders.events"])
    service.partner("payment-provider", per_second=per_second)
    waits: list[float] = []

    @service.handle(OrderPlaced)
    def charge(ctx: Context, event: OrderPlaced) -> None:
        waits.append(ctx.pace("payment-provider"))  # then the call to the provider

    return service, waits


def test_calls_at_one_moment_take_turns_at_the_declared_rate() -> None:
    service, waits = charging(per_second=5)
    kit = TestKit(service, partitions=1)
    for n in range(10):
        kit.send(order(n), key="same-partition")
    assert waits == pytest.approx([0.2 * i for i in range(10)])
    assert kit.paced == pytest.approx([0.2 * i for i in range(1, 10)])  # recorded, not slept


def test_each_partition_task_has_its_share_of_the_rate() -> None:
    service, waits = charging(per_second=5)
    kit = TestKit(service, partitions=4)  # four tasks: 1.25 calls a second each
    for n in range(3):
        kit.send(order(n), key="one-key")  # one key, one task
    assert waits == pytest.approx([0.0, 0.8, 1.6])


def test_production_sleeps_for_its_turn() -> None:
    pacer = Pacer(Partner("p", 50), partitions=1)
    started = time.monotonic()
    for _ in range(5):
        pacer.turn()
    assert time.monotonic() - started >= 0.079


def test_an_undeclared_or_wrong_partner_is_a_mistake_in_the_service() -> None:
    service = Service("charging", ["orders.events"])

    @service.handle(OrderPlaced)
    def charge(ctx: Context, event: OrderPlaced) -> None:
        ctx.pace("psp")

    kit = TestKit(service, partitions=1, on_error="raise")
    with pytest.raises(TopologyError, match=r"add service.partner\('psp', per_second=\.\.\.\)"):
        kit.send(order(1), key="k")
    with pytest.raises(TopologyError, match="per_second > 0"):
        service.partner("psp", per_second=0)
