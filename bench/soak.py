"""`python -m bench.soak`: the reference choreography at a steady rate for a long time.

The four team services and the saga tracker run as separate processes on the local stack (as
`make demo` runs them), with deadlines 60 times faster so timers fire all along. The shop places
orders at `--rate` per second for `--minutes`; every `--sample-s` seconds the bench prints, per
interval: resident memory of each process, consumer lag of every group, the tracker's deadline
lateness (p99 read off the engine's histogram buckets, an upper bound) and how many instances
are open. At the end it compares each process's memory over the last quarter of the run with
the second quarter and says which, if any, keeps growing.

A bench, not a timed test: it prints figures; its exit code is 1 only when a process exited.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from choreograph import AvroSerde, EventPublisher
from choreograph.testing.servers import resolve_servers
from choreograph_examples.demo import (
    REPO,
    Fleet,
    create_topics,
    plan,
    register_contracts,
    running,
    wait_until_ready,
    write_accelerated,
)

GROUPS = ("orders", "payments", "inventory", "shipping", "saga-tracker", "saga-tracker-router")
BUCKET = re.compile(
    r'^choreograph_timer_lateness_seconds_bucket\{[^}]*le="([^"]+)"[^}]*service="saga-tracker"'
    r"[^}]*\} ([0-9.e+]+)$|^choreograph_timer_lateness_seconds_bucket\{[^}]*service="
    r'"saga-tracker"[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)$'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sample:
    at: float
    rss_mb: dict[str, float]
    lag: dict[str, int]
    lateness_p99_s: float | None
    fired: float
    open_instances: int
    placed: int


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    buckets: dict[float, float] = field(default_factory=dict)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lags(bootstrap: str) -> dict[str, int]:
    """Records between each group's committed offsets and the partitions' ends."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-{uuid.uuid4().hex[:6]}"})
    found: dict[str, int] = {}
    try:
        for group in GROUPS:  # the client lists one group's offsets per request
            future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
            try:
                partitions = future[group].result(10).topic_partitions or []
            except Exception:
                continue
            total = 0
            for tp in partitions:
                if tp.offset < 0:
                    continue
                _, high = probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), 5)
                total += max(0, high - tp.offset)
            found[group] = total
    finally:
        probe.close()
    return found


def scrape(metrics_url: str) -> str:
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def lateness(text: str, soak: Soak) -> tuple[float | None, float]:
    """p99 lateness of the deadlines fired since the last sample, and how many fired."""
    now: dict[float, float] = {}
    for line in text.splitlines():
        match = BUCKET.match(line)
        if match:
            le = match.group(1) or match.group(3)
            value = match.group(2) or match.group(4)
            now[float("inf") if le == "+Inf" else float(le)] = float(value)
    delta = {le: n - soak.buckets.get(le, 0.0) for le, n in now.items()}
    soak.buckets = now
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return None, 0.0
    for le in sorted(delta):
        if delta[le] >= 0.99 * total:
            return le, total
    return None, total


def open_instances(text: str) -> int:
    """The tracker's own gauge of instances not yet ended."""
    for line in text.splitlines():
        if line.startswith('choreograph_saga_active_instances{process="order-fulfilment"}'):
            return int(float(line.split()[-1]))
    return 0


