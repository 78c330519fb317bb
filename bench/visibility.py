"""Visibility store with a million instances: indexing rate from a real changelog, and the trace
API's latency over HTTP.

1. Writes `--instances` tracker instances (steps and a timeline, as the tracker stores them) to a
   fresh changelog topic, as the tracker's commits would.
2. Runs the indexer over it into a fresh store (SQLite, and PostgreSQL when reachable) until it
   has read to the end: records per second, against the tracker's 12k events/s target (each
   tracked event changes one instance, so one changelog record at most).
3. Serves the store over HTTP and measures, with `--clients` concurrent clients, list-by-status
   (first and second page), get-by-business-key, get-by-id, and the searches of repair at scale:
   by a search attribute (a customer among 10,000), by an attribute and a status, by the step an
   instance is at, and the totals (count and value per status and step) of one customer: p50
   and p99 in milliseconds, against the 50 ms target.

    PYTHONPATH=.:services .venv/bin/python -m bench.visibility [--instances 1000000]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.__main__ import drop_topics
from choreograph.state.store import encode_value
from choreograph.testing.servers import resolve_servers
from saga_tracker.codec import encode
from saga_tracker.instance import Instance, StepState, TimelineEntry
from saga_tracker.traces import TraceServer
from saga_tracker.visibility.indexer import Indexer
from saga_tracker.visibility.store import VisibilityStore, VisibilityUnavailable

REPO = Path(__file__).resolve().parents[1]
STATUSES = ("running", "completed", "compensated", "failed")
TRACKER_TARGET = 12_000  # events/s the tracker is to reach
LATENCY_TARGET_MS = 50.0
POSTGRES = "postgresql://choreograph:choreograph@127.0.0.1:15432/choreograph"


CUSTOMERS = 10_000
REGIONS = ("eu-west", "eu-north", "us-east", "us-west", "apac")
STEPS = ("payment", "reservation", "shipping")


def instance(i: int, t0: datetime) -> Instance:
    started = t0 + timedelta(milliseconds=i * 37)
    status = STATUSES[i % 4] if i % 10 else "running"
    corr = str(uuid.UUID(int=i))
    at = STEPS[i % 3] if status == "running" else None  # a running instance is at a step
    steps = {
        name: StepState(
            name=name,
            status="running" if name == at else "completed",
            started_at=started,
            ended_at=None if name == at else started,
        )
        for name in STEPS
    }
    timeline = [
        TimelineEntry(
            at=started + timedelta(seconds=n),
            kind="event",
            event_type=kind,
            event_id=str(uuid.UUID(int=i * 8 + n)),
            causation_id=None,
            source="bench",
            step=None,
            note="",
        )
        for n, kind in enumerate(
            ("com.acme.orders.OrderPlaced", "com.acme.payments.PaymentAuthorized",
             "com.acme.inventory.StockReserved", "com.acme.shipping.ShipmentDispatched")
        )
    ]  # fmt: skip
    return Instance(
        correlation_id=corr,
        process="order-fulfilment",
        version=1,
        business_key=f"o-{i}",
        started_at=started,
        status=status,  # type: ignore[arg-type]
        steps=steps,
        timeline=timeline,
        open_incidents={"payment-timeout": "page"} if i % 97 == 0 else {},
        value=float(i % 500),
        attributes={
            "customer_id": f"cust-{i % CUSTOMERS}",
            "total": float(i % 500),
            "region": REGIONS[i % len(REGIONS)],
        },
    )


def load(bootstrap: str, topic: str, count: int, t0: datetime) -> float:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    started = time.monotonic()
    for i in range(count):
        inst = instance(i, t0)
        value = encode_value(encode(inst))
        key = f"{inst.correlation_id}/{inst.process}".encode()
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.monotonic() - started


def index(store: VisibilityStore, bootstrap: str, topic: str, count: int) -> float:
    indexer = Indexer(store, {"bootstrap.servers": bootstrap}, {topic: "instances"}, batch=5000)
    thread = threading.Thread(target=indexer.run, daemon=True)
    started = time.monotonic()
    thread.start()
    while not (indexer.at_end.is_set() and indexer.indexed >= count):
        time.sleep(0.2)
    took = time.monotonic() - started
    indexer.stop()
    thread.join(30)
    return count / took


def latencies(url: str, count: int, clients: int, seconds: float) -> dict[str, list[float]]:
    """Per request kind, milliseconds, from `clients` threads for `seconds`."""
    found: dict[str, list[float]] = {
        kind: []
        for kind in ("list by status", "second page", "by business key", "by id",
                     "by attribute", "attribute + status", "at step", "totals of a customer")
    }  # fmt: skip
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rand = random.Random(seed)
        while time.monotonic() < stop:
            kind = rand.choice(list(found))
            i = rand.randrange(count)
            if kind == "list by status":
                path = f"/api/instances?status={rand.choice(STATUSES)}&limit=50"
            elif kind == "second page":
                path = f"/api/instances?status={rand.choice(STATUSES)}&limit=50"
                with urllib.request.urlopen(url + path) as reply:
                    link = reply.headers["Link"]
                path = link.split(";")[0].strip("<> ")
            elif kind == "by business key":
                path = f"/api/instances?business_key=o-{i}"
            elif kind == "by attribute":
                path = f"/api/instances?attr.customer_id=cust-{i % CUSTOMERS}&limit=50"
            elif kind == "attribute + status":
                path = f"/api/instances?attr.region={rand.choice(REGIONS)}&status=running&limit=50"
            elif kind == "at step":
                path = f"/api/instances?step={rand.choice(STEPS)}&limit=50"
            elif kind == "totals of a customer":
                path = f"/api/instances/totals?attr.customer_id=cust-{i % CUSTOMERS}"
            else:
                path = f"/api/instances/{uuid.UUID(int=i)}"
            began = time.perf_counter()
            with urllib.request.urlopen(url + path) as reply:
                body = reply.read()
            ms = (time.perf_counter() - began) * 1000
            assert body and reply.status == 200
            with lock:
                found[kind].append(ms)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found


def serve(url: str, prefix: str, port: int) -> None:
    """The read API in a process of its own, as `saga-tracker ui` runs it: the clients that
    measure it do not share its interpreter."""
    store = VisibilityStore(url, prefix)
    TraceServer(
        store,
        decisions=store.decisions,
        approvals=store.approvals,
        approvals_of=store.approvals_of,
        host="127.0.0.1",
        port=port,
    ).start()
    threading.Event().wait()


def served(url: str, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.visibility", "--serve", url, "--prefix", prefix,
         "--port", str(port)],
        cwd=REPO,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{address}/api/instances?limit=1"):
                return server, address
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the API process did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres", default=POSTGRES, help="'' to skip PostgreSQL")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the API process
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.prefix, args.port)
        return
    servers = resolve_servers(REPO)
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    prefix = f"benchvis-{uuid.uuid4().hex[:6]}"
    topic = f"{prefix}.instances.changelog"
    admin.create_topics(
        [NewTopic(topic, num_partitions=args.partitions, replication_factor=1,
                  config={"cleanup.policy": "compact"})]
    )[topic].result(30)  # fmt: skip
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    took = load(servers.bootstrap, topic, args.instances, t0)
    print(f"changelog: {args.instances:,} instances written in {took:.1f} s")
    stores = {"SQLite": None, "PostgreSQL": args.postgres or None}
    try:
        with tempfile.TemporaryDirectory(prefix="choreograph-bench-visibility-") as tmp:
            for label, url in stores.items():
                if label == "SQLite":
                    url = f"sqlite:///{Path(tmp) / 'visibility.db'}"
                if url is None:
                    continue
                store = VisibilityStore(url, prefix)
                try:
                    store.positions()
                except VisibilityUnavailable as err:
                    print(f"{label}: skipped ({err})")
                    continue
                rate = index(store, servers.bootstrap, topic, args.instances)
                print(
                    f"{label}: indexed {store.count():,} instances at {rate:,.0f} records/s "
                    f"({rate / TRACKER_TARGET:.1f}x the tracker's {TRACKER_TARGET:,} events/s "
                    "target)"
                )
                server, address = served(url, prefix)
                try:
                    found = latencies(address, args.instances, args.clients, args.seconds)
                finally:
                    server.kill()
                    server.wait()
                for kind, values in found.items():
                    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
                    print(
                        f"  {kind:<18} {len(values):>6} requests  p50 {p50:6.1f} ms  "
                        f"p99 {p99:6.1f} ms  ({p99 / LATENCY_TARGET_MS:.2f}x the 50 ms target)"
                    )
                all_ms = [v for values in found.values() for v in values]
                print(f"  mean over all requests {statistics.mean(all_ms):.1f} ms")
                if label == "PostgreSQL":  # leave the shared database as it was
                    store.drop()
                store.close()
    finally:
        drop_topics(admin, prefix)


if __name__ == "__main__":
    main()
