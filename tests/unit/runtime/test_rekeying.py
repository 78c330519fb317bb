"""Keyed state is safe: state under a key another partition owns fails loudly, and re-keying
(`group_by`) is the way to keep state per another key, as production runs it."""

from __future__ import annotations

from typing import Any

import pytest

from choreograph import Context, Service, TestKit
from choreograph.runtime.errors import ForeignKey
from choreograph.runtime.partitioning import partition_for
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.unit.runtime.test_records_that_lie import ORDER

PARTITIONS = 4
# Orders of one customer whose keys land in other partitions than the customer's.
CUSTOMER = "c-42"
ORDERS = [f"o-{i}" for i in range(40) if partition_for(f"o-{i}", 4) != partition_for(CUSTOMER, 4)]


def order(order_id: str, total: str = "10.00") -> OrderPlaced:
    return ORDER.model_copy(update={"order_id": order_id, "customer_id": CUSTOMER, "total": total})


def test_state_under_a_key_another_partition_owns_fails_in_the_test() -> None:
    service = Service("loyalty", ["orders.events"], stores=["points"])

    @service.handle(OrderPlaced)
    def add_points(ctx: Context, event: OrderPlaced) -> None:
        points = ctx.store("points")  # keyed by order id here: customer state does not belong
        points.put(event.customer_id, (points.get(event.customer_id) or 0) + 1)

    kit = TestKit(service)
    with pytest.raises(ForeignKey, match=r"group_by\(EventType, key=lambda e: \.\.\.\)"):
        kit.send(order(ORDERS[0]), key=ORDERS[0])


def loyalty() -> Service:
    service = Service("loyalty", ["orders.events"], outputs=["payments.events"], stores=["points"])
    by_customer = service.group_by(OrderPlaced, key=lambda e: e.customer_id)

    @by_customer.handle
    def add_points(ctx: Context, event: OrderPlaced) -> None:
        points = ctx.store("points")
        total = (points.get(ctx.key) or 0) + int(event.total)
        points.put(ctx.key, total)
        if total >= 30:  # an event emitted from re-keyed state follows the original order
            ctx.emit(
                PaymentAuthorized(order_id=event.order_id, payment_id="pts", amount=event.total)
            )

    return service


def test_group_by_keeps_state_per_new_key_through_its_internal_topic() -> None:
    kit = TestKit(loyalty(), partitions=PARTITIONS)
    sent = [kit.send(order(o), key=o, correlation_id=f"p-{o}") for o in ORDERS[:3]]
    assert kit.store("points").get(CUSTOMER) == 30  # all in the customer's partition
    owner = kit.task_for(CUSTOMER)
    assert owner.user_store("points").get(CUSTOMER) == 30
    [reward] = kit.emitted(PaymentAuthorized)
    assert reward.envelope.correlation_id == sent[2].correlation_id  # envelope preserved
    assert reward.envelope.causation_id == sent[2].id
    internal: Any = [e for e in kit.outputs if e.topic.endswith(".repartition")]
    assert internal == []  # internal records are the service's own business


def test_group_by_names_and_keys_are_checked() -> None:
    service = loyalty()
    with pytest.raises(ValueError, match="twice"):
        service.group_by(OrderPlaced, key=lambda e: e.customer_id)
    assert "loyalty.orderplaced-by-key.repartition" in service.inputs
    blank = Service("blank", ["orders.events"])
    blank.group_by(OrderPlaced, key=lambda e: "").handle(lambda ctx, e: None)
    with pytest.raises(ValueError, match="non-empty text"):
        TestKit(blank).send(order("o-1"), key="o-1")
