"""The inventory team's processor: remembers each order's lines, reserves them once the payment
is authorised (or when the saga tracker asks again, `ReserveStock`, for an operator's redrive),
and releases them when the saga tracker asks (`ReleaseStock`). SKUs starting with `OOS-` are
out of stock."""

from __future__ import annotations

from choreograph import Context, Service
from choreograph_examples.contracts.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized

INPUTS = ["orders.events", "payments.events", "inventory.commands"]
WAREHOUSE = "dc-north"


def build(name: str = "inventory") -> Service:
    service = Service(name, INPUTS, outputs=["inventory.events"], stores=["orders"])

    @service.handle(OrderPlaced)
    def remember(ctx: Context, event: OrderPlaced) -> None:
        ctx.store("orders").put(ctx.key, {"skus": [line.sku for line in event.lines]})

    @service.handle(PaymentAuthorized)
    def paid(ctx: Context, event: PaymentAuthorized) -> None:
        reserve(ctx)

    @service.handle(ReserveStock)
    def asked_again(ctx: Context, command: ReserveStock) -> None:
        reserve(ctx)  # reserving twice holds the stock once, and confirms again

    def reserve(ctx: Context) -> None:
        order = ctx.store("orders").get(ctx.key)
        if order is None:
            raise LookupError(f"payment for unknown order {ctx.key}")  # retried, then DLQ
        missing = [sku for sku in order["skus"] if sku.startswith("OOS-")]
        if missing:
            ctx.emit(StockReservationFailed(order_id=ctx.key, sku=missing[0]))
            return
        ctx.store("orders").put(ctx.key, {**order, "reserved": True})
        ctx.emit(StockReserved(order_id=ctx.key, warehouse=WAREHOUSE))

    @service.handle(ReleaseStock)
    def release(ctx: Context, command: ReleaseStock) -> None:
        order = ctx.store("orders").get(ctx.key) or {}
        if order.get("reserved"):
            ctx.store("orders").put(ctx.key, {**order, "reserved": False})
        ctx.emit(StockReleased(order_id=ctx.key))  # released, or never held

    return service
