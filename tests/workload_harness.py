"""Drive the tally workload against the real broker: produce ticks, run engines, read tallies."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.workload import Tallied, Tick, topics
from bench.workload.service import build, config

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.engine import Engine
from tests.kafka_helpers import committed_consumer


def create_workload_topics(admin: Any, partitions: int, letter: str = "r") -> str:
    """A fresh run prefix with the tally workload's input and output topics created."""
    from confluent_kafka.cimpl import NewTopic

    name = f"{letter}{uuid.uuid4().hex[:8]}"
    for topic in topics(name):
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
            topic
        ].result(30)
    return name


def make_ticks(keys: int, per_key: int, behaviour: str = "ok", key_prefix: str = "k") -> list[Any]:
    return [
        Tick(id=uuid.uuid4().hex, key=f"{key_prefix}{k}", seq=s, amount=s + 1, behaviour=behaviour)
        for s in range(per_key)
        for k in range(keys)
    ]


def produce(bootstrap: str, registry: str, topic: str, ticks: list[Any]) -> None:
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap}, AvroSerde(registry, auto_register=True), "load"
    )
    for tick in ticks:
        publisher.publish(tick, tick.key, topic=topic)
    publisher.flush()


def read_tallies(
    bootstrap: str, registry: str, topic: str, expected: int, timeout: float = 60.0
) -> list[Any]:
    """Every committed output (read_committed), until `expected` are seen and a quiet second."""
    consumer = committed_consumer(bootstrap, topic)
    serde = AvroSerde(registry, models=[Tallied])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append(serde.deserialize(msg.value()).event)
            quiet_until = None
        elif len(out) >= expected:
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() >= quiet_until:
                break
    consumer.close()
    return out


def assert_exactly_once(ticks: list[Any], tallies: list[Any]) -> None:
    """One output per input id; per key, counts 1..n in order and the right total."""
    produced = Counter(t.input_id for t in tallies)
    duplicates = {i: n for i, n in produced.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} inputs produced more than one output"
    missing = {t.id for t in ticks} - set(produced)
    assert not missing, f"{len(missing)} inputs produced no output"
    per_key: dict[str, list[Any]] = defaultdict(list)
    for t in tallies:
        per_key[t.key].append(t)
    expected_totals: dict[str, int] = defaultdict(int)
    for t in ticks:
        expected_totals[t.key] += t.amount
    for key, outs in per_key.items():
        assert [o.count for o in outs] == list(range(1, len(outs) + 1)), f"count gap for {key}"
        assert outs[-1].total == expected_totals[key], f"wrong total for {key}"


@contextmanager
def engine_thread(engine: Engine) -> Iterator[Engine]:
    """Run `engine` in a thread for the duration of the block; surface its failure."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as err:  # surfaced to the test below
            failure.append(err)

    thread = threading.Thread(target=run, name=f"engine-{engine.service.name}", daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.stop()
        thread.join(60)
        assert not thread.is_alive(), "engine did not stop within 60 s"
        if failure:
            raise failure[0]


@contextmanager
def running_engine(
    prefix: str, state_dir: Path, instance: str = "a", **extra: Any
) -> Iterator[Engine]:
    with engine_thread(Engine(build(prefix), config(instance, state_dir, **extra))) as engine:
        yield engine


def sample(engine: Engine, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(
        name, {"service": engine.service.name, **labels}
    )
    return value or 0.0
