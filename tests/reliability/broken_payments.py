"""A payments release with a mistake in it, for the incident -> replay -> fix loop.

The release adds a bulk fee for books, from a table with no entry for three copies: an order of
three books raises KeyError, is retried and dead-lettered, its payment deadline passes and the
saga tracker refunds it. `build_fixed` is the fix: the fee has a rule for any quantity.

Run as `python -m tests.reliability.broken_payments` (settings from CHOREOGRAPH_* variables)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal

from choreograph import Context, Service, ServiceConfig
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import (
    PaymentAuthorized,
    PaymentFailed,
    PaymentRefunded,
    RefundPayment,
)
from choreograph_examples.payments.service import INPUTS, POLICIES

BULK_FEE = {1: Decimal("0"), 2: Decimal("0.50")}  # the mistake: no entry for 3


def broken_fee(quantity: int) -> Decimal:
    return BULK_FEE[quantity]


def fixed_fee(quantity: int) -> Decimal:
    return BULK_FEE.get(quantity, Decimal("0.50"))


def orders_it_breaks(order: OrderPlaced) -> bool:
    """What the mistake does, for tests to know which orders to expect in trouble."""
    return any(line.sku.startswith("BOOK") and line.quantity == 3 for line in order.lines)


def build(name: str = "payments", bulk_fee: Callable[[int], Decimal] = broken_fee) -> Service:
    service = Service(
        name, INPUTS, outputs=["payments.events"], stores=["payments"], policies=POLICIES
    )

    @service.handle(OrderPlaced, policies=["payments.card-limit"])
    def authorise(ctx: Context, event: OrderPlaced) -> None:
        if (ctx.store("payments").get(ctx.key) or {}).get("refunded"):
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="refunded before it was charged"))
            return
        if not ctx.policy("payments.card-limit", event):
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="card declined: over the limit"))
            return
        fees = sum(
            (bulk_fee(line.quantity) for line in event.lines if line.sku.startswith("BOOK")),
            Decimal("0"),
        )
        amount = event.total + fees
        payment_id = "pay-" + hashlib.sha256(ctx.key.encode()).hexdigest()[:12]
        ctx.store("payments").put(ctx.key, {"payment_id": payment_id, "amount": str(amount)})
        ctx.emit(PaymentAuthorized(order_id=ctx.key, payment_id=payment_id, amount=amount))

    @service.handle(RefundPayment)
    def refund(ctx: Context, command: RefundPayment) -> None:
        payments = ctx.store("payments")
        payment = payments.get(ctx.key)
        if payment is None:
            payments.put(ctx.key, {"payment_id": None, "refunded": True})
        elif not payment.get("refunded"):
            payments.put(ctx.key, {**payment, "refunded": True})
        ctx.emit(PaymentRefunded(order_id=ctx.key, reason=command.reason))

    return service


def build_fixed(name: str = "payments") -> Service:
    return build(name, fixed_fee)


if __name__ == "__main__":
    build().run(ServiceConfig.from_env())
