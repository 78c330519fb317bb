"""Firing due timers inside the open transaction, under the one failure policy.

A timer handler that fails is due again after the policy's back-off; one that keeps failing
leaves the timer store for the DLQ in the same transaction, so nothing is lost and an operator
can see it. A dependency that is away pauses it like a record."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime

from choreograph.observability.metrics import ServiceMetrics
from choreograph.observability.tracing import RecordSpans
from choreograph.runtime.context import Output
from choreograph.runtime.failure_handling import FailureHandling
from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.task import PartitionTask
from choreograph.runtime.timers import Timer

DUE_PER_CHECK = 500  # timers fired per partition and check, so records are not starved


class TimerFiring:
    def __init__(
        self,
        service: str,
        failures: FailureHandling,
        limits: RecordLimits,
        metrics: ServiceMetrics,
        produce: Callable[[list[Output]], None],
        clock: Callable[[], datetime],
        spans: RecordSpans | None = None,
    ) -> None:
        self.failures = failures
        self.spans = spans
        self.limits = limits
        self.produce = produce
        self.clock = clock
        self._lateness = metrics.timer_lateness.labels(service)
        self._fired = metrics.timers_fired.labels(service)
        self._failing: dict[tuple[int, str, str], tuple[int, float]] = {}  # attempts, retry at

    def fire_due(self, tasks: Mapping[int, PartitionTask], now: datetime) -> None:
        for partition, task in list(tasks.items()):
            for timer in task.due_timers(now, limit=DUE_PER_CHECK):
                self._fire(partition, task, timer, now)

    def forget(self) -> None:
        """Uncommitted work is gone: back-offs start afresh."""
        self._failing.clear()

    def _fire(self, partition: int, task: PartitionTask, timer: Timer, now: datetime) -> None:
        ident = (partition, timer.key, timer.name)
        failed = self._failing.get(ident)
        if failed is not None and time.monotonic() < failed[1]:
            return  # backing off after a failure
        began = time.time_ns() if self.spans is not None else 0
        try:
            outputs = task.fire(timer, now)
            self.limits.check(outputs, task.state.written())
        except Exception as error:
            task.end_message(ok=False)
            decision = self.failures.timer(
                task, partition, timer, error, failed[0] if failed else 0
            )
            if self.spans is not None:
                self.spans.timer(timer.name, timer.key, decision.action, began, time.time_ns(),
                                 error)  # fmt: skip
            if decision.action != "dead-letter":  # due again after the back-off
                self._failing[ident] = (decision.attempts, time.monotonic() + decision.delay_s)
                return
            self._failing.pop(ident, None)
            return
        task.end_message(ok=True)
        self._failing.pop(ident, None)
        self.produce(outputs)
        if self.spans is not None:
            self.spans.timer(timer.name, timer.key, "ok", began, time.time_ns())
        self._lateness.observe(max(0.0, self.clock().timestamp() - timer.deadline_ms / 1000))
        self._fired.inc()
