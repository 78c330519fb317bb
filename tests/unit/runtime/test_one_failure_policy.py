"""One failure policy for records and timers, in the engine and the TestKit; in the TestKit a
mistake in the service's code fails the test at once, where it happened."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from choreograph import Context, Service, TestKit
from choreograph.contracts.serde import RegistryUnavailable, SerdeError
from choreograph.runtime.config import RetryPolicy
from choreograph.runtime.errors import (
    Failure,
    FailurePolicy,
    RecordTooLarge,
    UndeclaredStore,
)
from choreograph_examples.contracts.orders import OrderPlaced
from tests.unit.runtime.test_records_that_lie import ORDER

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_policy_decides_pause_retry_and_dead_letter() -> None:
    policy = FailurePolicy(3, RetryPolicy(max_attempts=3).backoff, 10.0)
    assert policy.decide(RegistryUnavailable("http://r", "down"), 0, 0).action == "pause"
    assert policy.decide(RegistryUnavailable("http://r", "down"), 2, 0).attempts == 2  # uncounted
    retry = policy.decide(LookupError("not yet"), 0)
    assert (retry.action, retry.attempts, retry.kind) == ("retry", 1, Failure.BUSINESS)
    assert 0.1 <= retry.delay_s <= 0.2
    assert policy.decide(LookupError("not yet"), 2).reason == "retries-exhausted"
    assert policy.decide(SerdeError("garbage"), 0).reason == "contract"
    assert policy.decide(RecordTooLarge("big"), 0).reason == "too-large"
    assert policy.decide(TypeError("x"), 0).kind is Failure.PROGRAMMING
    assert policy.decide(UndeclaredStore("s"), 0).kind is Failure.PROGRAMMING


def broken(mistake: str) -> Service:
    service = Service("broken", ["orders.events"], stores=["seen"])

    if mistake == "store":

        @service.handle(OrderPlaced)
        def undeclared(ctx: Context, event: OrderPlaced) -> None:
            ctx.store("points").put(ctx.key, 1)

    elif mistake == "signature":

        @service.handle(OrderPlaced)
        def one_argument(ctx: Context) -> None:  # type: ignore[misc]
            pass

    else:

        @service.handle(OrderPlaced)
        def type_error(ctx: Context, event: OrderPlaced) -> None:
            ctx.store("seen").put(ctx.key, event.total + "1")  # type: ignore[operator]

    return service


@pytest.mark.parametrize(
    ("mistake", "raised", "where"),
    [
        ("store", UndeclaredStore, "undeclared"),
        ("signature", TypeError, "process"),
        ("type", TypeError, "type_error"),
    ],
)
def test_a_programming_error_fails_the_test_at_once_with_its_traceback(
    mistake: str, raised: type[Exception], where: str
) -> None:
    kit = TestKit(broken(mistake), start=T0)
    with pytest.raises(raised) as caught:
        kit.send(ORDER, key="o-1")
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert where in frames  # the user's own code (or the call of it) is in the traceback
    assert kit.now == T0 and kit.dead_letters == []
    if mistake == "store":
        assert "stores=['points']" in str(caught.value)


def test_production_s_answer_to_a_programming_error_is_still_available() -> None:
    kit = TestKit(
        broken("type"), start=T0, on_error="dead-letter", retry=RetryPolicy(max_attempts=3)
    )
    kit.send(ORDER, key="o-1")
    [letter] = kit.dead_letters
    assert letter.attempts == 3 and isinstance(letter.error, TypeError)


def test_failing_timers_are_retried_then_dead_lettered_as_in_production() -> None:
    service = Service("reminders", ["orders.events"], stores=["seen"])
    calls: list[int] = []

    @service.handle(OrderPlaced)
    def remember(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("remind", timedelta(minutes=5))

    @service.timer("remind")
    def remind(ctx: Context, payload: dict[str, Any]) -> None:
        calls.append(1)
        raise LookupError("reminder service not ready")

    kit = TestKit(service, start=T0, retry=RetryPolicy(max_attempts=4))
    kit.send(ORDER, key="o-1")
    kit.advance(timedelta(minutes=6))
    assert len(calls) == 4
    [letter] = kit.dead_letters
    assert letter.topic == "timer:remind" and letter.attempts == 4
    assert kit.next_deadline() is None  # it left the timer store, as in production


def test_the_testkit_keeps_the_letter_production_would_send() -> None:
    kit = TestKit(
        broken("type"), start=T0, on_error="dead-letter", retry=RetryPolicy(max_attempts=2)
    )
    kit.send(ORDER, key="o-1")
    [dead] = kit.dead_letters
    assert dead.reason == "retries-exhausted" and dead.letter is not None
    letter = dead.letter
    assert (letter.topic, letter.key, letter.value) == ("broken.dlq", b"o-1", dead.value)
    assert letter.header("dlq_origin_topic") == "orders.events"
    assert letter.header("dlq_reason") == "retries-exhausted"
    assert letter.header("dlq_attempts") == "2"
    assert letter.header("dlq_error_class") == "builtins.TypeError"
    assert letter.header("ce_type") == OrderPlaced.__avro_name__  # the record's own headers kept
    assert kit.transactions.produced == [letter]


def big_emitter() -> Service:
    service = Service("big", ["orders.events"], outputs=["orders.notes"])

    @service.handle(OrderPlaced)
    def note(ctx: Context, event: OrderPlaced) -> None:
        ctx.emit(
            event.model_copy(update={"customer_email": "x" * 5000 + "@example.com"}),
            topic="orders.notes",
        )

    return service


def test_an_output_over_the_producers_limit_is_dead_lettered_as_in_production() -> None:
    from choreograph.runtime.config import ServiceConfig

    small = ServiceConfig(producer={"message.max.bytes": 4000})
    kit = TestKit(big_emitter(), start=T0, config=small)
    kit.send(ORDER, key="o-1")
    assert kit.emitted() == []
    [dead] = kit.dead_letters
    assert dead.reason == "too-large" and isinstance(dead.error, RecordTooLarge)
    assert dead.attempts == 1  # a record too large is not retried
    assert dead.letter is not None and dead.letter.header("dlq_reason") == "too-large"
    # Without the limit it goes out: the same service, production's default limit.
    roomy = TestKit(big_emitter(), start=T0)
    roomy.send(ORDER, key="o-1")
    assert len(roomy.emitted()) == 1 and roomy.dead_letters == []


def test_a_letter_too_large_for_the_dlq_goes_headers_only_here_too() -> None:
    from choreograph.runtime.config import ServiceConfig

    kit = TestKit(
        broken("type"), start=T0, on_error="dead-letter", retry=RetryPolicy(max_attempts=1),
        config=ServiceConfig(producer={"message.max.bytes": 2500}),
    )  # fmt: skip
    big = ORDER.model_copy(update={"customer_email": "y" * 3000 + "@example.com"})
    kit.send(big, key="o-1")
    [dead] = kit.dead_letters
    assert dead.value is not None and len(dead.value) > 2500
    assert dead.letter is not None and dead.letter.value is None  # the copy did not fit
    assert dead.letter.header("dlq_origin_offset") == "0"  # it points at the original