def report(soak: Soak, names: list[str]) -> None:
    print("\nmemory (MB) by process, median of each quarter of the run:")
    quarters = [soak.samples[i * len(soak.samples) // 4 : (i + 1) * len(soak.samples) // 4]
                for i in range(4)]  # fmt: skip
    for name in names:
        medians = []
        for quarter in quarters:
            values = sorted(s.rss_mb.get(name, 0.0) for s in quarter)
            medians.append(values[len(values) // 2] if values else 0.0)
        growth = (medians[3] - medians[1]) / medians[1] * 100 if medians[1] else 0.0
        verdict = "grows" if growth > 20 else "steady"
        print(f"  {name:14} " + " ".join(f"{m:7.1f}" for m in medians) +
              f"   {growth:+5.1f}% (2nd -> 4th quarter): {verdict}")  # fmt: skip
    # The first interval holds what the tracker found overdue at start (deadlines of instances an
    # earlier run on the same topics left open): it says nothing about the steady state.
    fired = [s for s in soak.samples[1:] if s.lateness_p99_s is not None]
    worst = max((s.lateness_p99_s or 0.0 for s in fired), default=0.0)
    print(f"deadline lateness p99 per interval after the first: worst {worst:.2f} s over "
          f"{len(fired)} intervals")  # fmt: skip
    most = {g: max(s.lag.get(g, 0) for s in soak.samples) for g in GROUPS}
    print("largest lag seen: " + ", ".join(f"{g} {n}" for g, n in most.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to place orders")
    parser.add_argument("--rate", type=float, default=20.0, help="orders placed per second")
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--speed", type=float, default=60.0, help="how much faster deadlines run")
    args = parser.parse_args(argv)
    servers = resolve_servers(REPO)
    register_contracts(servers.registry_url)
    partitions = create_topics(servers.bootstrap, 3)
    soak = Soak()
    with TemporaryDirectory(prefix="soak-") as folder:
        state = Path(folder)
        definitions = state / "processes"
        write_accelerated(definitions, args.speed)
        port, tracker_metrics = free_port(), free_port()
        api = f"http://127.0.0.1:{port}"
        with running(
            servers, state, definitions, partitions, port,
            metrics_ports={"saga-tracker": tracker_metrics},
        ) as fleet:  # fmt: skip
            wait_until_ready(AdminClient({"bootstrap.servers": servers.bootstrap}), fleet, api,
                             state)  # fmt: skip
            publisher = EventPublisher(
                {"bootstrap.servers": servers.bootstrap}, AvroSerde(servers.registry_url), "shop"
            )
            names = [name for name, _, _ in fleet.children]
            print(f"soak: {args.rate:.0f} orders/s for {args.minutes:.0f} min, a sample every "
                  f"{args.sample_s:.0f} s")  # fmt: skip
            print(f"{'min':>5} {'placed':>7} {'open':>5} {'p99 late s':>10} "
                  + " ".join(f"{n[:9]:>9}" for n in names) + "  lag")  # fmt: skip
            return run(args, fleet, publisher, api, tracker_metrics, soak, names, servers.bootstrap)
    return 0


def run(
    args: argparse.Namespace,
    fleet: Fleet,
    publisher: EventPublisher,
    api: str,
    metrics_port: int,
    soak: Soak,
    names: list[str],
    bootstrap: str,
) -> int:
    started = time.monotonic()
    end = started + args.minutes * 60
    next_sample = started + args.sample_s
    placed = 0
    batch = plan(200, uuid.uuid4().hex[:6])
    while time.monotonic() < end:
        try:
            fleet.check()
        except SystemExit as exited:
            print(f"soak: {exited}")
            return 1
        if not batch:
            batch = plan(200, uuid.uuid4().hex[:6])  # one stalled payment in every 200
        order = batch.pop(0)
        publisher.publish(order.order, order.order_id, topic="orders.events")
        placed += 1
        publisher.producer.poll(0)
        behind = started + placed / args.rate - time.monotonic()
        if behind > 0:
            time.sleep(behind)
        if time.monotonic() >= next_sample:
            next_sample += args.sample_s
            publisher.flush()
            pids = {name: proc.pid for name, proc, _ in fleet.children}
            text = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            sample = Sample(
                time.monotonic() - started,
                {name: rss_mb(pid) for name, pid in pids.items()},
                lags(bootstrap),
                *lateness(text, soak),
                open_instances(text),
                placed,
            )
            soak.samples.append(sample)
            late = "-" if sample.lateness_p99_s is None else f"{sample.lateness_p99_s:.2f}"
            print(f"{sample.at / 60:5.1f} {placed:7} {sample.open_instances:5} {late:>10} "
                  + " ".join(f"{sample.rss_mb[n]:9.1f}" for n in names)
                  + "  " + " ".join(f"{g}={n}" for g, n in sample.lag.items() if n),
                  flush=True)  # fmt: skip
    publisher.flush()
    if len(soak.samples) >= 4:
        report(soak, names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
