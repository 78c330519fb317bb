"""Schedules in the TestKit, which runs them as production does: one partition owns each, every
occurrence fires once at its time in its zone (daylight saving time included), what it emits goes
out with it, and occurrences missed while the service was down follow the declared policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from choreograph import Context, Service
from choreograph.runtime.errors import TopologyError
from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.payments import PaymentAuthorized

START = datetime(2026, 1, 15, tzinfo=UTC)


def billing(missed: str = "latest", cron: str = "0 2 1 * *") -> tuple[Service, list[datetime]]:
    service = Service("billing", ["orders.events"], outputs=["payments.events"])
    ran: list[datetime] = []

    @service.schedule("monthly-invoices", cron=cron, tz="Europe/Berlin", missed=missed)
    def invoices(ctx: Context, occurrence: datetime) -> None:
        assert ctx.key == "monthly-invoices"
        ran.append(occurrence)
        ctx.emit(PaymentAuthorized(order_id=f"run-{occurrence:%Y-%m}", payment_id="p",
                                   amount=Decimal("1.00")))  # fmt: skip

    return service, ran


def test_each_occurrence_fires_once_at_its_time_in_its_zone() -> None:
    service, ran = billing()
    kit = TestKit(service, start=START, partitions=4)
    kit.advance(timedelta(days=95))
    assert [r.isoformat() for r in ran] == [
        "2026-02-01T02:00:00+01:00",
        "2026-03-01T02:00:00+01:00",
        "2026-04-01T02:00:00+02:00",  # summer time: 00:00 UTC
    ]
    emitted = kit.emitted(topic="payments.events")
    assert [o.event.order_id for o in emitted] == ["run-2026-02", "run-2026-03", "run-2026-04"]
    assert {o.key for o in emitted} == {"monthly-invoices"}  # emitted under its key
    fired = [when for _, name, when in kit.fired if name == "schedule:monthly-invoices"]
    assert fired == [r.astimezone(UTC) for r in ran]  # at its time, not later


def test_one_partition_owns_a_schedule() -> None:
    service, _ = billing()
    kit = TestKit(service, start=START, partitions=6)
    timer = ("monthly-invoices", "schedule:monthly-invoices")
    owners = [t.partition for t in kit.tasks if t.timers.deadline(*timer)]
    assert owners == [service.schedules["monthly-invoices"].owner(6)]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        ("latest", ["2026-04-01T02:00:00+02:00"]),
        (
            "all",
            ["2026-02-01T02:00:00+01:00", "2026-03-01T02:00:00+01:00", "2026-04-01T02:00:00+02:00"],
        ),
        ("skip", []),
    ],
)
def test_occurrences_missed_while_down_follow_the_policy(missed: str, expected: list[str]) -> None:
    service, ran = billing(missed)
    kit = TestKit(service, start=START)
    kit.outage(timedelta(days=80))  # down from mid-January to early April
    assert [r.isoformat() for r in ran] == expected
    kit.advance(timedelta(days=31))  # then on time again
    assert ran[-1].isoformat() == "2026-05-01T02:00:00+02:00"
    assert len(ran) == len(expected) + 1


def test_a_changed_expression_takes_effect_at_the_next_release() -> None:
    service, ran = billing()
    kit = TestKit(service, start=START)
    daily, daily_ran = billing(cron="0 6 * * *")
    kit.deploy(daily)
    kit.advance(timedelta(days=2))
    assert not ran  # the monthly timer is gone with its expression
    assert [r.isoformat() for r in daily_ran] == [
        "2026-01-15T06:00:00+01:00", "2026-01-16T06:00:00+01:00"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"cron": "0 2 1 *"}, "is not a cron expression"),
        ({"cron": "0 2 1 * *", "tz": "Mars/Olympus"}, "is not an IANA zone name"),
        ({"cron": "0 2 1 * *", "missed": "never"}, "use one of latest, all, skip"),
    ],
)
def test_a_wrong_schedule_is_refused_when_the_service_is_built(
    arguments: dict[str, str], says: str
) -> None:
    service = Service("billing", ["orders.events"])
    with pytest.raises(TopologyError, match=says):
        service.schedule("invoices", **arguments)(lambda ctx, occurrence: None)  # type: ignore[arg-type]
