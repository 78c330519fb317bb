"""Schedules: work a service starts at the times a cron expression names, once per occurrence.

    @service.schedule("monthly-invoices", cron="0 2 1 * *", tz="Europe/Berlin")
    def invoices(ctx: Context, occurrence: datetime) -> None: ...

One partition task owns each schedule: the partition its name falls in, by the partitioner that
places keys, so exactly one instance of the service fires it (`ctx.key` is the schedule's name).
Its next occurrence is a durable timer in that task's timer store: changelog-backed, fired inside
the transaction with whatever the handler emits and with the next occurrence set, so an
occurrence fires once across restarts, `kill -9` and rebalances (a firing that did not commit is
fired again by whoever owns the partition next). The owner sets the first timer when it opens the
partition, for the next occurrence from then on; a changed expression takes effect at once.

An occurrence is missed when it fires more than `grace` after its time (the service was down, or
its partition was moving). What happens to missed ones is the schedule's `missed` policy:

- "latest" (the default): the latest missed occurrence fires, once; earlier ones are skipped;
- "all": every missed occurrence fires, in order;
- "skip": none fires; the next occurrence to come does.

Times follow the expression in its zone (`tz`, an IANA name), daylight saving time included, as
cronsim evaluates them: a time that does not exist on a spring-forward day fires at the first
time after it, a time that exists twice fires once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from choreograph.runtime.errors import TopologyError
from choreograph.runtime.partitioning import partition_for
from choreograph.runtime.timers import deadline_ms

if TYPE_CHECKING:
    from choreograph.runtime.context import Context

log = logging.getLogger("choreograph.schedules")
TIMER_PREFIX = "schedule:"
Missed = Literal["latest", "all", "skip"]
MISSED: tuple[Missed, ...] = ("latest", "all", "skip")
ScheduleHandler = Callable[["Context", datetime], None]
CATCH_UP_MAX = 100_000  # occurrences walked to find the latest missed one


def expression_problem(cron: str, tz: str) -> str | None:
    """What is wrong with a cron expression in a zone (None: nothing), said the same wherever a
    schedule is declared: a service's, or a process definition's."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return (
            f"time zone {tz!r} is not an IANA zone name: use one such as 'UTC' or 'Europe/Berlin'"
        )
    try:
        CronSim(cron, datetime.now(zone))
    except CronSimError as err:
        return (
            f"{cron!r} is not a cron expression ({err}); five fields: minute hour day-of-month "
            "month day-of-week, e.g. '0 2 1 * *' for 02:00 on the 1st"
        )
    return None


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    tz: str
    missed: Missed
    grace: timedelta
    handler: ScheduleHandler

    @classmethod
    def checked(
        cls,
        service: str,
        name: str,
        cron: str,
        tz: str,
        missed: str,
        grace: timedelta,
        handler: ScheduleHandler,
    ) -> Schedule:
        """A schedule whose expression, zone and policy are valid; TopologyError otherwise (a
        mistake in the service: loud in its tests and at start-up)."""
        where = f"{service}: schedule {name!r}"
        problem = expression_problem(cron, tz)
        if problem:
            raise TopologyError(f"{where}: {problem}")
        if missed not in MISSED:
            raise TopologyError(f"{where}: missed={missed!r}; use one of {', '.join(MISSED)}")
        if grace < timedelta(0):
            raise TopologyError(f"{where}: grace must not be negative")
        return cls(name, cron, tz, missed, grace, handler)

    @property
    def timer_name(self) -> str:
        return f"{TIMER_PREFIX}{self.name}"

    def owner(self, partitions: int) -> int:
        """The partition whose task fires it."""
        return partition_for(self.name, partitions)

    def next_after(self, moment: datetime) -> datetime:
        """Its first occurrence after `moment`, in UTC."""
        found: datetime = next(CronSim(self.cron, moment.astimezone(ZoneInfo(self.tz))))
        return found.astimezone(UTC)

    def latest_until(self, since: datetime, now: datetime) -> datetime:
        """The latest occurrence at or before `now`, from `since` (an occurrence) on."""
        latest, walked = since, 0
        for found in CronSim(self.cron, since.astimezone(ZoneInfo(self.tz))):
            if found > now or walked >= CATCH_UP_MAX:
                break
            latest, walked = found.astimezone(UTC), walked + 1
        return latest

    def payload(self, occurrence: datetime) -> dict[str, Any]:
        return {"occurrence": occurrence.isoformat(), "cron": self.cron, "tz": self.tz}

    def armed_for(self, payload: dict[str, Any]) -> bool:
        """Whether a pending timer was set by this expression and zone (not an earlier one)."""
        return payload.get("cron") == self.cron and payload.get("tz") == self.tz

    def fire(self, ctx: Context, payload: dict[str, Any]) -> None:
        """The schedule's timer fired: run the occurrence (or skip it, by the policy) and set
        the next one, in this same handling."""
        now = ctx.now
        if not self.armed_for(payload) or "occurrence" not in payload:
            self._arm(ctx, self.next_after(now))  # set by an earlier expression: start afresh
            return
        occurrence = datetime.fromisoformat(payload["occurrence"])
        if now - occurrence > self.grace:
            if self.missed == "skip":
                log.warning("schedule %s: occurrence %s missed, skipped", self.name,
                            occurrence.isoformat(), extra={"schedule": self.name})  # fmt: skip
                self._arm(ctx, self.next_after(now))
                return
            if self.missed == "latest":
                latest = self.latest_until(occurrence, now)
                if latest > occurrence:
                    log.warning("schedule %s: occurrences from %s missed; %s fires", self.name,
                                occurrence.isoformat(), latest.isoformat(),
                                extra={"schedule": self.name})  # fmt: skip
                    self._arm(ctx, latest)  # due now: fires at the next timer check
                    return
        self.handler(ctx, occurrence.astimezone(ZoneInfo(self.tz)))
        self._arm(ctx, self.next_after(occurrence))

    def _arm(self, ctx: Context, occurrence: datetime) -> None:
        ctx.schedule(self.timer_name, occurrence, self.payload(occurrence))


def first_timer(schedule: Schedule, now: datetime) -> tuple[str, str, int, dict[str, Any]]:
    """The timer (key, name, deadline, payload) a schedule's owner sets when none is pending."""
    occurrence = schedule.next_after(now)
    return schedule.name, schedule.timer_name, deadline_ms(occurrence), schedule.payload(occurrence)
