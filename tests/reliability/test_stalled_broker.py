"""A broker that stalls (SIGSTOP: connections open, nothing answers) in the middle of a
rebalance. The revoke waits for the commit of the open transaction only as long as its bound,
so the rebalance is never held past it; the work is then redone, exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.workload import topics
from bench.workload.service import build, config
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from choreograph.runtime.engine import Engine
from choreograph.testing.servers import Servers
from tests.reliability.choreography import require_local_stack, stack
from tests.workload_harness import (
    assert_exactly_once,
    create_workload_topics,
    engine_thread,
    make_ticks,
    produce,
    read_tallies,
    running_engine,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REVOKE_BOUND_S = 3.0


@pytest.fixture
def prefix(admin: AdminClient) -> Iterator[str]:
    yield create_workload_topics(admin, partitions=4)


def test_a_revoke_under_a_stalled_broker_ends_within_its_bound(
    servers: Servers, prefix: str, tmp_path: Path
) -> None:
    require_local_stack(servers)
    endpoints = (servers.bootstrap, servers.registry_url)
    source, sink = topics(prefix)
    ticks = make_ticks(keys=40, per_key=50)  # 2000 inputs
    produce(*endpoints, source, ticks)
    revokes: list[tuple[int, float]] = []  # partitions revoked, seconds the callback took

    # Long commit intervals: when the second instance joins, the first holds uncommitted work
    # its revoke must commit. The broker stalls the moment that revoke starts.
    slow_commits: dict[str, Any] = {
        "commit_interval_ms": 60_000,
        "revoke_timeout_s": REVOKE_BOUND_S,
    }
    first = Engine(build(prefix), config("a", tmp_path / "a", **slow_commits))
    original = first._on_revoke
    armed = threading.Event()  # set once the first instance holds uncommitted work

    def stalled_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not armed.is_set() or revokes or not partitions:
            original(consumer, partitions)
            return
        stack("pause", "kafka")
        started = time.monotonic()
        try:
            original(consumer, partitions)
        finally:
            revokes.append((len(partitions), time.monotonic() - started))
            stack("resume", "kafka")

    first._on_revoke = stalled_revoke  # type: ignore[method-assign]  # bound when it joins
    with engine_thread(first):
        handled = time.monotonic() + 60
        while not (first.positions and first.txn.open) and time.monotonic() < handled:
            time.sleep(0.1)
        assert first.positions, "the first instance handled nothing in 60 s"
        armed.set()
        with running_engine(prefix, tmp_path / "b", "b", commit_interval_ms=200):
            waited = time.monotonic() + 120
            while not revokes and time.monotonic() < waited:
                time.sleep(0.2)
            assert revokes, "no partition was revoked from the first instance"
            tallies = read_tallies(*endpoints, sink, len(ticks), timeout=240)
    partitions, took = revokes[0]
    print(f"revoke of {partitions} partitions under a stalled broker took {took:.1f} s")
    assert took <= REVOKE_BOUND_S + 1.0, took  # its bound, and a second for scheduling
    assert_exactly_once(ticks, tallies)
