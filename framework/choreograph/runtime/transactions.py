"""The one owner of a transactional producer: begin, produce, commit, abort, and recovery.

Follows Kafka's exactly-once rules as librdkafka documents them for every transactional call:
a retriable error (a timeout, a coordinator moving) is retried until the caller's deadline; an
error that requires an abort is answered with an abort, and the work is redone; a fatal error
(fenced by a newer instance with the same transactional id, an epoch the broker no longer knows)
means the producer is dropped and a fresh one with the same transactional id is initialised,
which also fences the old one and settles its open transaction. Every blocking call runs under
the watchdog, so a call that hangs past its own timeout counts as a fatal one.

After a commit whose outcome is unknown (it timed out or stalled: the broker may have committed
it), the caller must not trust what it remembers of committed offsets or state: `commit` says
so with `Outcome.UNKNOWN`, and the caller rebuilds from what the broker has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from choreograph.runtime.partitioning import java_compatible
from choreograph.runtime.watchdog import GRACE_S, Stalled, Watchdog

log = logging.getLogger("choreograph.transactions")
T = TypeVar("T")
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class Outcome(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"  # nothing of it landed: redo from the last commit
    UNKNOWN = "unknown"  # it may have landed: rebuild from what the broker has


class ProducerUnavailable(Exception):
    """No usable producer right now (the broker is away, or a fresh one is not initialised)."""


class Transactions:
    """A transactional producer that survives broker restarts, fencing and hung calls.

    `transactional=False` gives the same interface over an idempotent producer for at-least-once
    work: `commit` flushes, `abort` forgets nothing (what was sent was sent).
    """

    def __init__(
        self,
        conf: dict[str, Any],
        *,
        name: str,
        transactional: bool = True,
        on_abort: Callable[[], None] | None = None,
        on_rebuild: Callable[[str], None] | None = None,
    ) -> None:
        self.conf = java_compatible(conf)
        self._batch_size: int | None = None
        self.transactional = transactional
        self.name = name
        self.watchdog = Watchdog(name)
        self.open = False
        self._producer: Producer | None = None
        self._initialised = not transactional
        self._on_abort = on_abort or (lambda: None)
        self._on_rebuild = on_rebuild or (lambda _reason: None)
        self.rebuilds = 0

    # -- the producer --------------------------------------------------------------------------

    @property
    def producer(self) -> Producer:
        """The current producer; call `ready` first."""
        if self._producer is None or not self._initialised:
            raise ProducerUnavailable(f"{self.name}: no initialised producer")
        return self._producer

    def ready(self, bound: float) -> bool:
        """Make sure an initialised producer exists, trying for at most `bound` seconds.

        False while the broker cannot be reached: the caller pauses and asks again."""
        if self._producer is not None and self._initialised:
            return True
        if self._producer is None:
            self._producer = Producer(self.conf)
            self._initialised = not self.transactional
            if self._initialised:
                return True
        try:
            self.watchdog.call(
                "init_transactions",
                bound + GRACE_S,
                self._producer.init_transactions,
                bound,
            )
        except KafkaException as exc:
            error = exc.args[0]
            if error.retriable() and not error.fatal():
                return False  # the broker is away: the same producer may try again
            self._drop(f"init_transactions: {error}")
            return False
        except Stalled as stalled:
            self._drop(str(stalled))
            return False
        self._initialised = True
        self.open = False
        return True

    def _drop(self, reason: str) -> None:
        """Abandon the producer; the next `ready` builds a fresh one with the same id."""
        if self._producer is not None:
            log.warning(
                "producer dropped; a fresh one takes over",
                extra={"producer": self.name, "reason": reason},
            )
            self.rebuilds += 1
            self._on_rebuild(reason)
        self._producer = None  # never touched again: a stalled call may still hold it
        self._initialised = not self.transactional
        self.open = False

    # -- one transaction -----------------------------------------------------------------------

    def begin(self) -> None:
        if self.transactional and not self.open:
            try:
                self.producer.begin_transaction()
            except KafkaException as exc:
                self._drop(f"begin_transaction: {exc.args[0]}")
                raise ProducerUnavailable(str(exc.args[0])) from exc
            self.open = True

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Any = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
        queue_wait_s: float = 30.0,
    ) -> None:
        """Queue one record. Waits while the local queue is full, at most `queue_wait_s`;
        a record the client refuses outright raises KafkaException (see `unproducible`)."""
        producer = self.producer
        kwargs: dict[str, Any] = {"headers": headers}
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        if partition is not None:
            kwargs["partition"] = partition
        give_up = time.monotonic() + queue_wait_s
        while True:
            try:
                producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                if time.monotonic() >= give_up:
                    raise ProducerUnavailable(
                        f"{self.name}: the producer queue stayed full for {queue_wait_s:.0f} s"
                    ) from None
                producer.poll(0.05)
            except KafkaException as exc:
                if unproducible(exc.args[0]):
                    raise  # refused for what the record is
                # Refused for the moment (a transaction in an error state, a fatal producer):
                # the transaction is redone, the record is not at fault.
                raise ProducerUnavailable(f"{self.name}: cannot produce now: {exc}") from exc

    def commit(
        self,
        bound: float,
        offsets: list[TopicPartition] | None = None,
        group_metadata: Any = None,
    ) -> Outcome:
        """Commit what was produced (and, transactionally, `offsets` for the consumer group) in
        at most about `bound` seconds."""
        if not self.transactional:
            return self._flush(bound)
        if not self.open:
            return Outcome.COMMITTED
        grace = grace_within(bound)
        deadline = time.monotonic() + bound - grace
        producer = self.producer
        try:
            if offsets:
                self._retrying(
                    "send_offsets_to_transaction",
                    deadline,
                    lambda left: producer.send_offsets_to_transaction(
                        offsets, group_metadata, left
                    ),
                    grace,
                )
            self._retrying("commit_transaction", deadline, producer.commit_transaction, grace)
        except KafkaException as exc:
            error = exc.args[0]
            if error.txn_requires_abort() and not error.fatal():
                log.warning(
                    "transaction failed; aborting",
                    extra={"producer": self.name, "error": str(error)},
                )
                # Not committed: aborted now, or by the next producer's initialisation.
                self.abort(deadline + grace - time.monotonic())
                return Outcome.ABORTED
            self._drop(f"commit: {error}")
            return Outcome.UNKNOWN
        except Stalled as stalled:
            self._drop(str(stalled))
            return Outcome.UNKNOWN
        self.open = False
        return Outcome.COMMITTED

    def abort(self, bound: float) -> bool:
        """Abort the open transaction; True if it is known to be aborted. When the abort cannot
        be confirmed the producer is dropped: its successor's initialisation settles it."""
        if not self.transactional or not self.open:
            return True
        self._on_abort()
        bound = max(bound, 1.0)
        grace = grace_within(bound)
        deadline = time.monotonic() + bound - grace
        producer = self.producer
        try:
            self._retrying("abort_transaction", deadline, producer.abort_transaction, grace)
        except (KafkaException, Stalled) as exc:
            self._drop(f"abort: {exc}")
            return False
        self.open = False
        return True

    def _retrying(
        self, what: str, deadline: float, call: Callable[[float], Any], grace: float
    ) -> None:
        """`call(timeout)` again while it fails retriably and time is left; a call still
        blocked `grace` past its timeout is stalled (the client does not always keep its own
        timeout against a broker that accepts connections and never answers)."""
        while True:
            left = max(deadline - time.monotonic(), 0.1)
            try:
                self.watchdog.call(what, left + grace, call, left)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or not error.retriable() or time.monotonic() >= deadline:
                    raise
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    def _flush(self, bound: float) -> Outcome:
        producer = self.producer
        try:
            grace = grace_within(bound)
            unsent = self.watchdog.call("flush", bound, producer.flush, bound - grace)
        except Stalled as stalled:
            self._drop(str(stalled))
            return Outcome.UNKNOWN
        return Outcome.COMMITTED if not unsent else Outcome.UNKNOWN

    # -- housekeeping --------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """The producer's batch size (read per handled record: kept with the configuration)."""
        if self._batch_size is None:
            self._batch_size = int(self.conf.get("batch.size", DEFAULT_BATCH_SIZE))
        return self._batch_size

    def reconfigure(self, bound: float, **settings: Any) -> None:
        """Continue with a producer built with `settings` (between transactions only): the
        current one delivers what it holds and is closed; the next `ready` builds the new one,
        whose initialisation fences the old one."""
        if self.open:
            raise RuntimeError(f"{self.name}: reconfigure between transactions only")
        self.close(bound)
        self.conf = {**self.conf, **settings}
        self._batch_size = None
        self._initialised = not self.transactional

    def poll(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)

    def close(self, bound: float) -> None:
        """Deliver what is queued, within `bound`; a producer that cannot is abandoned."""
        if self._producer is None:
            return
        try:
            self.watchdog.call("flush", bound + GRACE_S, self._producer.flush, bound)
        except Stalled:
            log.warning("producer did not flush in time", extra={"producer": self.name})
        self._producer = None

    @property
    def abandoned(self) -> bool:
        """Whether a call was left blocked in the client: the process should end by `os._exit`
        rather than wait for the client's own clean-up."""
        return self.watchdog.stalled_calls > 0


DEFAULT_BATCH_SIZE = 1_000_000  # librdkafka's batch.size


def grace_within(bound: float) -> float:
    """How long past its own timeout a blocking call may take before it counts as stalled,
    taken out of `bound`, so that a commit or abort given `bound` seconds ends within them."""
    return min(GRACE_S, max(bound / 3, 0.2))


def unproducible(error: KafkaError) -> bool:
    """Errors that refuse one record for what it is (too large, invalid), not for the moment:
    producing it again cannot succeed, so it is dead-lettered instead."""
    return error.code() in UNPRODUCIBLE


UNPRODUCIBLE = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError._INVALID_ARG,
    }
)
