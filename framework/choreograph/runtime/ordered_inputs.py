"""Fetched records of a multi-input service, held per task until `InputOrder` lets them through.

The engine's side of input order: it files each consumed message under its task, answers
`InputOrder`'s question "is this input partition caught up?" from the consumer (its position, or
the group's committed offset before anything was fetched, against the high watermark of the last
fetch; under read_committed a record of an open transaction counts as not fetched), bounds what
it holds by pausing a partition whose buffer is full, and publishes the waiting metrics.

A service with one input has nothing to order: the engine handles its records as they come.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.input_order import UNORDERED, InputOrder, InputOrderStats

log = logging.getLogger("choreograph.engine")
TP = tuple[str, int]
COMMITTED_BOUND_S = 2.0  # one look-up of where a partition's fetching started
COMMITTED_RETRY_S = 5.0  # after a look-up that failed


class OrderedInputs:
    def __init__(
        self,
        service: str,
        inputs: list[str],
        idle_ms: int,
        max_wait_ms: int,
        max_buffered: int,
        consumer: Callable[[], Consumer],
        metrics: ServiceMetrics,
    ) -> None:
        self.inputs = list(dict.fromkeys(inputs))
        self.active = len(self.inputs) > 1 and idle_ms != UNORDERED
        self.idle_s = idle_ms / 1000
        self.max_wait_s = max_wait_ms / 1000
        self.max_buffered = max_buffered
        self._consumer = consumer
        self.tasks: dict[int, InputOrder[Message]] = {}
        self._start: dict[TP, int] = {}  # where fetching started, for partitions not yet read
        self._full: set[TP] = set()  # paused here because their buffer is full
        self._unknown_until: dict[TP, float] = {}  # committed offset unreadable: not asked again
        self._waited = metrics.input_wait_seconds.labels(service)
        self._enforced = metrics.input_order_enforced.labels(service)
        self._late = metrics.input_order_late.labels(service)

    def __bool__(self) -> bool:
        return any(self.tasks.values())

    def add(self, msg: Message) -> None:
        partition, topic = msg.partition() or 0, msg.topic() or ""
        order = self.tasks.get(partition)
        if order is None:
            order = self.tasks[partition] = InputOrder(self.inputs, self.idle_s, self.max_wait_s)
        _, timestamp = msg.timestamp()
        order.add(topic, timestamp, msg)
        if order.queued(topic) >= self.max_buffered and (topic, partition) not in self._full:
            self._full.add((topic, partition))
            self._consumer().pause([TopicPartition(topic, partition)])

    def partitions(self) -> list[int]:
        return [p for p, order in self.tasks.items() if order.buffered]

    def taken(self, partition: int) -> Iterator[Message]:
        """The records of `partition`'s task in handling order, as far as they may go now."""
        order = self.tasks.get(partition)
        if order is None:
            return

        def caught_up(topic: str) -> bool:
            return self.caught_up((topic, partition))

        while True:
            msg = order.next(caught_up)
            if msg is None:
                return
            topic = msg.topic() or ""
            if (topic, partition) in self._full and order.queued(topic) < self.max_buffered // 2:
                self._full.discard((topic, partition))
                self._consumer().resume([TopicPartition(topic, partition)])
            yield msg

    def caught_up(self, tp: TP) -> bool:
        consumer = self._consumer()
        partition = TopicPartition(*tp)
        low, high = consumer.get_watermark_offsets(partition, cached=True)
        if high < 0:
            return False  # nothing fetched from it yet: where it ends is not known
        position: int | None = consumer.position([partition])[0].offset
        if position is None or position < 0:
            position = self._started_at(tp, low)
        return position is not None and position >= high

    def _started_at(self, tp: TP, low: int) -> int | None:
        """Where fetching `tp` started (the committed offset, else the log start): asked once."""
        start = self._start.get(tp)
        if start is None:
            if time.monotonic() < self._unknown_until.get(tp, 0.0):
                return None  # the broker did not say just now: the loop does not wait on it
            try:
                found = self._consumer().committed([TopicPartition(*tp)], COMMITTED_BOUND_S)[0]
            except KafkaException as error:
                log.debug("committed offset unknown", extra={"error": str(error)})
                self._unknown_until[tp] = time.monotonic() + COMMITTED_RETRY_S
                return None
            start = self._start[tp] = found.offset if found.offset >= 0 else low
        return start

    def drop(self, tp: TP) -> None:
        """Its position went back (a retry, a rewind) or it left: what is held comes again."""
        order = self.tasks.get(tp[1])
        if order is not None:
            order.drop(tp[0])
        self._start.pop(tp, None)
        self._full.discard(tp)  # whoever moved its position resumes it

    def drop_partition(self, partition: int) -> None:
        self.publish()
        for topic in self.inputs:
            self.drop((topic, partition))
        self.tasks.pop(partition, None)

    def clear(self) -> None:
        for order in self.tasks.values():
            order.clear()
        self._start.clear()
        self._full.clear()

    def publish(self) -> None:
        """Move the tasks' waiting figures to the metrics (once per step: metrics take locks)."""
        for order in self.tasks.values():
            stats = order.stats
            if stats.waited_s:
                self._waited.inc(stats.waited_s)
            if stats.enforced:
                self._enforced.inc(stats.enforced)
            if stats.late:
                self._late.inc(stats.late)
            order.stats = InputOrderStats()
