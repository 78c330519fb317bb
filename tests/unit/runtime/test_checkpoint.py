"""The unit of commit over a fake producer: each store's changelog records go out once, the last
one of each store reporting its offset; the state reaches the stores only when applied; giving
up forgets exactly the uncommitted work; rewind points are the last commit, else the first
offset handled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.workload import Tick
from bench.workload.service import build
from confluent_kafka import KafkaException

from choreograph.contracts.envelope import Envelope
from choreograph.runtime.checkpoint import Checkpoint
from choreograph.runtime.task import PartitionTask
from choreograph.state.backends import MemoryBackend
from choreograph.testing.testkit import TestKit

NOW = datetime(2026, 12, 7, tzinfo=UTC)


class FakeProducer:
    """Records what is produced; refuses the first `full` calls as a full queue would."""

    def __init__(self, full: int = 0) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.careful: list[tuple[Any, ...]] = []
        self.full = full

    def produce(self, topic: str, value: Any, key: Any, partition: int, report: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.sent.append((topic, value, key, partition, report))

    def produce_carefully(self, topic: str, value: Any, key: Any, headers: Any,
                          partition: int, report: Any) -> None:  # fmt: skip
        self.careful.append((topic, value, key, partition, report))


def tasks_with_work() -> tuple[dict[int, PartitionTask], TestKit]:
    service = build("ckpt")
    kit = TestKit(service, partitions=1)
    tasks = {p: PartitionTask(service, p, lambda _s, _p: MemoryBackend(), kit.serde,
                              partitions=2) for p in (0, 1)}  # fmt: skip
    for i, key in enumerate(["k1", "k2", "k3", "k1"]):
        from choreograph.runtime.partitioning import partition_for

        task = tasks[partition_for(key, 2)]
        value = kit.serde.serialize(Tick(id=str(i), key=key, seq=i, amount=1), "ckpt.ticks")
        headers = Envelope.new(Tick.__avro_name__, "t", key).to_headers()
        task.process(key.encode(), value, headers, NOW, "ckpt.ticks", i)
        task.end_message(ok=True)
    return tasks, kit


def logged(err: Any, msg: Any) -> None:
    raise AssertionError("only compared by identity")


def test_prepare_sends_each_write_once_and_the_last_of_each_store_reports() -> None:
    tasks, _ = tasks_with_work()
    producer = FakeProducer()
    checkpoint = Checkpoint()
    sent = checkpoint.prepare(tasks, producer.produce, logged, None, producer.produce_carefully)
    written = {(p, k) for p, t in tasks.items() for _, ch in t.changelog_writes() for k in ch}
    assert sent == len(producer.sent) == len(written) == 3  # k1 twice: one record, its latest
    for partition, task in tasks.items():
        for store, changes in task.changelog_writes():
            records = [r for r in producer.sent if r[0] == store.changelog and r[3] == partition]
            assert [r[2] for r in records] == list(changes)
            assert [r[4] is logged for r in records] == [False] * (len(records) - 1) + [True]
            assert [r[1] for r in records] == list(changes.values())


def test_a_full_queue_takes_the_careful_path() -> None:
    tasks, _ = tasks_with_work()
    producer = FakeProducer(full=1)
    Checkpoint().prepare(tasks, producer.produce, logged, None, producer.produce_carefully)
    assert len(producer.careful) == 1 and len(producer.sent) == 2

    def refused(*args: Any) -> None:
        raise KafkaException("refused")

    careful: list[Any] = []
    Checkpoint().prepare(tasks, refused, logged, None, lambda *a: careful.append(a))
    assert len(careful) == 3


def test_state_reaches_the_stores_when_applied_and_giving_up_forgets_it() -> None:
    tasks, _ = tasks_with_work()
    checkpoint = Checkpoint()
    for offset in (5, 6):
        checkpoint.handled(("ckpt.ticks", 0), offset)
    checkpoint.handled(("ckpt.ticks", 1), 9)
    assert checkpoint.rewind_point(("ckpt.ticks", 0)) == 5  # nothing committed: the first
    assert sorted(o.offset for o in checkpoint.offsets()) == [7, 10]
    stores = [s for t in tasks.values() for s in t.stores.values() if s.name == "tallies"]
    assert all(s.backend.get(b"k1") is None for s in stores)  # type: ignore[attr-defined]
    checkpoint.apply(tasks.values())
    assert any(s.backend.get(b"k1") for s in stores)  # type: ignore[attr-defined]
    assert checkpoint.move_on() == {("ckpt.ticks", 0): 7, ("ckpt.ticks", 1): 10}
    assert checkpoint.positions == {} and checkpoint.rewind_point(("ckpt.ticks", 0)) == 7
    assert not checkpoint.has_work(tasks.values(), open_transaction=False)

    again, _ = tasks_with_work()
    checkpoint.handled(("ckpt.ticks", 0), 7)
    assert checkpoint.has_work(again.values(), open_transaction=False)
    checkpoint.forget_uncommitted(again.values())
    assert checkpoint.positions == {} and not any(t.changelog_writes() for t in again.values())
    assert checkpoint.rewind_point(("ckpt.ticks", 0)) == 7  # back to the last commit
    checkpoint.drop(("ckpt.ticks", 0))
    assert checkpoint.rewind_point(("ckpt.ticks", 0)) is None
    checkpoint.forget()
    assert checkpoint.rewind_point(("ckpt.ticks", 1)) is None


def test_a_consumer_left_without_partitions_long_after_a_loss_is_replaced(tmp_path: Any) -> None:
    """Seen after a broker restart with static membership: the session timed out, the
    partitions were lost, and the consumer never joined its group again. Once per loss, past the
    bound, the engine replaces it (a fresh one rejoins and restores what it is assigned)."""
    import time

    from choreograph.runtime.config import ServiceConfig
    from choreograph.runtime.engine import REJOIN_STUCK_S, Engine

    class Idle:
        def consume(self, n: int, timeout: float) -> list[Any]:
            return []

        def assignment(self) -> list[Any]:
            return []

    config = ServiceConfig(instance_id="t", state_dir=tmp_path, commit_interval_ms=10**9)
    engine = Engine(build("rejoin"), config)
    engine.consumer = Idle()  # type: ignore[assignment]
    engine.txn.ready = lambda bound: True  # type: ignore[method-assign]
    engine._lost_at = time.monotonic() - 1
    engine.step()
    assert engine._consumer_failed is None  # not yet: a rejoin takes a while
    engine._lost_at = time.monotonic() - REJOIN_STUCK_S - 1
    engine.step()
    assert (
        engine._consumer_failed
        == f"no partitions assigned {REJOIN_STUCK_S:.0f} s after they were lost"
    )
    engine._consumer_failed = None
    engine.step()
    assert engine._consumer_failed is None  # once per loss
