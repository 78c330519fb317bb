"""The reference team services, each in the in-memory TestKit: what every injected case does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from choreograph import TestKit
from choreograph_examples.contracts.inventory import (
    ReleaseStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from choreograph_examples.contracts.orders import (
    CancelReason,
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
)
from choreograph_examples.contracts.payments import (
    PaymentAuthorized,
    PaymentFailed,
    PaymentRefunded,
    PaymentVoided,
    PaymentVoidRefused,
    RefundPayment,
    VoidPayment,
)
from choreograph_examples.contracts.shipping import ShipmentDispatched
from choreograph_examples.inventory.service import build as inventory
from choreograph_examples.orders.service import build as orders
from choreograph_examples.payments.service import STALLED_CUSTOMER
from choreograph_examples.payments.service import build as payments


def order(key: str, total: str = "20", sku: str = "MUG-1", customer: str = "c-1") -> OrderPlaced:
    return OrderPlaced(
        order_id=key,
        customer_id=customer,
        customer_email="e@x",
        lines=[OrderLine(sku=sku, quantity=1)],
        total=Decimal(total),
        placed_at=datetime(2026, 5, 1, tzinfo=UTC),
    )


def test_payments_authorises_declines_stalls_and_refunds() -> None:
    kit = TestKit(payments())
    placed = kit.send(order("o-1"), "o-1")
    kit.send(order("o-2", total="1500"), "o-2")
    kit.send(order("o-3", customer=STALLED_CUSTOMER), "o-3")
    [authorised] = kit.emitted(PaymentAuthorized)
    assert authorised.key == "o-1" and authorised.envelope.correlation_id == placed.correlation_id
    assert authorised.event.amount == Decimal("20")
    assert [e.key for e in kit.emitted(PaymentFailed)] == ["o-2"]
    assert not [e for e in kit.outputs if e.key == "o-3"]  # the provider never answered
    for _ in range(2):  # a repeated refund (an operator's retry) is confirmed again
        kit.send(RefundPayment(order_id="o-1", reason="reservation failed"), "o-1")
    assert [e.key for e in kit.emitted(PaymentRefunded)] == ["o-1", "o-1"]
    assert kit.store("payments").get("o-1")["refunded"] is True


def test_a_refund_that_overtakes_its_order_keeps_the_order_from_being_charged() -> None:
    kit = TestKit(payments())
    kit.send(RefundPayment(order_id="o-9", reason="step payment timed out"), "o-9")
    assert [e.key for e in kit.emitted(PaymentRefunded)] == ["o-9"]  # safe: nothing to refund
    kit.send(order("o-9"), "o-9")
    assert kit.emitted(PaymentAuthorized) == []
    [declined] = kit.emitted(PaymentFailed)
    assert declined.key == "o-9" and "refunded before" in declined.event.reason


def test_inventory_reserves_refuses_out_of_stock_and_releases() -> None:
    kit = TestKit(inventory())
    for key, sku in (("o-1", "MUG-1"), ("o-2", "OOS-LAMP")):
        kit.send(order(key, sku=sku), key)
        kit.send(PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal(1)), key)
    assert [e.event.warehouse for e in kit.emitted(StockReserved)] == ["dc-north"]
    assert [e.event.sku for e in kit.emitted(StockReservationFailed)] == ["OOS-LAMP"]
    kit.send(ReleaseStock(order_id="o-1", reason="shipping failed"), "o-1")
    assert [e.key for e in kit.emitted(StockReleased)] == ["o-1"]
    assert kit.store("orders").get("o-1")["reserved"] is False


def test_inventory_retries_a_payment_that_overtook_its_order() -> None:
    kit = TestKit(inventory())
    kit.send(PaymentAuthorized(order_id="o-9", payment_id="p", amount=Decimal(1)), "o-9")
    assert kit.attempts == [5] and len(kit.dead_letters) == 1  # retried, then dead-lettered
    assert isinstance(kit.dead_letters[0].error, LookupError)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (PaymentFailed(order_id="o-1", reason="declined"), CancelReason.PAYMENT_FAILED),
        (StockReservationFailed(order_id="o-1", sku="OOS-LAMP"), CancelReason.OUT_OF_STOCK),
    ],
)
def test_orders_cancels_on_failure_once(event: object, reason: CancelReason) -> None:
    kit = TestKit(orders())
    kit.send(order("o-1"), "o-1")
    kit.send(event, "o-1")  # type: ignore[arg-type]
    kit.send(event, "o-1")  # type: ignore[arg-type]
    [cancelled] = kit.events(OrderCancelled)
    assert cancelled.reason == reason


def test_orders_completes_when_the_parcel_leaves() -> None:
    kit = TestKit(orders())
    kit.send(order("o-1"), "o-1")
    parcel = ShipmentDispatched(order_id="o-1", tracking_code="T", delivery_address="x")
    kit.send(parcel, "o-1")
    kit.send(parcel, "o-1")
    assert [e.key for e in kit.emitted(OrderCompleted)] == ["o-1"]
    machine = kit.service.machines[0]
    inst = kit.state(machine, "o-1")
    assert inst is not None and (inst.state, inst.data) == ("completed", {"total": "20.00"})
    assert kit.outcomes[-1] == "ignored"  # the repeated parcel moved nothing


def test_an_order_still_open_after_its_time_is_cancelled_by_its_timeout_action() -> None:
    from datetime import timedelta

    kit = TestKit(orders(open_for=timedelta(hours=4)))
    kit.send(order("o-1"), "o-1")
    kit.advance(timedelta(hours=3, minutes=59))
    assert kit.events(OrderCancelled) == []
    kit.advance(timedelta(minutes=2))
    [cancelled] = kit.events(OrderCancelled)
    assert cancelled.reason == CancelReason.TIMEOUT
    inst = kit.state(kit.service.machines[0], "o-1")
    assert inst is not None and (inst.state, inst.timed_out_in) == ("cancelled", "open")
    parcel = ShipmentDispatched(order_id="o-1", tracking_code="T", delivery_address="x")
    kit.send(parcel, "o-1")  # too late: the order is closed
    assert kit.events(OrderCompleted) == []


def test_payments_settles_a_payment_in_doubt_from_its_own_state() -> None:
    """VoidPayment: not charged yet -> voided for good; charged (or declined) -> refused."""
    kit = TestKit(payments())
    kit.send(VoidPayment(order_id="o-1", reason="payment timed out"), "o-1")
    kit.send(order("o-1"), "o-1")  # the order comes after the void: never charged
    assert [e.key for e in kit.emitted(PaymentVoided)] == ["o-1"]
    assert not kit.emitted(PaymentAuthorized)
    [declined] = kit.events(PaymentFailed)
    assert declined.reason == "voided before it was charged"

    kit.send(order("o-2"), "o-2")
    kit.send(VoidPayment(order_id="o-2", reason="payment timed out"), "o-2")
    [refused] = kit.events(PaymentVoidRefused)
    [charged] = kit.events(PaymentAuthorized)
    assert refused.order_id == "o-2" and refused.payment_id == charged.payment_id

    kit.send(order("o-3", total="1500"), "o-3")  # declined: settled too, nothing to void
    kit.send(VoidPayment(order_id="o-3", reason="late"), "o-3")
    assert [e.order_id for e in kit.events(PaymentVoidRefused)] == ["o-2", "o-3"]

    kit.send(order("o-4", customer=STALLED_CUSTOMER), "o-4")  # the provider never answered
    kit.send(VoidPayment(order_id="o-4", reason="late"), "o-4")
    assert [e.key for e in kit.emitted(PaymentVoided)] == ["o-1", "o-4"]


def test_a_step_done_after_it_was_voided_fails_the_test() -> None:
    from choreograph import Context, Service
    from choreograph.runtime.errors import VoidedStep

    service = Service("careless", ["orders.events", "payments.commands"],
                      outputs=["payments.events"])  # fmt: skip
    payment = service.settles(
        "payment",
        VoidPayment,
        voided=lambda ctx, c: PaymentVoided(order_id=ctx.key, reason=c.reason),
        refused=lambda ctx, c, done: PaymentVoidRefused(order_id=ctx.key),
    )

    @service.handle(OrderPlaced)
    def charge(ctx: Context, event: OrderPlaced) -> None:
        payment.done(ctx, payment_id="p")  # forgot to ask payment.voided(ctx) first

    kit = TestKit(service)
    kit.send(VoidPayment(order_id="o-1", reason="late"), "o-1")
    with pytest.raises(VoidedStep, match=r"was voided; check payment\.voided"):
        kit.send(order("o-1"), "o-1")
