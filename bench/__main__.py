"""`python -m bench`: throughput of the same stateful workload across stream processors.

One Avro input topic is loaded once; each contender then runs as its own process on the same
broker, in the same run, reading all of it with its own consumer group. Throughput is measured from
outside and the same way for all: the contender's committed input offsets, sampled every 100 ms,
from its first commit to the last (start-up, group join and restore are excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.workload import Tick, topics
from choreograph.contracts.envelope import Envelope
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.partitioning import java_compatible
from choreograph.testing.servers import resolve_servers

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Contender:
    name: str
    slug: str
    module: str
    extra: tuple[str, ...] = ()


CONTENDERS = [
    Contender(
        "raw confluent-kafka passthrough (ceiling)", "raw", "bench.contenders.raw_passthrough"
    ),
    Contender(
        "hand-written exactly-once (100 ms commits)",
        "hand-eos",
        "bench.contenders.hand_written",
        ("--commit-interval", "0.1"),
    ),
    Contender(
        "hand-written exactly-once, 1 s commits",
        "hand-eos-1s",
        "bench.contenders.hand_written",
        ("--commit-interval", "1"),
    ),
    Contender(
        "choreograph exactly-once",
        "chor-eos",
        "bench.workload.service",
        ("--guarantee", "exactly_once"),
    ),
    Contender(
        "choreograph exactly-once, 1 s commits",
        "chor-eos-1s",
        "bench.workload.service",
        ("--guarantee", "exactly_once", "--commit-interval-ms", "1000"),
    ),
    Contender(
        "choreograph at-least-once",
        "chor-alos",
        "bench.workload.service",
        ("--guarantee", "at_least_once"),
    ),
    Contender("quixstreams exactly-once", "quix-eos", "bench.contenders.quix_tally"),
    Contender("faust-streaming exactly-once", "faust-eos", "bench.contenders.faust_tally"),
]


# (ours, anchor) pairs compared at the same commit interval.
ANCHORS = [
    ("choreograph exactly-once", "hand-written exactly-once (100 ms commits)"),
    ("choreograph exactly-once, 1 s commits", "hand-written exactly-once, 1 s commits"),
    ("choreograph exactly-once, 1 s commits", "quixstreams exactly-once"),
    ("choreograph exactly-once, 1 s commits", "faust-streaming exactly-once"),
    ("choreograph at-least-once", "hand-written exactly-once (100 ms commits)"),
]


def load(bootstrap: str, registry: str, topic: str, events: int, keys: int) -> None:
    from confluent_kafka import Producer

    serde = AvroSerde(registry, auto_register=True)
    producer = Producer(
        java_compatible(
            {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
        )
    )
    for i in range(events):
        key = f"k{i % keys}"
        tick = Tick(id=f"{i}", key=key, seq=i // keys, amount=1)
        headers = Envelope.new("bench.workload.Tick", "bench", key).to_headers()
        while True:
            try:
                producer.produce(topic, serde.serialize(tick, topic), key.encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def drop_topics(admin: AdminClient, prefix: str) -> None:
    """Delete the run's topics: a broker that keeps thousands restarts slowly."""
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    for future in admin.delete_topics(mine, operation_timeout=60).values() if mine else []:
        with contextlib.suppress(Exception):
            future.result(120)


def committed(admin: AdminClient, group: str, topic: str, partitions: int) -> int:
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(partitions)]
    )
    try:
        result = admin.list_consumer_group_offsets([request])[group].result(10)
    except Exception:
        return 0
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    rate: float | None  # events/s
    cpu_us: float | None = None  # CPU time of the contender's process per event, microseconds
    why: str = ""


def committed_rate(
    admin: AdminClient,
    group: str,
    topic: str,
    partitions: int,
    total: int,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    cpu: Callable[[], float] = lambda: 0.0,
) -> Result:
    """Events/s of `group` over `topic`, from its committed offsets sampled every 100 ms, from
    its first commit to the one that reaches `total`, and the CPU time it spent per event over
    the same window. Without a rate, says why: "exited", "one sample" (finished too fast to
    measure) or "timeout"."""
    first_at = first_count = None
    first_cpu = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return Result(None, why="exited")
        done = committed(admin, group, topic, partitions)
        now = time.monotonic()
        if done and first_at is None:
            first_at, first_count, first_cpu = now, done, cpu()
        if done >= total:
            if first_at is None or first_count is None or now - first_at < 0.5:
                return Result(None, why="one sample")
            events = done - first_count
            return Result(events / (now - first_at), (cpu() - first_cpu) / events * 1e6)
        time.sleep(0.1)
    return Result(None, why="timeout")


