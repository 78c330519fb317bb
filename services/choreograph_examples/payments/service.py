"""The payments team's processor: authorises each placed order's payment and carries out refunds
the saga tracker asks for (`RefundPayment` on `payments.commands`), confirming each with
`PaymentRefunded`.

A payment that timed out before it reported is settled here, not guessed by the tracker: the
tracker sends `VoidPayment`, and the answer comes from this service's own state. Not charged yet:
voided for good (`PaymentVoided`; the order, when it comes, is declined). Already charged or
declined: `PaymentVoidRefused`, and the order goes on, late.

A refund is safe whatever came before it: the saga tracker sends one for a payment that timed
out, which may or may not have happened. Refunding an order that was never charged records the
refund, so that an order arriving after it is declined rather than charged.

The payment provider is simulated so that the reference choreography shows every path: cards are
declined above the limit of policy `payments.card-limit` (policies/payments/card-limit.yaml, so
every decline has a decision record naming the policy's version and the total it read), and the
provider never answers for customer `STALLED_CUSTOMER` (the tracker's payment deadline catches
it)."""

from __future__ import annotations

import hashlib
import os
from decimal import Decimal
from pathlib import Path

from choreograph import Context, Service
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import (
    PaymentAuthorized,
    PaymentFailed,
    PaymentRefunded,
    PaymentVoided,
    PaymentVoidRefused,
    RefundPayment,
    VoidPayment,
)

INPUTS = ["orders.events", "payments.commands"]
DECLINE_ABOVE = Decimal("1000")  # the limit in policies/payments/card-limit.yaml
# The repository's policies folder; where the service is installed, CHOREOGRAPH_POLICIES says
# where they are (the image keeps them at /app/policies).
POLICIES = Path(
    os.environ.get("CHOREOGRAPH_POLICIES") or Path(__file__).resolve().parents[3] / "policies"
)
STALLED_CUSTOMER = "c-stalled"


def build(name: str = "payments") -> Service:
    service = Service(
        name, INPUTS, outputs=["payments.events"], stores=["payments"], policies=POLICIES
    )

    payment = service.settles(
        "payment",
        VoidPayment,
        voided=lambda ctx, command: PaymentVoided(order_id=ctx.key, reason=command.reason),
        refused=lambda ctx, command, done: PaymentVoidRefused(
            order_id=ctx.key, payment_id=done.get("payment_id")
        ),
    )

    @service.handle(OrderPlaced, policies=["payments.card-limit"])
    def authorise(ctx: Context, event: OrderPlaced) -> None:
        if (ctx.store("payments").get(ctx.key) or {}).get("refunded"):
            # The refund overtook the order (the tracker gave up waiting): never charge it now.
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="refunded before it was charged"))
            return
        if payment.voided(ctx):  # the tracker asked first and was told it never happened
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="voided before it was charged"))
            return
        if event.customer_id == STALLED_CUSTOMER:
            return  # the provider never answers
        if not ctx.policy("payments.card-limit", event):
            payment.done(ctx)
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="card declined: over the limit"))
            return
        payment_id = "pay-" + hashlib.sha256(ctx.key.encode()).hexdigest()[:12]
        ctx.store("payments").put(ctx.key, {"payment_id": payment_id, "amount": str(event.total)})
        payment.done(ctx, payment_id=payment_id)
        ctx.emit(PaymentAuthorized(order_id=ctx.key, payment_id=payment_id, amount=event.total))

    @service.handle(RefundPayment)
    def refund(ctx: Context, command: RefundPayment) -> None:
        payments = ctx.store("payments")
        payment = payments.get(ctx.key)
        if payment is None:
            # Nothing charged yet: remember the refund, so the order is not charged later.
            payments.put(ctx.key, {"payment_id": None, "refunded": True})
        elif not payment.get("refunded"):
            payments.put(ctx.key, {**payment, "refunded": True})  # money goes back once
        # Confirmed every time, so a repeated command (an operator's retry) completes too.
        ctx.emit(PaymentRefunded(order_id=ctx.key, reason=command.reason))

    return service
