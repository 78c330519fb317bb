"""Store layers (message, transaction, committed), ordered scans, timers' byte order, and the
changelog offset each store records with its data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from choreograph.runtime.timers import Timers
from choreograph.state.backends import MemoryBackend, RocksBackend
from choreograph.state.partition_state import PartitionState
from choreograph.state.store import Store


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    backend = MemoryBackend() if request.param == "memory" else RocksBackend(tmp_path / "db")
    backend.write({b"a": b"1", b"c": b"3", b"d": b"4"})
    return Store("s", 0, backend)


def test_reads_see_message_then_transaction_then_committed(store: Store) -> None:
    store.put_raw(b"c", None)
    store.end_message(ok=True)  # transaction layer: c deleted
    store.put_raw(b"b", b"2")
    store.put_raw(b"d", b"44")  # message layer
    assert [store.get_raw(k) for k in (b"a", b"b", b"c", b"d")] == [b"1", b"2", None, b"44"]
    assert list(store.scan_raw()) == [(b"a", b"1"), (b"b", b"2"), (b"d", b"44")]
    assert list(store.scan_raw(b"b", b"d")) == [(b"b", b"2")]


def test_failed_message_drops_only_its_own_writes(store: Store) -> None:
    store.put_raw(b"x", b"kept")
    store.end_message(ok=True)
    store.put_raw(b"y", b"dropped")
    store.end_message(ok=False)
    assert (store.get_raw(b"x"), store.get_raw(b"y")) == (b"kept", None)
    assert store.pending() == {b"x": b"kept"}


def test_commit_applies_and_abort_discards(store: Store) -> None:
    store.put("k", {"n": 1})
    store.end_message(ok=True)
    store.aborted()
    assert store.get("k") is None and store.backend.get(b"k") is None
    store.put("k", {"n": 2})
    store.end_message(ok=True)
    store.committed()
    assert store.pending() == {} and store.get("k") == {"n": 2}
    assert store.backend.get(b"k") == b'{"n":2}'


def test_items_by_prefix(store: Store) -> None:
    store.put("order:1", 1)
    store.put("order:2", 2)
    store.put("other", 3)
    assert list(store.items("order:")) == [("order:1", 1), ("order:2", 2)]


def test_timers_come_due_in_deadline_order_and_reschedule_replaces(store: Store) -> None:
    timers = Timers(Store("t", 0, MemoryBackend()), Store("i", 0, MemoryBackend()))
    timers.schedule("k1", "a", 3_000, {})
    timers.schedule("k2", "a", 1_000, {})
    timers.schedule("k3", "a", 2**40, {})  # far future, byte order must still hold
    timers.schedule("k1", "a", 500, {"again": True})  # replaces the 3_000 one
    due = list(timers.due(2_000))
    assert [(t.key, t.deadline_ms) for t in due] == [("k1", 500), ("k2", 1_000)]
    assert due[0].payload == {"again": True}
    assert timers.cancel("k2", "a") and not timers.cancel("k2", "a")
    assert timers.next_deadline() == 500


def test_a_commit_records_its_changelog_offset_with_its_data(tmp_path: Path) -> None:
    state = PartitionState(3, {"s": "svc.s.changelog"}, lambda name: RocksBackend(tmp_path / name))
    store = state.stores["s"]
    assert store.changelog == "svc.s.changelog" and store.backend.applied() is None
    store.put("k", 1)
    state.end_message(ok=True)
    state.logged("svc.s.changelog", 17)
    state.logged("another.changelog", 99)  # not one of its stores: ignored
    state.committed()
    assert store.backend.applied() == 17
    assert list(store.backend.scan()) == [(b"k", b"1")]  # the offset is not a key of the data
    state.close()
    reopened = PartitionState(3, {"s": "svc.s.changelog"}, lambda n: RocksBackend(tmp_path / n))
    [job] = reopened.restore_jobs()
    assert (job.topic, job.partition, job.store, job.from_offset) == ("svc.s.changelog", 3, "s", 17)
    assert reopened.stores["s"].get("k") == 1
    reopened.close()


def test_an_aborted_transaction_leaves_data_and_offset_as_they_were(tmp_path: Path) -> None:
    state = PartitionState(0, {"s": "c"}, lambda name: RocksBackend(tmp_path / name))
    state.stores["s"].put("k", 1)
    state.end_message(ok=True)
    state.logged("c", 5)
    state.committed()
    state.stores["s"].put("k", 2)
    state.end_message(ok=True)
    state.logged("c", 9)
    state.aborted()
    state.committed()  # an empty transaction after it records nothing of the aborted one
    assert (state.stores["s"].get("k"), state.stores["s"].backend.applied()) == (1, 5)
    state.close()


def test_state_without_a_recorded_offset_is_cleared_and_restored_whole(tmp_path: Path) -> None:
    backend = RocksBackend(tmp_path / "s")
    backend.write({b"stale": b"1"})  # written by something that recorded no offset
    backend.close()
    state = PartitionState(0, {"s": "c"}, lambda name: RocksBackend(tmp_path / name))
    [job] = state.restore_jobs()
    assert job.from_offset is None and list(state.stores["s"].backend.scan()) == []
    state.close()


def test_a_lost_write_ahead_log_tail_loses_data_and_offset_together(tmp_path: Path) -> None:
    """A machine crash can lose the tail of RocksDB's write-ahead log (writes are not synced):
    what is recovered is a prefix of the writes, each with the offset written beside it."""
    path = tmp_path / "s"
    child = os.fork()
    if child == 0:  # a process that writes and dies without closing anything
        backend = RocksBackend(path)
        for n in range(1, 2001):
            backend.write({b"n": str(n).encode(), f"k{n}".encode(): b"x" * 100}, applied=n * 10)
        os._exit(0)
    os.waitpid(child, 0)
    wal = max(path.glob("*.log"), key=lambda log: log.stat().st_size)
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 2 + 7])  # a torn tail
    recovered = RocksBackend(path)
    n = int(recovered.get(b"n") or b"0")
    assert 0 < n < 2000  # a prefix survived, the tail did not
    assert recovered.applied() == n * 10
    assert recovered.get(f"k{n}".encode()) and recovered.get(f"k{n + 1}".encode()) is None
    recovered.close()


def test_due_scans_start_at_the_floor_yet_never_miss_a_timer() -> None:
    timers = Timers(Store("t", 0, MemoryBackend()), Store("i", 0, MemoryBackend()))
    timers.schedule("k1", "a", 1_000, {})
    timers.schedule("k2", "a", 5_000, {})
    assert [t.key for t in timers.due(2_000)] == ["k1"]
    timers.fired(next(iter(timers.due(2_000))))
    assert list(timers.due(3_000)) == []  # floor moves past the fired one
    timers.schedule("k3", "a", 100, {})  # a deadline already past: below the floor
    assert [t.key for t in timers.due(3_000)] == ["k3"]


def test_a_dropped_cancel_brings_its_timer_back_to_the_scan() -> None:
    timer_store = Store("t", 0, MemoryBackend())
    index = Store("i", 0, MemoryBackend())
    timers = Timers(timer_store, index)
    timers.schedule("k1", "a", 1_000, {})
    timer_store.end_message(ok=True)
    index.end_message(ok=True)
    timer_store.committed()
    index.committed()
    timers.cancel("k1", "a")  # in an open transaction...
    timer_store.end_message(ok=True)
    index.end_message(ok=True)
    assert list(timers.due(2_000)) == []  # ...the scan moves the floor past it
    timer_store.aborted()  # ...and then the transaction is aborted
    index.aborted()
    timers.reset_floor()  # what PartitionTask.aborted does
    assert [t.key for t in timers.due(2_000)] == ["k1"]


class CountingBackend(MemoryBackend):
    """Counts scans: each is an iterator over the store (a RocksDB seek in production)."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def scan(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        self.scans += 1
        return super().scan(start)


def test_a_partition_with_no_due_timer_costs_no_scan() -> None:
    backend = CountingBackend()
    timers = Timers(Store("t", 0, backend), Store("i", 0, MemoryBackend()))
    assert list(timers.due(1_000)) == []  # the first look learns that nothing is pending
    learnt = backend.scans
    for now in range(1_001, 1_100):
        assert list(timers.due(now)) == []
    assert backend.scans == learnt  # known: nothing to look for
    timers.schedule("k", "t", 1_500, {})
    assert list(timers.due(1_499)) == [] and backend.scans == learnt  # known: not yet
    [due] = list(timers.due(1_500))
    assert (due.key, due.deadline_ms) == ("k", 1_500)
    timers.cancel("k", "t")
    timers.schedule("k", "t", 1_200, {})  # earlier than anything known: lowers the hint
    assert [t.deadline_ms for t in timers.due(1_600)] == [1_200]
    timers.reset_floor()  # dropped writes: what is pending is unknown again
    scans = backend.scans
    list(timers.due(1_700))
    assert backend.scans > scans
