"""Mistakes a new team makes fail its unit test (or start-up) with what to change, since each
would lose work silently in production too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from choreograph import Context, Service, TestKit, TopologyError
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.unit.runtime.test_testkit_service import order


def service() -> Service:
    return Service("payments", ["orders.events"], outputs=["payments.events"])


def test_an_async_handler_is_refused_at_registration() -> None:
    payments = service()
    with pytest.raises(TopologyError, match=r"is `async def`.*make it a plain `def`"):

        @payments.handle(OrderPlaced)
        async def authorize(ctx: Context, event: OrderPlaced) -> None:
            return None

    with pytest.raises(TopologyError, match=r"timer 'expire'.*async def"):

        @payments.timer("expire")
        async def expire(ctx: Context, payload: dict[str, Any]) -> None:
            return None


def test_a_returned_event_is_named_with_the_call_to_make() -> None:
    payments = service()

    @payments.handle(OrderPlaced)
    def authorize(ctx: Context, event: OrderPlaced) -> PaymentAuthorized:
        return PaymentAuthorized(order_id=event.order_id, payment_id="p", amount=event.total)

    kit = TestKit(payments)
    with pytest.raises(TypeError, match=r"returned a PaymentAuthorized.*ctx\.emit\(event\)"):
        kit.send(order(), "o-1")


def test_a_timer_at_a_naive_datetime_is_refused() -> None:
    payments = service()

    @payments.handle(OrderPlaced)
    def remind(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("remind", datetime(2026, 3, 1, 13, 0))

    @payments.timer("remind")
    def reminded(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    kit = TestKit(payments)
    with pytest.raises(TypeError, match=r"without a time zone.*tzinfo=UTC"):
        kit.send(order(), "o-1")