def measure(
    contender: Contender,
    args: argparse.Namespace,
    servers: tuple[str, str],
    prefix: str,
    admin: AdminClient,
    state: Path,
    source: str | None = None,
) -> Result:
    """Events/s of `contender` over `source` (default: the workload's input topic)."""
    source = source or topics(prefix)[0]
    slug = contender.slug
    group, sink = f"{prefix}-{slug}", f"{prefix}.{slug}.out"
    admin.create_topics([NewTopic(sink, num_partitions=args.partitions, replication_factor=1)])[
        sink
    ].result(30)
    cmd = [
        sys.executable,
        "-m",
        contender.module,
        "--input",
        source,
        "--output",
        sink,
        "--group",
        group,
        "--bootstrap",
        servers[0],
        "--registry",
        servers[1],
        "--prefix",
        prefix,
        "--name",
        group,
        "--sink",
        sink,
        "--instance",
        "bench",
        "--state-dir",
        str(state / slug),
        "--log-level",
        "WARNING",
        *contender.extra,
    ]
    env = {
        **os.environ,
        "CHOREOGRAPH_BOOTSTRAP": servers[0],
        "CHOREOGRAPH_REGISTRY_URL": servers[1],
    }
    log = (state / f"{slug}.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        result = committed_rate(
            admin,
            group,
            source,
            args.partitions,
            args.events,
            args.timeout,
            alive=lambda: proc.poll() is None,
            cpu=lambda: cpu_seconds(proc.pid),
        )
        why = result.why
        if why == "exited":
            tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-5:]
            print(f"  {contender.name}: exited with {proc.returncode}:", *tail, sep="\n    ")
        elif why == "one sample":
            print(f"  {contender.name}: finished within one sample; raise --events")
        elif why == "timeout":
            print(f"  {contender.name}: did not finish in {args.timeout}s; see {log.name}")
        return result
    finally:
        proc.kill()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--only", help="comma-separated substrings of contender names")
    args = parser.parse_args()
    found = resolve_servers(REPO)
    servers = (found.bootstrap, found.registry_url)
    admin = AdminClient({"bootstrap.servers": servers[0]})
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    source, _ = topics(prefix)
    admin.create_topics([NewTopic(source, num_partitions=args.partitions, replication_factor=1)])[
        source
    ].result(30)
    started = time.monotonic()
    load(servers[0], servers[1], source, args.events, args.keys)
    print(
        f"loaded {args.events} Avro events ({args.keys} keys, {args.partitions} partitions) "
        f"into {source} in {time.monotonic() - started:.1f}s"
    )
    chosen = [
        c for c in CONTENDERS if not args.only or any(s in c.name for s in args.only.split(","))
    ]
    results: dict[str, float | None] = {}
    with TemporaryDirectory(prefix="choreograph-bench-") as tmp:
        for contender in chosen:
            result = measure(contender, args, servers, prefix, admin, Path(tmp))
            results[contender.name] = result.rate
            shown = f"{result.rate:>9,.0f} events/s" if result.rate else "no result"
            cpu = f"{result.cpu_us:6.1f} µs CPU/event" if result.cpu_us else ""
            print(f"  {contender.name:45s} {shown}  {cpu}")
    drop_topics(admin, prefix)
    ceiling = results.get(CONTENDERS[0].name)
    print("\nratios")
    for name, rate in results.items():
        if rate and ceiling:
            print(f"  {name:45s} {rate / ceiling:6.1%} of ceiling")
    for ours, anchor in ANCHORS:
        mine, theirs = results.get(ours), results.get(anchor)
        if mine and theirs:
            print(f"  {ours} vs {anchor}: {mine / theirs:5.2f}x")


if __name__ == "__main__":
    main()
