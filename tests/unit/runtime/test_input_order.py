"""The input order rule: a task handles the earliest fetched record across its inputs, waits
(bounded) for an input that may still hold an earlier one, and counts what it let go."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from choreograph import TestKit
from choreograph.runtime.input_order import UNORDERED, InputOrder
from choreograph_examples.contracts.payments import PaymentAuthorized
from choreograph_examples.inventory.service import build as inventory
from tests.unit.examples.test_team_services import order


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rule(idle_s: float = 0.0, max_wait_s: float = 10.0) -> tuple[InputOrder[str], Clock]:
    clock = Clock()
    return InputOrder(["a", "b"], idle_s, max_wait_s, clock), clock


def test_the_earliest_record_across_inputs_goes_first_whatever_came_first() -> None:
    order_, _ = rule()
    order_.add("b", 20, "b20")
    order_.add("a", 10, "a10")
    order_.add("b", 30, "b30")
    order_.add("a", 25, "a25")
    taken = []
    while (record := order_.next(lambda topic: True)) is not None:
        taken.append(record)
    assert taken == ["a10", "b20", "a25", "b30"]
    assert order_.stats.enforced == 0 and order_.stats.late == 0


def test_an_input_that_is_behind_is_waited_for_until_the_bound() -> None:
    order_, clock = rule(max_wait_s=10)
    order_.add("b", 20, "payment")
    assert order_.next(lambda topic: topic != "a") is None  # a has unfetched records
    clock.now = 9.9
    assert order_.next(lambda topic: topic != "a") is None
    order_.add("a", 10, "order")  # the slow fetch arrives: the earlier record goes first
    assert order_.next(lambda topic: True) == "order"
    assert order_.next(lambda topic: True) == "payment"
    assert order_.stats.enforced == 0
    assert order_.stats.waited_s == 9.9


def test_when_the_wait_runs_out_the_others_go_on_and_it_is_counted() -> None:
    order_, clock = rule(max_wait_s=10)
    order_.add("b", 20, "b20")
    assert order_.next(lambda topic: topic != "a") is None
    clock.now = 10.0
    assert order_.next(lambda topic: topic != "a") == "b20"
    order_.add("b", 21, "b21")  # still behind: not waited for again record by record
    assert order_.next(lambda topic: topic != "a") == "b21"
    assert order_.stats.enforced == 2
    order_.add("a", 5, "a5")  # arrives after later records of b were handled
    assert order_.next(lambda topic: True) == "a5"
    assert order_.stats.late == 1


def test_a_caught_up_input_is_not_waited_for_by_default() -> None:
    order_, _ = rule(idle_s=0)
    order_.add("b", 20, "b20")
    assert order_.next(lambda topic: True) == "b20"
    assert order_.stats.enforced == 0 and order_.stats.waited_s == 0


def test_idle_time_waits_for_a_caught_up_input_once_then_lets_records_go() -> None:
    order_, clock = rule(idle_s=0.5)
    order_.add("b", 20, "b20")
    assert order_.next(lambda topic: True) is None
    clock.now = 0.5
    assert order_.next(lambda topic: True) == "b20"
    order_.add("b", 21, "b21")
    assert order_.next(lambda topic: True) == "b21"  # the quiet input was given its time
    assert order_.stats.enforced == 0  # a caught-up input had nothing earlier to give


def test_a_quiet_input_that_falls_behind_is_waited_for_again() -> None:
    order_, clock = rule(idle_s=0, max_wait_s=10)
    order_.add("b", 20, "b20")
    assert order_.next(lambda topic: True) == "b20"
    clock.now = 100.0
    order_.add("b", 30, "b30")
    assert order_.next(lambda topic: topic != "a") is None  # a now has records to fetch
    clock.now = 105.0
    assert order_.next(lambda topic: topic != "a") is None


def test_unordered_never_waits() -> None:
    order_, _ = rule(idle_s=UNORDERED)
    order_.add("b", 20, "b20")
    assert order_.next(lambda topic: False) == "b20"


def test_dropped_records_are_forgotten() -> None:
    order_, _ = rule()
    order_.add("a", 1, "a1")
    order_.add("b", 2, "b2")
    order_.drop("a")
    assert len(order_) == 1
    assert order_.next(lambda topic: True) == "b2"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), max_size=12),
    st.lists(st.integers(0, 50), max_size=12),
    st.randoms(use_true_random=False),
)
def test_any_fetch_timing_gives_timestamp_order(a: list[int], b: list[int], rand: object) -> None:
    """Whatever the fetches' interleaving and sizes, an input is behind until all of its records
    are fetched: the handled order is the timestamp order (a stable merge)."""
    streams = {"a": sorted(a), "b": sorted(b)}
    order_, _ = rule(max_wait_s=1e9)
    fetched = {"a": 0, "b": 0}
    taken: list[tuple[int, str]] = []
    pending = [t for t in streams for _ in streams[t]]
    rand.shuffle(pending)  # type: ignore[attr-defined]
    for topic in pending:
        i = fetched[topic]
        order_.add(topic, streams[topic][i], f"{topic}{i}")
        fetched[topic] += 1
        while (record := order_.next(lambda t: fetched[t] == len(streams[t]))) is not None:
            taken.append((streams[record[0]][int(record[1:])], record))
    stamps = [stamp for stamp, _ in taken]
    assert stamps == sorted(stamps)
    assert len(taken) == len(a) + len(b)
    assert order_.stats.late == 0


def payment(key: str) -> PaymentAuthorized:
    return PaymentAuthorized(order_id=key, payment_id="pay-1", amount=Decimal("20"))


def test_testkit_waits_for_an_input_that_is_behind_as_production_does() -> None:
    """The inventory finding: a payment fetched before the order it pays for."""
    kit = TestKit(inventory())
    with kit.behind("orders.events"):
        kit.send(order("o-1"), "o-1")
        kit.advance(timedelta(seconds=1))
        kit.send(payment("o-1"), "o-1", topic="payments.events")
        assert not kit.outputs and not kit.dead_letters  # held: orders.events may be earlier
    assert [e.key for e in kit.emitted()] == ["o-1"]
    assert not kit.dead_letters


def test_testkit_lets_records_go_when_the_wait_runs_out() -> None:
    kit = TestKit(inventory(), on_error="dead-letter")
    with kit.behind("orders.events"):
        kit.send(payment("o-1"), "o-1", topic="payments.events")
        kit.advance(timedelta(seconds=9))
        assert not kit.dead_letters
        kit.advance(timedelta(seconds=1))  # the bound: the payment goes alone
        assert len(kit.dead_letters) == 1
