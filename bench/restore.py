"""`python -m bench.restore`: state recovery of a processor with many keys.

1. Fill the tally service's changelog with N keys, as the service itself would have written them.
2. Full restore: rebuild local RocksDB state from the changelog with the engine's restore code,
   as on a new machine (records/s). The anchor is reading the same changelog with a bare consumer
   and doing nothing with it, in the same run.
3. Restart: start the real service process over that state (each store recorded the changelog
   offset it reached), send one event and time until its output is committed; then the same
   with the local state removed (full replay).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.workload import Tallied, Tick, topics
from bench.workload.process import ServiceProcess
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.partitioning import java_compatible
from choreograph.state.backends import RocksBackend
from choreograph.state.restore import RestoreJob, restore
from choreograph.testing.servers import resolve_servers

REPO = Path(__file__).resolve().parents[1]


def fill(bootstrap: str, changelog: str, keys: int, partitions: int) -> None:
    producer = Producer(
        java_compatible(
            {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4"}
        )
    )
    for i in range(keys):
        value = json.dumps({"count": 1, "total": i}, separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(changelog, value, f"k{i}".encode(), partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def bare_read(bootstrap: str, changelog: str, partitions: int) -> float:
    """Anchor: records/s of merely reading the changelog to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(changelog, p, 0) for p in range(partitions)])
    started, seen, done = time.monotonic(), 0, 0
    while done < partitions:
        for msg in consumer.consume(10_000, 0.5):
            err = msg.error()
            if err is None:
                seen += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                done += 1
    consumer.close()
    return seen / (time.monotonic() - started)


def restart_seconds(
    prefix: str, state: Path, servers: tuple[str, str], expected_count: int
) -> float:
    """Seconds from starting the service process to the committed output of a new input."""
    source, sink = topics(prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": servers[0],
            "group.id": uuid.uuid4().hex,
            "isolation.level": "read_committed",
            "auto.offset.reset": "latest",
        }
    )
    consumer.subscribe([sink])
    while not consumer.assignment():
        consumer.poll(0.2)
    started = time.monotonic()
    proc = ServiceProcess(prefix, "r", state, servers, log_level="WARNING")
    probe = Tick(id=uuid.uuid4().hex, key="k1", seq=1, amount=1)
    publisher = EventPublisher(
        {"bootstrap.servers": servers[0]}, AvroSerde(servers[1], auto_register=True), "bench"
    )
    publisher.publish(probe, probe.key, topic=source)
    publisher.flush()
    serde = AvroSerde(servers[1], models=[Tallied])
    try:
        while time.monotonic() - started < 600:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                out = serde.deserialize(msg.value()).event
                if getattr(out, "input_id", None) == probe.id:
                    assert out.count == expected_count, f"state not restored: count {out.count}"
                    return time.monotonic() - started
        raise TimeoutError("no output within 600 s")
    finally:
        proc.terminate()
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    found = resolve_servers(REPO)
    servers = (found.bootstrap, found.registry_url)
    admin = AdminClient({"bootstrap.servers": servers[0]})
    prefix = f"restore-{uuid.uuid4().hex[:6]}"
    service = f"{prefix}-tally"
    changelog = f"{service}.tallies.changelog"
    for topic, config in (
        (topics(prefix)[0], {}),
        (topics(prefix)[1], {}),
        (changelog, {"cleanup.policy": "compact"}),
    ):
        admin.create_topics(
            [NewTopic(topic, num_partitions=args.partitions, replication_factor=1, config=config)]
        )[topic].result(30)
    started = time.monotonic()
    fill(servers[0], changelog, args.keys, args.partitions)
    print(f"wrote {args.keys:,} keys to {changelog} in {time.monotonic() - started:.1f}s")

    anchor = bare_read(servers[0], changelog, args.partitions)
    with TemporaryDirectory(prefix="choreograph-restore-") as tmp:
        state = Path(tmp)
        jobs = []
        for p in range(args.partitions):
            path = state / service / str(p) / "tallies"
            jobs.append(RestoreJob(changelog, p, "tallies", RocksBackend(path), None))
        started = time.monotonic()
        restore({"bootstrap.servers": servers[0]}, jobs)
        elapsed = time.monotonic() - started
        restored = sum(j.restored for j in jobs)
        for job in jobs:  # each recorded the changelog offset it reached, with its data
            job.backend.flush()
            job.backend.close()
        rate = restored / elapsed
        print(
            f"full restore: {restored:,} records in {elapsed:.1f}s = {rate:,.0f} records/s "
            f"(bare read of the same changelog: {anchor:,.0f} records/s; {rate / anchor:.0%})"
        )

        with_state = restart_seconds(prefix, state, servers, expected_count=2)
        print(
            f"restart with local state, {args.keys:,} keys: processing again after "
            f"{with_state:.1f}s"
        )
        for p in range(args.partitions):
            shutil.rmtree(state / service / str(p), ignore_errors=True)
        without = restart_seconds(prefix, state, servers, expected_count=3)
        print(
            f"restart without local state (full restore):    processing again after "
            f"{without:.1f}s ({without / with_state:.1f}x slower)"
        )


if __name__ == "__main__":
    main()
