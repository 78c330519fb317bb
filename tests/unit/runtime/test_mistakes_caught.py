"""Mistakes a new team makes fail its unit test (or start-up) with what to change, since each
would lose work silently in production too."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from choreograph import Context, InvalidEventBuilt, Service, TestKit, TopologyError
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


def test_a_timer_no_handler_serves_is_refused_when_scheduled() -> None:
    payments = service()

    @payments.handle(OrderPlaced)
    def remind(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("remnd", timedelta(hours=1))  # a typo: nothing would ever run

    @payments.timer("remind")
    def reminded(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    kit = TestKit(payments)
    with pytest.raises(TopologyError, match=r"timer 'remnd'.*@service.timer\('remnd'\).*remind"):
        kit.send(order(), "o-1")
    assert kit.next_deadline() is None  # nothing was scheduled


def test_a_pattern_timer_serves_the_names_it_covers() -> None:
    payments = service()

    @payments.handle(OrderPlaced)
    def remind(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("remind-first", timedelta(hours=1))

    fired: list[str] = []

    @payments.timer("remind-*")
    def reminded(ctx: Context, payload: dict[str, Any]) -> None:
        fired.append(ctx.key)

    kit = TestKit(payments)
    kit.send(order(), "o-1")
    kit.advance(timedelta(hours=2))
    assert fired == ["o-1"]


def invalid_payment_service() -> Service:
    payments = service()

    @payments.handle(OrderPlaced)
    def authorize(ctx: Context, event: OrderPlaced) -> None:
        # amount is a decimal of scale 2: three places break the contract
        ctx.emit(
            PaymentAuthorized(order_id=event.order_id, payment_id="p", amount=Decimal("1.234"))
        )

    return payments


def test_an_invalid_event_built_in_a_handler_is_raised() -> None:
    kit = TestKit(invalid_payment_service())
    built = r"(?s)handling com\.acme\.orders\.OrderPlaced.*invalid com\.acme\.payments\.Payment"
    with pytest.raises(InvalidEventBuilt, match=built + r"Authorized.*amount"):
        kit.send(order(), "o-1")
    assert kit.outputs == [] and kit.dead_letters == []


def test_an_invalid_event_built_in_a_handler_is_retried_then_dead_lettered_in_production() -> None:
    kit = TestKit(invalid_payment_service(), on_error="dead-letter")
    kit.send(order(), "o-1")
    assert len(kit.dead_letters) == 1
    assert "built an invalid com.acme.payments.PaymentAuthorized" in str(kit.dead_letters[0].error)
    assert kit.attempts[-1] > 1  # a programming error: retried like one, not dead-lettered at once


def test_an_invalid_event_built_in_a_timer_is_raised() -> None:
    payments = service()

    @payments.handle(OrderPlaced)
    def later(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("pay", timedelta(minutes=1))

    @payments.timer("pay")
    def pay(ctx: Context, payload: dict[str, Any]) -> None:
        ctx.emit(PaymentAuthorized(order_id="", payment_id="p", amount=Decimal("-1e20")))

    kit = TestKit(payments)
    kit.send(order(), "o-1")
    with pytest.raises(InvalidEventBuilt, match=r"firing timer 'pay'"):
        kit.advance(timedelta(minutes=2))
