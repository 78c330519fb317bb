"""The orders team's processor: each order is a state machine, open from the moment it is placed
until the parcel is dispatched (completed) or payment or stock fails (cancelled). An order still
open after `open_for` is cancelled by its timeout action, so no order waits forever. Orders are
placed by the shop (an EventPublisher at the edge); this service only reacts.

A goodwill refund that customer service asks for waits for an approver (four eyes: not the agent
who asked), through the saga tracker's approvals API; approved, it is announced as
GoodwillRefundApproved, denied, it ends there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from choreograph import Context, Service, StateMachine
from choreograph_examples.contracts.inventory import StockReservationFailed
from choreograph_examples.contracts.orders import (
    CancelReason,
    GoodwillRefundApproved,
    GoodwillRefundRequested,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
)
from choreograph_examples.contracts.payments import PaymentFailed
from choreograph_examples.contracts.shipping import ShipmentDispatched

INPUTS = ["orders.events", "payments.events", "inventory.events", "shipping.events"]
OPEN_FOR = timedelta(hours=4)  # twice the order-fulfilment deadline


def order_machine(open_for: timedelta = OPEN_FOR) -> StateMachine:
    order = StateMachine("order")
    order.state("open", timeout=open_for, on_timeout="cancelled")
    order.terminal("completed")
    order.terminal("cancelled", outcome="failure")

    @order.on(OrderPlaced, source="new", target="open")
    def placed(ctx: Context, event: OrderPlaced, data: dict[str, Any]) -> dict[str, Any]:
        return {"total": str(event.total)}

    # Outcomes can overtake the order itself (they come from other topics): "new" is a source.
    @order.on(ShipmentDispatched, source=["new", "open"], target="completed")
    def dispatched(ctx: Context, event: ShipmentDispatched, data: dict[str, Any]) -> None:
        ctx.emit(OrderCompleted(order_id=ctx.key, completed_at=datetime.now(UTC)))

    @order.on(PaymentFailed, source=["new", "open"], target="cancelled")
    def declined(ctx: Context, event: PaymentFailed, data: dict[str, Any]) -> None:
        cancel(ctx, CancelReason.PAYMENT_FAILED, event.reason)

    @order.on(StockReservationFailed, source=["new", "open"], target="cancelled")
    def out_of_stock(ctx: Context, event: StockReservationFailed, data: dict[str, Any]) -> None:
        cancel(ctx, CancelReason.OUT_OF_STOCK, f"{event.sku} is out of stock")

    @order.on_timeout("open")
    def expired(ctx: Context, data: dict[str, Any]) -> None:
        cancel(ctx, CancelReason.TIMEOUT, f"still open after {open_for}")

    return order


def goodwill_machine() -> StateMachine:
    goodwill = StateMachine("goodwill")
    goodwill.state("review")
    goodwill.terminal("approved")
    goodwill.terminal("declined", outcome="failure")
    goodwill.approval(
        "review",
        granted="approved",
        denied="declined",
        requested_by="requested_by",
        summary=lambda data: f"goodwill refund of {data['amount']}: {data['reason']}",
    )

    @goodwill.on(GoodwillRefundRequested, source="new", target="review")
    def asked(ctx: Context, event: GoodwillRefundRequested, data: dict[str, Any]) -> dict[str, Any]:
        return {"amount": str(event.amount), "requested_by": event.requested_by,
                "reason": event.reason}  # fmt: skip

    @goodwill.on_enter("approved")
    def approved(ctx: Context, data: dict[str, Any]) -> None:
        ctx.emit(
            GoodwillRefundApproved(
                order_id=ctx.key, amount=Decimal(data["amount"]), requested_by=data["requested_by"]
            )
        )

    return goodwill


def cancel(ctx: Context, reason: CancelReason, detail: str) -> None:
    ctx.emit(OrderCancelled(order_id=ctx.key, reason=reason, detail=detail))


def build(name: str = "orders", open_for: timedelta = OPEN_FOR) -> Service:
    service = Service(name, INPUTS, outputs=["orders.events"])
    service.add_machine(order_machine(open_for))
    service.add_machine(goodwill_machine())
    return service
