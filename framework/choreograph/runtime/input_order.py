"""Input order: which fetched record of a task's input partitions is handled next.

A task is one partition number across every input. Records of one key arrive on several inputs
(an order on `orders.events`, its payment on `payments.events`), and the partitions of a task
are fetched independently, so one can run seconds behind the other. Handling records as they are
fetched would let arrival timing decide the business outcome: a payment handled before the order
it pays for. As Kafka Streams' `PartitionGroup` does, a task therefore handles the buffered record
with the smallest timestamp across its inputs, and handles nothing while an input partition
with nothing buffered may still hold an earlier record:

- an empty partition known to be behind (records on the broker not fetched yet, or a record of
  an open transaction) is waited for, up to `max_wait_s`;
- an empty partition that is caught up is waited for `idle_s` (0 by default: not at all; more
  gives producers that run behind time to catch up, as `max.task.idle.ms`);
- when a wait runs out, the record is handled anyway and counted (`enforced`): no input that
  stopped stops the others for good.

Pure logic over an injected clock and a `caught_up(topic)` question, so the engine (asking the
consumer's positions and cached watermarks) and the TestKit (asking which inputs it holds back)
follow the same rule.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
UNORDERED = -1.0  # idle_s: handle records as they come, without waiting for any input


@dataclass
class InputOrderStats:
    """What waiting for inputs cost, summed over a task's life: read by the metrics."""

    waited_s: float = 0.0  # time during which records were buffered but none could be handled
    enforced: int = 0  # records handled after a wait ran out, an input still possibly behind
    late: int = 0  # records handled with a timestamp below one already handled from another input


@dataclass
class _Queue(Generic[T]):
    records: deque[tuple[int, int, T]] = field(default_factory=deque)  # (timestamp, seq, record)
    waiting_since: float | None = None  # empty while other inputs have records, since when
    behind: bool = False  # while waited for: known to have records not fetched yet


class InputOrder(Generic[T]):
    """The fetched, not yet handled records of one task's input partitions, in handling order."""

    def __init__(
        self,
        inputs: Iterable[str],
        idle_s: float = 0.0,
        max_wait_s: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.inputs = list(dict.fromkeys(inputs))
        self.idle_s = idle_s
        self.max_wait_s = max_wait_s
        self.clock = clock or time.monotonic
        self.stats = InputOrderStats()
        self._queues: dict[str, _Queue[T]] = {topic: _Queue() for topic in self.inputs}
        self._seq = itertools.count()
        self._blocked_since: float | None = None
        self._newest: dict[str, int] = {}  # newest timestamp handled per input
        self.buffered = 0

    def __len__(self) -> int:
        return self.buffered

    def add(self, topic: str, timestamp_ms: int, record: T) -> None:
        queue = self._queues.get(topic)
        if queue is None:  # an input this task did not know of: order it with the others
            queue = self._queues[topic] = _Queue()
            self.inputs.append(topic)
        queue.records.append((timestamp_ms, next(self._seq), record))
        queue.waiting_since = None
        self.buffered += 1

    def queued(self, topic: str) -> int:
        queue = self._queues.get(topic)
        return len(queue.records) if queue is not None else 0

    def drop(self, topic: str) -> None:
        """Forget what is buffered of `topic` (its position went back: it is fetched again)."""
        queue = self._queues.get(topic)
        if queue is not None and queue.records:
            self.buffered -= len(queue.records)
            queue.records.clear()
        if queue is not None:
            queue.waiting_since = None

    def clear(self) -> None:
        for topic in self._queues:
            self.drop(topic)
        self._blocked_since = None

    def next(self, caught_up: Callable[[str], bool]) -> T | None:
        """The record to handle now, or None while an input may still deliver an earlier one.

        `caught_up(topic)`: whether the task's partition of `topic` has nothing left to fetch
        (it is asked only for inputs with nothing buffered)."""
        if not self.buffered:
            self._blocked_since = None
            return None
        heads: list[tuple[int, int, str]] = []
        waiting_for: list[tuple[str, bool]] = []  # empty inputs: (topic, known to be behind)
        for topic, queue in self._queues.items():
            if queue.records:
                timestamp, seq, _ = queue.records[0]
                heads.append((timestamp, seq, topic))
            elif self.idle_s != UNORDERED:
                waiting_for.append((topic, not caught_up(topic)))
        enforced = False
        if waiting_for:
            now = self.clock()
            blocked = False
            for topic, behind in waiting_for:
                queue = self._queues[topic]
                if queue.waiting_since is None or (behind and not queue.behind):
                    # Waits start when it is first missed, and again when it falls behind: a
                    # quiet input that was let go must not be let go once it has records.
                    queue.waiting_since = now
                queue.behind = behind
                bound = self.max_wait_s if behind else self.idle_s
                if now - queue.waiting_since < bound:
                    blocked = True
                else:
                    enforced = enforced or behind
            if blocked:
                if self._blocked_since is None:
                    self._blocked_since = now
                return None
        if self._blocked_since is not None:
            self.stats.waited_s += self.clock() - self._blocked_since
            self._blocked_since = None
        timestamp, _, topic = min(heads)
        queue = self._queues[topic]
        _, _, record = queue.records.popleft()
        self.buffered -= 1
        if enforced:
            self.stats.enforced += 1
        if any(t != topic and ts > timestamp for t, ts in self._newest.items()):
            self.stats.late += 1
        if timestamp > self._newest.get(topic, -1):
            self._newest[topic] = timestamp
        return record
