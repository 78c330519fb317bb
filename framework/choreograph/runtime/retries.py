"""Records waiting to be tried again: the partition is paused at the failed record until its
back-off ends, then fetched from there again. One failed record per partition at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from choreograph.runtime.records import Record

TP = tuple[str, int]


@dataclass
class RetryState:
    offset: int
    attempts: int = 0
    resume_at: float = 0.0
    waiting: bool = False
    away: int = 0  # consecutive pauses for a dependency: they count no attempt


class Retries:
    def __init__(self, consumer: Callable[[], Consumer]) -> None:
        """`consumer`: the current consumer (it is replaced when one fails)."""
        self._consumer = consumer
        self.states: dict[TP, RetryState] = {}  # changed in place, never replaced

    def __bool__(self) -> bool:
        return bool(self.states)

    def of(self, record: Record) -> RetryState:
        """The retry state of `record`: a new one when its partition failed on another."""
        state = self.states.get(record.tp)
        if state is None or state.offset != record.offset:
            state = self.states[record.tp] = RetryState(record.offset)
        return state

    def waiting(self, tp: TP) -> bool:
        state = self.states.get(tp)
        return state is not None and state.waiting

    def pause(self, record: Record, state: RetryState, delay: float) -> None:
        """Stop fetching the partition and fetch the record again after `delay` seconds."""
        state.resume_at, state.waiting = time.monotonic() + delay, True
        partition = TopicPartition(record.topic, record.partition, record.offset)
        consumer = self._consumer()
        consumer.pause([partition])
        consumer.seek(partition)

    def resume_due(self) -> None:
        tick = time.monotonic()
        for (topic, partition), state in self.states.items():
            if state.waiting and tick >= state.resume_at:
                state.waiting = False
                self._consumer().resume([TopicPartition(topic, partition)])

    def done(self, tp: TP) -> None:
        """The partition moved past its failed record (handled, dead-lettered or revoked)."""
        self.states.pop(tp, None)

    def clear(self) -> None:
        self.states.clear()
