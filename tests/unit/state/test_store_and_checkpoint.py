"""Store layers (message, transaction, committed), ordered scans, timers' byte order, and when a
checkpoint is trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from choreograph.runtime.timers import Timers
from choreograph.state import checkpoint as checkpoint_module
from choreograph.state.backends import MemoryBackend, RocksBackend
from choreograph.state.checkpoint import Checkpoint
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


def test_unsynced_checkpoint_is_trusted_only_until_the_machine_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = Checkpoint(tmp_path / "s.checkpoint")
    monkeypatch.setattr(checkpoint_module, "boot_id", lambda: "boot-1")
    cp.write(42, synced=False)
    assert cp.read() == 42  # process restart on the same boot
    monkeypatch.setattr(checkpoint_module, "boot_id", lambda: "boot-2")
    assert cp.read() is None  # after a reboot: full restore
    cp.write(43, synced=True)
    monkeypatch.setattr(checkpoint_module, "boot_id", lambda: "boot-3")
    assert cp.read() == 43  # synced checkpoints survive reboots


def test_missing_or_corrupt_checkpoint_means_full_restore(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "s.checkpoint")
    assert cp.read() is None
    cp.path.write_text("{not json")
    assert cp.read() is None


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
