"""`python -m bench.tracker`: saga-tracker throughput and deadline lateness with many open
instances.

1. Load the tracker's repartition topic: a cohort of K orders that are placed and paid (each arms
   a reservation deadline of D seconds), then N more placed orders, each an instance that stays
   open (payment deadline 15 min, process deadline 2 h: two timers each).
2. Run the tracker (the real service, exactly-once, RocksDB state) over it in this process.
   Throughput is measured from its committed offsets, from its first commit to the last, as in
   `python -m bench`. The cohort's deadlines come due while it is still loading the N instances,
   so they fire with the timer store and the instance store at their fullest.
3. Lateness is the engine's own `choreograph_timer_lateness_seconds` histogram (fire time minus
   deadline); p50 and p99 are read off its buckets (an upper bound).
4. Anchor, same run, same records: the raw confluent-kafka passthrough.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from argparse import Namespace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.__main__ import Contender, committed_rate, drop_topics, measure
from choreograph.contracts.envelope import Envelope
from choreograph.contracts.serde import AvroSerde
from choreograph.process.definition import parse_definition
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph.runtime.partitioning import java_compatible
from choreograph.testing.servers import resolve_servers
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from saga_tracker.definitions import Definitions, command_and_incident_models
from saga_tracker.service import build_tracker

REPO = Path(__file__).resolve().parents[1]
PLACED, PAID = "com.acme.orders.OrderPlaced", "com.acme.payments.PaymentAuthorized"


def load(
    bootstrap: str, registry: str, topic: str, cohort: int, open_: int, spread: bool = False
) -> None:
    """Cohort first (a burst of deadlines), or spread evenly through the load."""
    serde = AvroSerde(registry, auto_register=True)
    producer = Producer(
        java_compatible(
            {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
        )
    )
    placed_at = datetime.now(UTC)

    def send(key: str, corr: str, kind: str, value: bytes) -> None:
        headers = Envelope.new(kind, "bench", key, correlation_id=corr).to_headers()
        while True:
            try:
                producer.produce(topic, value, corr.encode(), headers=headers)
                return
            except BufferError:
                producer.poll(0.05)

    every = max(1, (cohort + open_) // max(cohort, 1)) if spread else 1
    paid_left = cohort
    for i in range(cohort + open_):
        key, corr = f"o{i}", f"c{i}"
        order = OrderPlaced(
            order_id=key,
            customer_id="c",
            customer_email="e@x",
            total=Decimal("10.00"),
            lines=[OrderLine(sku="s", quantity=1)],
            placed_at=placed_at,
        )
        send(key, corr, PLACED, serde.serialize(order, topic))
        if paid_left and i % every == 0:
            paid_left -= 1
            paid = PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal("10.00"))
            send(key, corr, PAID, serde.serialize(paid, topic))
    producer.flush(120)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile `q` of a cumulative histogram."""
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def lateness_buckets(engine: Engine) -> list[tuple[float, float]]:
    found = []
    for family in engine.metrics.registry.collect():
        if family.name == "choreograph_timer_lateness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    found.append((float(sample.labels["le"]), sample.value))
    return sorted(found)


def run_tracker(
    args: Namespace, servers: tuple[str, str], topic: str, state: Path, prefix: str
) -> tuple[float | None, list[tuple[float, float]], int]:
    text = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    text = text.replace(
        "deadline: 10m\n    on_timeout", f"deadline: {args.deadline}s\n    on_timeout"
    )
    definitions = Definitions([parse_definition(text, "bench.yaml").definition])
    service = build_tracker(
        definitions,
        command_and_incident_models(REPO / "schemas/avro"),
        name=f"{prefix}-tracker",
        repartition=topic,
    )
    config = ServiceConfig(
        bootstrap_servers=servers[0],
        registry_url=servers[1],
        instance_id="bench",
        state_dir=state / "tracker",
        auto_register_schemas=True,
    )
    engine = Engine(service, config)
    thread = threading.Thread(target=engine.run, daemon=True)
    admin = AdminClient({"bootstrap.servers": servers[0]})
    total = args.cohort * 2 + args.open
    thread.start()
    try:
        result = committed_rate(
            admin,
            service.name,
            topic,
            args.partitions,
            total,
            args.timeout,
            alive=thread.is_alive,
        )
        rate = result.rate
        if result.why:
            print(f"saga tracker: no rate ({result.why})")
        fired_by = time.monotonic() + args.deadline + 30
        while time.monotonic() < fired_by:  # every cohort deadline has to fire
            buckets = lateness_buckets(engine)
            if buckets and buckets[-1][1] >= args.cohort:
                break
            time.sleep(0.2)
        buckets = lateness_buckets(engine)
        fired = int(buckets[-1][1]) if buckets else 0
    finally:
        engine.stop()
        thread.join(120)
    return rate, buckets, fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--open", type=int, default=1_000_000, help="instances left open")
    parser.add_argument("--cohort", type=int, default=20_000, help="instances whose deadline fires")
    parser.add_argument("--deadline", type=int, default=20, help="cohort deadline, seconds")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="pay the whole cohort first, so its deadlines all come due within seconds",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    found = resolve_servers(REPO)
    servers = (found.bootstrap, found.registry_url)
    admin = AdminClient({"bootstrap.servers": servers[0]})
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    topic = f"{prefix}.saga-tracker.repartition"
    admin.create_topics([NewTopic(topic, num_partitions=args.partitions, replication_factor=1)])[
        topic
    ].result(30)
    started = time.monotonic()
    load(servers[0], servers[1], topic, args.cohort, args.open, spread=not args.burst)
    total = args.cohort * 2 + args.open
    print(
        f"loaded {total} events ({args.cohort} paid orders with a {args.deadline}s deadline, "
        f"{'first' if args.burst else 'spread through the load'}, "
        f"{args.open + args.cohort} open instances) in {time.monotonic() - started:.1f}s"
    )
    with TemporaryDirectory(prefix="choreograph-bench-tracker-") as tmp:
        state = Path(tmp)
        raw = measure(
            Contender(
                "raw confluent-kafka passthrough (anchor)",
                "raw",
                "bench.contenders.raw_passthrough",
            ),
            Namespace(partitions=args.partitions, events=total, timeout=args.timeout),
            servers,
            prefix,
            admin,
            state,
            source=topic,
        ).rate
        rate, buckets, fired = run_tracker(args, servers, topic, state, prefix)
    drop_topics(admin, prefix)
    print()
    print(f"{'raw passthrough (anchor)':<34} {raw or 0:>10,.0f} events/s")
    if rate is None:
        print("saga tracker: did not finish; raise --timeout")
        return
    print(f"{'saga tracker, exactly-once':<34} {rate:>10,.0f} events/s")
    print(f"{'  share of the anchor':<34} {rate / raw:>10.1%}" if raw else "")
    print(f"{'  against the 12k events/s target':<34} {rate / 12_000:>10.2f}x")
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    print(f"deadlines fired: {fired} of {args.cohort}; lateness p50 <= {p50}s, p99 <= {p99}s")
    print(f"  p99 against the 1 s target: {'met' if p99 <= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
