"""Records known to fail: a crash marker survives the process, is found by the next owner of the
partition, and is removed only once the dead letter is committed past it."""

from __future__ import annotations

from pathlib import Path

from choreograph.runtime.poisoned import PoisonedRecords


def test_a_crash_marker_is_found_by_the_next_owner_and_removed_once_committed_past(
    tmp_path: Path,
) -> None:
    def directory(partition: int) -> Path:
        return tmp_path / str(partition)

    crashed = PoisonedRecords(directory)
    crashed.leave_marker(("orders", 2, 41), RuntimeError("handler exited"))

    next_owner = PoisonedRecords(directory)
    assert not next_owner
    next_owner.load(2)
    doomed = next_owner.get("orders", 2, 41)
    assert doomed is not None and "handler exited" in str(doomed)
    assert next_owner.get("orders", 2, 42) is None

    next_owner.committed({("orders", 2): 41})  # not yet past it
    assert next_owner.get("orders", 2, 41) is not None
    assert list((tmp_path / "2").iterdir())
    next_owner.committed({("orders", 2): 42})
    assert not next_owner
    assert not list((tmp_path / "2").iterdir())  # marker gone from disk too


def test_a_revoked_partition_forgets_its_records_but_leaves_markers_for_the_next_owner(
    tmp_path: Path,
) -> None:
    def directory(partition: int) -> Path:
        return tmp_path / str(partition)

    records = PoisonedRecords(directory)
    records.leave_marker(("orders", 0, 5), ValueError("bad"))
    records.load(0)
    records.unproducible("orders", 1, 9, "record too large")
    records.forget_partition(0)
    assert records.get("orders", 0, 5) is None
    assert records.get("orders", 1, 9) is not None
    again = PoisonedRecords(directory)
    again.load(0)
    assert again.get("orders", 0, 5) is not None
