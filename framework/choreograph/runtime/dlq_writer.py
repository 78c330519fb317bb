"""Sending what a service cannot handle to its DLQ, inside the open transaction: a record (as it
came, or headers-only when even its copy is too large) or a timer whose handler keeps failing.
Moving past the record is the caller's; that the letter and the move commit together is the
transaction's."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from confluent_kafka import KafkaException

from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.dlq import dead_letter_headers, fitting_dead_letter, slim_dead_letter
from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.records import Record
from choreograph.runtime.timers import Timer
from choreograph.runtime.transactions import unproducible

log = logging.getLogger("choreograph.engine")


class OpenTransaction(Protocol):
    """Where letters go: the engine's `Transactions`, or the TestKit's in-memory double."""

    def begin(self) -> None: ...

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None: ...


class DlqWriter:
    def __init__(
        self,
        service: str,
        dlq: str,
        txn: OpenTransaction,
        limits: RecordLimits,
        metrics: ServiceMetrics,
    ) -> None:
        self.service = service
        self.dlq = dlq
        self.txn = txn
        self.limits = limits
        self.metrics = metrics

    def record(self, record: Record, reason: str, error: Exception, attempts: int) -> None:
        """Dead-letter `record` to the partition of the DLQ with its own number."""
        self.txn.begin()
        headers = dead_letter_headers(
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            service=self.service,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        key, value, headers = fitting_dead_letter(
            self.limits, self.dlq, record.key, record.value, headers
        )
        try:
            self.txn.produce(self.dlq, value, key, headers, record.partition)
        except KafkaException as exc:
            if not unproducible(exc.args[0]):
                raise
            key, value, headers = slim_dead_letter(key, value, headers, 0)
            self.txn.produce(self.dlq, value, key, headers, record.partition)
        self.metrics.dlq.labels(self.service, reason).inc()
        log.warning(
            "dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "error": repr(error),
                "attempts": attempts,
            },
        )

    def timer(self, partition: int, timer: Timer, error: Exception, attempts: int) -> None:
        """Dead-letter a timer: its name, deadline and payload, keyed by its key."""
        self.txn.begin()
        value = json.dumps(
            {"timer": timer.name, "deadline_ms": timer.deadline_ms, "payload": timer.payload},
            default=str,
        ).encode()
        headers = dead_letter_headers(
            [("dlq_timer", timer.name)],
            topic=None,
            partition=partition,
            offset=-1,
            service=self.service,
            reason="timer-failed",
            error=error,
            attempts=attempts,
        )
        self.txn.produce(self.dlq, value, timer.key.encode(), headers, partition)
        self.metrics.dlq.labels(self.service, "timer-failed").inc()
        log.error(
            "timer dead-lettered after repeated failures",
            extra={"key": timer.key, "timer": timer.name, "error": repr(error)},
        )
