"""The unit of commit: what the open transaction has handled, and the commit of it in steps.

A checkpoint keeps, per input partition, the next offset to commit (`positions`), the offset the
partition was last committed at (`committed`) and the first offset handled since it was assigned
(`first`): together they say where to rewind when work is given up. Its commit is four steps, as
Kafka Streams' `prepareCommit`/`postCommit` and Quix Streams' checkpoint are:

1. prepare: every partition state's changelog writes are produced, the last of each store with a
   report of its offset (where the store will stand on its changelog);
2. commit: the transaction, with the input offsets (exactly-once), or the producer flushed and
   the offsets committed after it (at-least-once) — `Transactions` owns the producer's rules;
3. apply: each partition state writes its transaction to RocksDB with its changelog offset;
4. move on: the positions become the committed offsets.

Kafka-free: the producer and the transaction calls are handed in, so tests drive it over fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from choreograph.state.store import Store

TP = tuple[str, int]
DeliveryReport = Callable[[KafkaError | None, Message], None]
Produce = Callable[..., None]  # (topic, value, key, partition, on_delivery)


class CommittingTask(Protocol):
    """What a checkpoint needs of a partition task."""

    def changelog_writes(self) -> list[tuple[Store, dict[bytes, bytes | None]]]: ...

    def committed(self) -> None: ...

    def aborted(self) -> None: ...


class Checkpoint:
    def __init__(self) -> None:
        self.positions: dict[TP, int] = {}  # next offset to commit, per input partition
        self.committed: dict[TP, int] = {}  # what this instance last committed
        self.first: dict[TP, int] = {}  # first offset handled since assignment

    # -- the open transaction -------------------------------------------------------------------

    def handled(self, tp: TP, offset: int) -> None:
        """A record of `tp` at `offset` is done (handled or dead-lettered) in this transaction.
        (The engine's hot path writes the two dicts itself, to the same effect.)"""
        if tp not in self.first:
            self.first[tp] = offset
        self.positions[tp] = offset + 1

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]

    def has_work(self, tasks: Iterable[CommittingTask], open_transaction: bool) -> bool:
        return (
            bool(self.positions)
            or open_transaction
            or any(task.changelog_writes() for task in tasks)
        )

    def rewind_point(self, tp: TP) -> int | None:
        """Where `tp` resumes when uncommitted work is given up: its last committed offset, else
        the first it handled (None: nothing of it was handled, its position is right)."""
        return self.committed.get(tp, self.first.get(tp))

    # -- the commit, step by step ---------------------------------------------------------------

    def prepare(
        self,
        tasks: Mapping[int, CommittingTask],
        produce: Produce,
        logged: DeliveryReport,
        each: DeliveryReport | None,
        careful: Produce,
    ) -> int:
        """Step 1: every partition state's changelog writes, produced into the open transaction.
        Only the last write of a store reports its offset (`logged`); `each` reports the others
        (at-least-once watches every delivery). `careful` is the producing path that waits on a
        full queue and says why a record is refused. Returns how many records went out."""
        sent = 0
        for partition, task in tasks.items():
            for store, changes in task.changelog_writes():
                changelog, last = store.changelog, next(reversed(changes))
                for key, value in changes.items():
                    report = logged if key is last else each
                    try:
                        produce(changelog, value, key, partition, report)
                    except (BufferError, KafkaException):  # waits, or says why it is refused
                        careful(changelog, value, key, None, partition, report)
                    sent += 1
        return sent

    def apply(self, tasks: Iterable[CommittingTask]) -> None:
        """Step 3: the transaction committed: each partition state writes it to its store with
        its changelog offset, in one atomic write."""
        for task in tasks:
            task.committed()

    def move_on(self) -> dict[TP, int]:
        """Step 4: what was handled is committed. Returns the offsets just committed."""
        done = dict(self.positions)
        self.committed.update(done)
        self.positions.clear()
        return done

    # -- giving work up ---------------------------------------------------------------------------

    def forget_uncommitted(self, tasks: Iterable[CommittingTask]) -> None:
        """The open transaction will not commit: its state writes and positions go."""
        for task in tasks:
            task.aborted()
        self.positions.clear()

    def forget(self) -> None:
        """Nothing remembered can be trusted (the commit's outcome is unknown, the tasks are
        closed): what comes next starts from the broker's committed offsets."""
        self.positions.clear()
        self.committed.clear()
        self.first.clear()

    def drop(self, tp: TP) -> None:
        """`tp` is no longer owned: the next owner moves it on."""
        self.positions.pop(tp, None)
        self.committed.pop(tp, None)
        self.first.pop(tp, None)
