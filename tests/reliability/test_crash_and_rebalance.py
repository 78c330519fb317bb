"""Exactly-once under failure, with real processes on the real broker.

kill -9 of a processor mid-stream under load, then restart; and two instances rebalancing under
load (one joins, one leaves). Proof in both: read_committed, every input produced exactly one
output and per-key counts and totals match the inputs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.workload import topics
from bench.workload.process import ServiceProcess
from confluent_kafka.admin import AdminClient

from tests.workload_harness import (
    assert_exactly_once,
    create_workload_topics,
    make_ticks,
    produce,
    read_tallies,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def load_in_background(
    servers: tuple[str, str], topic: str, ticks: list[Any], seconds: float
) -> threading.Thread:
    """Produce `ticks` spread over `seconds`, so failures land mid-stream."""
    chunks = 20
    size = max(1, len(ticks) // chunks)

    def run() -> None:
        for i in range(0, len(ticks), size):
            produce(servers[0], servers[1], topic, ticks[i : i + size])
            time.sleep(seconds / chunks)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def prefix(admin: AdminClient) -> Iterator[str]:
    """Topics of one test; afterwards any of its service processes still running are killed,
    so a test that fails part-way leaves nothing behind."""
    name = create_workload_topics(admin, partitions=4)
    yield name
    subprocess.run(["pkill", "-KILL", "-f", f"bench.workload.service --prefix {name} "])


@pytest.fixture
def endpoints(bootstrap_servers: str, registry_url: str) -> tuple[str, str]:
    return bootstrap_servers, registry_url


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    prefix: str, endpoints: tuple[str, str], tmp_path: Path
) -> None:
    """A backlog keeps the processor busy, so each kill lands with work uncommitted."""
    source, sink = topics(prefix)
    ticks = make_ticks(keys=50, per_key=400)  # 20000 inputs
    produce(endpoints[0], endpoints[1], source, ticks[:8000])
    loader = load_in_background(endpoints, source, ticks[8000:], seconds=6)
    for _ in range(2):
        victim = ServiceProcess(prefix, "a", tmp_path, endpoints, protocol="classic")
        wait_for(lambda v=victim: v.logged('"msg": "assigned"'), 60, "assignment")
        time.sleep(2.5)
        victim.kill()
        victim.log.rename(victim.log.with_suffix(f".{time.monotonic_ns()}.log"))
    survivor = ServiceProcess(prefix, "a", tmp_path, endpoints, protocol="classic")
    loader.join(120)
    tallies = read_tallies(endpoints[0], endpoints[1], sink, len(ticks), timeout=180)
    assert survivor.terminate() == 0
    assert_exactly_once(ticks, tallies)
    # Local state records its changelog offset with its data, so after a kill -9 the survivor
    # replays at most the one commit the kill may have cut between the broker and the disk:
    # one changelog record per key it changed (50 keys), not the whole changelog.
    restored = [
        json.loads(line)["records"]
        for line in survivor.log.read_text().splitlines()
        if '"msg": "restored"' in line
    ]
    assert restored and sum(restored) <= 50, restored


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_two_instances_rebalancing_under_load(
    prefix: str, endpoints: tuple[str, str], tmp_path: Path, protocol: str
) -> None:
    source, sink = topics(prefix)
    ticks = make_ticks(keys=40, per_key=150)
    a = ServiceProcess(prefix, "a", tmp_path / "a", endpoints, protocol=protocol)
    wait_for(lambda: a.logged('"msg": "assigned"'), 60, "first assignment")
    loader = load_in_background(endpoints, source, ticks, seconds=10)
    time.sleep(3)
    b = ServiceProcess(
        prefix, "b", tmp_path / "b", endpoints, protocol=protocol
    )  # joins: partitions move to b
    wait_for(lambda: b.logged('"msg": "assigned"'), 60, "b's assignment")
    time.sleep(3)
    assert a.terminate() == 0  # leaves gracefully: its partitions move back to b
    loader.join(120)
    tallies = read_tallies(endpoints[0], endpoints[1], sink, len(ticks), timeout=120)
    assert b.terminate() == 0
    assert_exactly_once(ticks, tallies)
    assert a.logged('"msg": "revoked"') and b.logged('"msg": "restored"')


def test_frozen_instance_is_fenced_when_it_wakes_up_as_a_zombie(
    prefix: str, endpoints: tuple[str, str], tmp_path: Path
) -> None:
    """SIGSTOP one instance past its session timeout: the other takes its partitions; when the
    frozen one resumes, its open transaction must not land and its partitions are lost."""
    source, sink = topics(prefix)
    ticks = make_ticks(keys=40, per_key=150)
    owns = '"msg": "assigned", "partitions": ["'  # a non-empty assignment
    a = ServiceProcess(prefix, "a", tmp_path / "a", endpoints, protocol="classic")
    wait_for(lambda: a.logged(owns), 60, "a owning partitions")
    b = ServiceProcess(prefix, "b", tmp_path / "b", endpoints, protocol="classic")
    wait_for(lambda: b.logged(owns), 60, "b owning partitions")  # cooperative: a keeps the rest
    produce(
        endpoints[0], endpoints[1], source, ticks[:3000]
    )  # a backlog: work in flight at the stop
    loader = load_in_background(endpoints, source, ticks[3000:], seconds=20)
    time.sleep(1)
    a.proc.send_signal(signal.SIGSTOP)
    time.sleep(16)  # session timeout is 10 s: b takes over a's partitions
    a.proc.send_signal(signal.SIGCONT)
    loader.join(120)
    tallies = read_tallies(endpoints[0], endpoints[1], sink, len(ticks), timeout=180)
    assert a.terminate() == 0 and b.terminate() == 0
    assert a.logged('"msg": "lost"')  # the scenario happened: a woke up without its partitions
    assert_exactly_once(ticks, tallies)


def test_a_record_that_crashes_the_process_is_dead_lettered_after_the_restart(
    prefix: str, endpoints: tuple[str, str], tmp_path: Path
) -> None:
    """No record stops a service for good: the crash leaves a poison marker in the
    partition's state directory, and the restarted process dead-letters that record and goes on."""
    source, sink = topics(prefix)
    before, after = make_ticks(keys=4, per_key=25), make_ticks(keys=4, per_key=25, key_prefix="m")
    crash = make_ticks(keys=1, per_key=1, behaviour="crash", key_prefix="c")
    produce(endpoints[0], endpoints[1], source, before + crash + after)
    first = ServiceProcess(prefix, "a", tmp_path, endpoints, protocol="classic")
    assert first.proc.wait(120) != 0  # it crashed
    assert first.logged("crashed on a record; it will be dead-lettered on restart")
    marks = list(tmp_path.glob(f"{prefix}-tally/*/poison.json"))
    assert len(marks) == 1
    first.log.rename(first.log.with_suffix(".crashed.log"))
    second = ServiceProcess(prefix, "a", tmp_path, endpoints, protocol="classic")
    tallies = read_tallies(endpoints[0], endpoints[1], sink, len(before + after), timeout=120)
    # The outputs can all be there before the crashing record's partition is reached (no later
    # input of the test need share it): wait for its dead letter itself.
    wait_for(lambda: second.logged('"reason": "crashed"'), 60, "the crashed record's letter")
    assert second.terminate() == 0
    assert_exactly_once(before + after, tallies)
    assert not marks[0].exists()  # removed once its dead letter was committed
