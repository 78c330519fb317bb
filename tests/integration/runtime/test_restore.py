"""Restoring local state from a changelog on the real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from choreograph.state.backends import RocksBackend
from choreograph.state.restore import RestoreJob, restore

pytestmark = pytest.mark.integration


def test_local_state_ahead_of_its_changelog_is_dropped_and_restored_anew(
    bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """After a cluster reset the recorded offset points past the new changelog's end; keeping the
    local state would serve values from a history that no longer exists."""
    changelog = new_topic("svc-store.changelog", 1, **{"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for key, value in ((b"a", b"1"), (b"b", b"2"), (b"a", b"3")):
        producer.produce(changelog, key=key, value=value, partition=0)
    producer.flush(10)
    backend = RocksBackend(tmp_path / "store" / "0")
    backend.write({b"ghost": b"from the old cluster", b"a": b"stale"})
    job = RestoreJob(changelog, 0, "s", backend, from_offset=99)

    restore({"bootstrap.servers": bootstrap_servers}, [job])

    assert dict(backend.scan()) == {b"a": b"3", b"b": b"2"}
    assert (job.cleared, job.restored, job.next_offset) == (True, 3, 3)
    backend.close()
    reopened = RocksBackend(tmp_path / "store" / "0")  # the clearing is on disk, not in memory
    assert reopened.get(b"ghost") is None and reopened.get(b"a") == b"3"
    assert reopened.applied() == 3  # and where it stands, with it
    reopened.close()


def test_a_store_at_its_changelog_end_restores_nothing(
    bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    changelog = new_topic("svc-store.changelog", 1, **{"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(changelog, key=b"a", value=b"1", partition=0)
    producer.flush(10)
    backend = RocksBackend(tmp_path / "store" / "0")
    backend.write({b"a": b"1", b"local": b"kept"})
    job = RestoreJob(changelog, 0, "s", backend, from_offset=1)

    restore({"bootstrap.servers": bootstrap_servers}, [job])

    assert (job.cleared, job.restored) == (False, 0)
    assert backend.get(b"local") == b"kept" and backend.applied() == 1
    backend.close()


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_a_transaction_still_open_on_the_changelog_is_waited_for(
    bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path, outcome: str
) -> None:
    """A partition handed over just after its previous owner committed: the commit's markers
    may not be written yet, so a read_committed consumer's end is before its records. The
    restore waits for the transaction to end and applies it (or, aborted, leaves it out)."""
    changelog = new_topic("svc-store.changelog", 1, **{"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": changelog})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(changelog, key=b"a", value=b"1", partition=0)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(changelog, key=b"a", value=b"2", partition=0)
    producer.produce(changelog, key=b"b", value=b"2", partition=0)
    producer.flush(10)
    ends = threading.Timer(
        2.0,
        lambda: (
            producer.commit_transaction(30)
            if outcome == "commit"
            else producer.abort_transaction(30)
        ),
    )
    ends.start()
    backend = RocksBackend(tmp_path / "store" / "0")
    job = RestoreJob(changelog, 0, "s", backend, from_offset=None)
    started = time.monotonic()

    restore({"bootstrap.servers": bootstrap_servers}, [job])

    ends.join()
    assert time.monotonic() - started >= 1.5  # it waited for the transaction's end
    expected = {b"a": b"2", b"b": b"2"} if outcome == "commit" else {b"a": b"1"}
    assert dict(backend.scan()) == expected
    assert backend.applied() == 5  # three records and two markers: past both transactions
    backend.close()
