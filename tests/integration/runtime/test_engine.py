"""The engine on the real broker: exactly-once tallies, restart from local state, retries, DLQ,
wall-clock timers, and DLQ replay."""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.workload import topics

from choreograph.cli.main import main as cli
from choreograph.runtime.dlq import read_dead_letters, summary
from tests.workload_harness import (
    assert_exactly_once,
    create_workload_topics,
    make_ticks,
    produce,
    read_tallies,
    running_engine,
    sample,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(new_topic: Callable[..., str], admin: object) -> str:
    return create_workload_topics(admin, partitions=3, letter="t")


def test_tallies_exactly_once_and_restart_resumes_from_local_state(
    prefix: str, bootstrap_servers: str, registry_url: str, tmp_path: Path
) -> None:
    source, sink = topics(prefix)
    first = make_ticks(keys=12, per_key=25)
    produce(bootstrap_servers, registry_url, source, first)
    with running_engine(prefix, tmp_path) as engine:
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(first))
    assert_exactly_once(first, tallies)
    assert (
        sample(engine, "choreograph_events_total", type="bench.workload.Tick", outcome="ok") == 300
    )
    assert sample(engine, "choreograph_commits_total") >= 1

    second = make_ticks(keys=12, per_key=5)
    produce(bootstrap_servers, registry_url, source, second)
    with running_engine(prefix, tmp_path) as restarted:
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(first) + len(second))
    assert_exactly_once(first + second, tallies)
    # Each store recorded its changelog offset with its data: restart replayed nothing.
    assert sample(restarted, "choreograph_restore_records_total", store="tallies") == 0


def test_lost_local_state_is_restored_from_the_changelog(
    prefix: str, bootstrap_servers: str, registry_url: str, tmp_path: Path
) -> None:
    source, sink = topics(prefix)
    first = make_ticks(keys=6, per_key=10)
    produce(bootstrap_servers, registry_url, source, first)
    with running_engine(prefix, tmp_path / "disk-1"):
        read_tallies(bootstrap_servers, registry_url, sink, len(first))
    second = make_ticks(keys=6, per_key=2)
    produce(bootstrap_servers, registry_url, source, second)
    with running_engine(prefix, tmp_path / "disk-2") as fresh:  # a new machine, empty disk
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(first) + len(second))
    assert_exactly_once(first + second, tallies)
    # One latest value per key at least, one per input at most (before compaction).
    assert 6 <= sample(fresh, "choreograph_restore_records_total", store="tallies") <= 60


