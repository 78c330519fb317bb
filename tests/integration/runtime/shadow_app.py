"""Two builds of a charging service for the shadow-run test: the live one charges a 2% fee, the
new one 3% on orders over 100. Topic names come from the environment."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal

from choreograph import Context, Service
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized


def _build(rate: callable[[Decimal], Decimal]) -> Service:  # type: ignore[valid-type]
    orders, charges = os.environ["SH_ORDERS"], os.environ["SH_CHARGES"]
    service = Service(os.environ["SH_SERVICE"], [orders], outputs=[charges])

    @service.handle(OrderPlaced, topic=orders)
    def charge(ctx: Context, event: OrderPlaced) -> None:
        fee = (event.total * rate(event.total)).quantize(Decimal("0.01"))
        ctx.emit(PaymentAuthorized(order_id=event.order_id, payment_id=uuid.uuid4().hex,
                                   amount=event.total + fee), topic=charges)  # fmt: skip

    return service


def live() -> Service:
    return _build(lambda total: Decimal("0.02"))


def new_fee_rule() -> Service:
    return _build(lambda total: Decimal("0.03") if total > 100 else Decimal("0.02"))
