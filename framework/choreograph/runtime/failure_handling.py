"""Carrying out the failure policy's decision: the one place, for records and timers, in the
engine and in the TestKit alike.

`FailurePolicy.decide` says what a failure means (pause, retry, dead letter). This carries it
out: it counts the attempt or the pause, tells the dependency tracker that a dependency is away,
writes the dead letter into the open transaction through the `DlqWriter` (the same letter, with
the same size limits, whether the transaction is Kafka's or the TestKit's in-memory double), and
takes a dead timer out of its store in that transaction. When a retry or a pause happens is the
caller's alone: the engine fetches the partition again after the delay, or fires the timer again;
the TestKit handles again at once, or after moving its virtual clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from choreograph.runtime.dependencies import Dependencies, dependency_of
from choreograph.runtime.dlq_writer import DlqWriter
from choreograph.runtime.errors import Decision, FailurePolicy
from choreograph.runtime.records import Record
from choreograph.runtime.timers import Timer

TIMER_PAUSES = 2  # a timer whose dependency is away waits as a record does after two pauses


class Tries(Protocol):
    """What is counted for one record or timer: failed attempts, and pauses for a dependency
    that is away (they count no attempt)."""

    attempts: int
    away: int


class TimerTask(Protocol):
    """The part of a partition task a dead timer needs."""

    @property
    def timers(self) -> _TimerStore: ...

    def end_message(self, ok: bool) -> None: ...


class _TimerStore(Protocol):
    def fired(self, timer: Timer) -> None: ...


class FailureHandling:
    """`screen`: sees each decision before it is carried out and may raise instead (the
    TestKit raises a mistake in the service's code at once, with its traceback)."""

    def __init__(
        self,
        policy: FailurePolicy,
        dlq: DlqWriter,
        dependencies: Dependencies | None,
        screen: Callable[[BaseException, Decision], None] | None = None,
    ) -> None:
        self.policy = policy
        self.dlq = dlq
        self.dependencies = dependencies
        self.screen = screen

    def record(self, record: Record, error: Exception, tries: Tries) -> Decision:
        """A record's handling failed: `tries` counts it; a dead letter goes into the open
        transaction. The caller moves past the record, or takes it again after the delay."""
        decision = self._decide(error, tries.attempts, tries.away)
        if decision.action == "pause":
            tries.away += 1
            return decision
        tries.attempts = decision.attempts
        if decision.action == "dead-letter":
            self.dead_letter(record, decision.reason, error, decision.attempts)
        return decision

    def timer(
        self, task: TimerTask, partition: int, timer: Timer, error: Exception, attempts: int
    ) -> Decision:
        """A timer handler failed (its writes already dropped): on a dead letter the timer
        leaves its store in the same transaction as the letter goes out."""
        decision = self._decide(error, attempts, TIMER_PAUSES)
        if decision.action == "dead-letter":
            task.timers.fired(timer)
            task.end_message(ok=True)
            self.dlq.timer(partition, timer, error, decision.attempts)
        return decision

    def dead_letter(self, record: Record, reason: str, error: Exception, attempts: int) -> None:
        """A record the service moves past: its letter, into the open transaction."""
        self.dlq.record(record, reason, error, attempts)

    def _decide(self, error: Exception, attempts: int, pauses: int) -> Decision:
        decision = self.policy.decide(error, attempts, pauses)
        if self.screen is not None:
            self.screen(error, decision)
        if decision.action == "pause" and self.dependencies is not None:
            self.dependencies.unavailable(dependency_of(error), error)
        return decision