def test_retries_then_dlq_without_blocking_other_partitions(
    prefix: str,
    bootstrap_servers: str,
    registry_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, sink = topics(prefix)
    ok = make_ticks(keys=9, per_key=4)
    flaky = make_ticks(keys=2, per_key=1, behaviour="flaky", key_prefix="f")
    poison = make_ticks(keys=1, per_key=1, behaviour="poison", key_prefix="p")
    produce(bootstrap_servers, registry_url, source, poison + flaky + ok)
    from confluent_kafka import Producer

    raw = Producer({"bootstrap.servers": bootstrap_servers})
    raw.produce(source, key=b"m1", value=b"not avro", headers=[("ce_type", b"bench.workload.Tick")])
    raw.flush(10)

    with running_engine(prefix, tmp_path) as engine:
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(ok) + len(flaky))
        deadline = time.monotonic() + 30
        while (
            sample(engine, "choreograph_dlq_total", reason="retries-exhausted") < 1
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
    assert_exactly_once(ok + flaky, tallies)
    assert sample(engine, "choreograph_retries_total") >= 4  # 2 flaky once, poison twice
    assert sample(engine, "choreograph_dlq_total", reason="retries-exhausted") == 1
    assert sample(engine, "choreograph_dlq_total", reason="contract") == 1

    dead = {
        r.header("dlq_reason"): r
        for _, r in read_dead_letters(bootstrap_servers, f"{prefix}-tally.dlq")
    }
    assert set(dead) == {"contract", "retries-exhausted"}
    exhausted = dead["retries-exhausted"]
    assert (
        exhausted.header("dlq_origin_topic") == source and exhausted.header("dlq_attempts") == "3"
    )
    assert "poison input" in (exhausted.header("dlq_error_message") or "")
    assert exhausted.key == b"p0" and exhausted.header("ce_type") == "bench.workload.Tick"
    assert summary(dead["contract"])["error_class"].startswith("choreograph.")

    assert (
        cli(["dlq", "inspect", "--service", f"{prefix}-tally", "--bootstrap", bootstrap_servers])
        == 0
    )
    assert "poison input" in capsys.readouterr().out
    assert (
        cli(["dlq", "replay", "--service", f"{prefix}-tally", "--bootstrap", bootstrap_servers])
        == 0
    )
    assert "replayed 2" in capsys.readouterr().out
    assert (
        cli(["dlq", "replay", "--service", f"{prefix}-tally", "--bootstrap", bootstrap_servers])
        == 0
    )
    assert "replayed 0" in capsys.readouterr().out  # already replayed ones are not sent twice


def test_timers_fire_on_wall_clock_never_early(
    prefix: str, bootstrap_servers: str, registry_url: str, tmp_path: Path
) -> None:
    source, sink = topics(prefix)
    ticks = make_ticks(keys=20, per_key=1, behaviour="timer")
    poison = make_ticks(keys=1, per_key=1, behaviour="timer-poison", key_prefix="tp")
    port = free_port()
    with running_engine(prefix, tmp_path, metrics_port=port) as engine:
        sent_at = time.time()
        produce(bootstrap_servers, registry_url, source, ticks + poison)
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(ticks))
        elapsed = time.time() - sent_at
        deadline = time.monotonic() + 20
        while sample(engine, "choreograph_dlq_total", reason="timer-failed") < 1:
            assert time.monotonic() < deadline, "failing timer never reached the DLQ"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
            exposition = reply.read().decode()
    assert_exactly_once(ticks, tallies)
    assert elapsed >= 1.0
    assert sample(engine, "choreograph_timers_fired_total") == 20
    fired = sample(engine, "choreograph_timer_lateness_seconds_count")
    within = sample(engine, "choreograph_timer_lateness_seconds_bucket", le="0.5")
    assert fired == 20 and within == 20  # every timer within 0.5 s of its deadline
    [(_, dead)] = list(read_dead_letters(bootstrap_servers, f"{prefix}-tally.dlq"))
    assert (dead.key, dead.header("dlq_reason"), dead.header("dlq_timer")) == (
        b"tp0",
        "timer-failed",
        "answer",
    )
    assert dead.header("dlq_attempts") == "3" and dead.header("dlq_origin_topic") is None
    assert "poison timer" in (dead.header("dlq_error_message") or "")
    for metric in (
        "choreograph_events_total",
        "choreograph_handler_seconds_bucket",
        "choreograph_timer_lateness_seconds_bucket",
        "choreograph_commits_total",
        "choreograph_assigned_partitions",
    ):
        assert f"{metric}{{" in exposition, metric


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_output_over_its_topics_own_limit_is_dead_lettered_and_the_rest_flows(
    bootstrap_servers: str, registry_url: str, admin: object, tmp_path: Path
) -> None:
    """The sink topic takes at most 4,000 bytes per record (its `max.message.bytes`, below the
    producer's 1,000,000): a tick whose tally would be larger goes to the DLQ as `too-large`
    before anything is produced, and every other tick is tallied exactly once."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    assert isinstance(admin, AdminClient)
    name = f"t{uuid.uuid4().hex[:8]}"
    source, sink = topics(name)
    admin.create_topics([NewTopic(source, 2, 1)])[source].result(30)
    admin.create_topics([NewTopic(sink, 2, 1, config={"max.message.bytes": "4000"})])[sink].result(
        30
    )
    ticks = make_ticks(keys=5, per_key=20)
    big = make_ticks(keys=1, per_key=1, key_prefix="big")[0].model_copy(update={"id": "x" * 6000})
    produce(bootstrap_servers, registry_url, source, [*ticks[:50], big, *ticks[50:]])
    with running_engine(name, tmp_path) as engine:
        tallies = read_tallies(bootstrap_servers, registry_url, sink, len(ticks), timeout=90)
        assert sample(engine, "choreograph_dlq_total", reason="too-large") == 1
    assert_exactly_once(ticks, tallies)
    [(_, dead)] = list(read_dead_letters(bootstrap_servers, f"{name}-tally.dlq"))
    assert dead.key == b"big0" and dead.header("dlq_reason") == "too-large"
    assert "over its limit of 4000" in (dead.header("dlq_error_message") or "")
