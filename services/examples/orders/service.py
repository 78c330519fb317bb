"""The orders team's processor: it closes each order, completed when the parcel is dispatched and
cancelled when payment or stock fails. Orders are placed by the shop (an EventPublisher at the
edge); this service only reacts."""

from __future__ import annotations

from datetime import UTC, datetime

from choreograph import Context, Service
from examples.contracts.inventory import StockReservationFailed
from examples.contracts.orders import CancelReason, OrderCancelled, OrderCompleted, OrderPlaced
from examples.contracts.payments import PaymentFailed
from examples.contracts.shipping import ShipmentDispatched

INPUTS = ["orders.events", "payments.events", "inventory.events", "shipping.events"]


def build(name: str = "orders") -> Service:
    service = Service(name, INPUTS, stores=["orders"])

    @service.handle(OrderPlaced)
    def placed(ctx: Context, event: OrderPlaced) -> None:
        ctx.store("orders").put(ctx.key, {"status": "placed", "total": str(event.total)})

    def close(ctx: Context, status: str) -> bool:
        """Record the outcome once; a redelivered or late event changes nothing."""
        orders = ctx.store("orders")
        order = orders.get(ctx.key) or {}
        if order.get("status") in ("completed", "cancelled"):
            return False
        orders.put(ctx.key, {**order, "status": status})
        return True

    @service.handle(ShipmentDispatched)
    def dispatched(ctx: Context, event: ShipmentDispatched) -> None:
        if close(ctx, "completed"):
            ctx.emit(OrderCompleted(order_id=ctx.key, completed_at=datetime.now(UTC)))

    @service.handle(PaymentFailed)
    def declined(ctx: Context, event: PaymentFailed) -> None:
        if close(ctx, "cancelled"):
            reason = CancelReason.PAYMENT_FAILED
            ctx.emit(OrderCancelled(order_id=ctx.key, reason=reason, detail=event.reason))

    @service.handle(StockReservationFailed)
    def out_of_stock(ctx: Context, event: StockReservationFailed) -> None:
        if close(ctx, "cancelled"):
            detail = f"{event.sku} is out of stock"
            ctx.emit(
                OrderCancelled(order_id=ctx.key, reason=CancelReason.OUT_OF_STOCK, detail=detail)
            )

    return service
