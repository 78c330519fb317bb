"""`python -m bench.engine_loop`: main-thread CPU per event of choreograph's whole engine loop
and of the hand-written contender, without a broker, in one process.

Both get the same real `confluent_kafka.Message` objects (the tally workload's ticks over
`--keys` keys and four partitions, from a stub consumer) and produce into a real producer that
cannot connect (127.0.0.1:9: `produce()` does all its client-side work and queues; the queue is
purged after each round), with state in RocksDB. The engine runs its own loop around
`PartitionTask.process`: `_consume_and_handle`, counts, due timers, and its commit (changelog
records, offsets, the state write) with the transaction calls stubbed. The contender runs its
per-event body (`bench.contenders.hand_written.Tally`) and its write-back.

Variants run interleaved, many short rounds in random order, thread CPU time (time descheduled
does not count): the minimum and the 25th percentile per event are printed, with the ratio.
The engine's commit interval is the round: one commit per `--events` events.

    PYTHONPATH=.:framework:services .venv/bin/python -m bench.engine_loop
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Message, Producer
from rocksdict import AccessType, Options, Rdict

from bench.contenders.hand_written import FRAME, Tally
from bench.workload import Tick
from bench.workload.service import build
from choreograph.contracts.envelope import Envelope
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph.runtime.partitioning import partition_for
from choreograph.runtime.task import PartitionTask
from choreograph.runtime.transactions import Outcome
from choreograph.state.backends import RocksBackend
from choreograph.testing.testkit import TestKit

PARTITIONS = 4
BATCH = 1000  # records per consume
NOWHERE = {"bootstrap.servers": "127.0.0.1:9", "linger.ms": 5, "compression.type": "lz4",
           "queue.buffering.max.messages": 2_000_000, "log_level": 0}  # fmt: skip


class StubConsumer:
    """Hands the engine one prepared batch per `consume`."""

    def __init__(self) -> None:
        self.batch: list[Message] = []

    def consume(self, n: int, timeout: float) -> list[Message]:
        return self.batch

    def consumer_group_metadata(self) -> None:
        return None

    def assignment(self) -> list[Any]:
        return []


def messages(serde: Any, events: int, keys: int) -> list[Message]:
    offsets = [0] * PARTITIONS
    found = []
    for i in range(events):
        key = f"k{i % keys}"
        p = partition_for(key, PARTITIONS)
        value = serde.serialize(Tick(id=str(i), key=key, seq=i, amount=1), "hot.ticks")
        headers = Envelope.new(Tick.__avro_name__, "bench", key).to_headers()
        found.append(Message(topic="hot.ticks", partition=p, offset=offsets[p],
                             key=key.encode(), value=value, headers=headers))  # fmt: skip
        offsets[p] += 1
    return found


def engine_round(tmp: Path, events: int, keys: int) -> tuple[Callable[[], None], Any]:
    """The engine's loop over `events` records and one commit, on RocksDB."""
    service = build("hot")
    kit = TestKit(service, partitions=1)  # its in-memory registry
    config = ServiceConfig(instance_id="bench", state_dir=tmp / "engine", commit_interval_ms=10**9)
    engine = Engine(service, config)
    engine.serde = kit.serde
    producer = Producer({**NOWHERE, "enable.idempotence": True})
    txn: Any = engine.txn
    txn._producer, txn._initialised, txn.open = producer, True, True

    def committed(bound: float, offsets: Any = None, group_metadata: Any = None) -> Outcome:
        txn.open = True  # stays open: the stub never begins one
        return Outcome.COMMITTED

    txn.commit = committed
    consumer = StubConsumer()
    engine.consumer = consumer  # type: ignore[assignment]
    engine.partitions.partition_count = PARTITIONS
    for p in range(PARTITIONS):
        engine.tasks[p] = PartitionTask(
            service, p, lambda store, _p, p=p: RocksBackend(tmp / "engine" / str(p) / store),
            kit.serde, partitions=PARTITIONS, instance_id="bench",
        )  # fmt: skip
    batches = [b for b in _batches(messages(kit.serde, events, keys))]

    def run() -> None:
        for batch in batches:
            consumer.batch = batch
            engine._consume_and_handle()
            engine._flush_counts()
            engine.timers.fire_due(engine.tasks, engine.clock())
        engine.commit(10)
        producer.purge()
        producer.poll(0)

    return run, kit.serde


def hand_round(tmp: Path, serde: Any, events: int, keys: int) -> Callable[[], None]:
    """The contender's body over the same records, and its write-back."""
    producer = Producer(NOWHERE)
    stores = {
        p: Rdict(str(tmp / "hand" / str(p)), Options(raw_mode=True),
                 access_type=AccessType.read_write())
        for p in range(PARTITIONS)
    }  # fmt: skip
    tally = Tally(producer, lambda schema_id: serde.writer_schema(schema_id)[1], "hot.tallies",
                  "hot-hand.tallies.changelog", "hot-hand", FRAME.pack(0, 7), stores)  # fmt: skip
    batches = _batches(messages(serde, events, keys))

    def run() -> None:
        for batch in batches:
            tally.handle(batch)
        _ = list(tally.positions.items())  # the offsets it would send
        tally.write_back()
        producer.purge()
        producer.poll(0)

    return run


def _batches(found: list[Message]) -> list[list[Message]]:
    return [found[i : i + BATCH] for i in range(0, len(found), BATCH)]


def compare(
    variants: dict[str, Callable[[], None]], events: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Minimum and 25th percentile of main-thread CPU per event, µs, over interleaved rounds."""
    names = list(variants)
    for name in names:  # warm caches and the stores' first keys
        variants[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    shuffle = random.Random(1).shuffle
    for _ in range(rounds):
        shuffle(names)
        for name in names:
            gc.collect()
            began = time.thread_time_ns()
            variants[name]()
            samples[name].append(time.thread_time_ns() - began)
    found = {}
    for name, values in samples.items():
        values.sort()
        found[name] = (values[0] / events / 1e3, values[len(values) // 4] / events / 1e3)
    return found


def general_path(run: Callable[[], None]) -> Callable[[], None]:
    """`run` with the per-record shortcuts off: every envelope by the full CloudEvents reading,
    every body through `deserialize`, every model built by pydantic (the same semantics)."""
    import choreograph.runtime.task as task_module
    from choreograph.contracts import event as event_module
    from choreograph.contracts.serde import AvroSerde

    def general_event_of(serde: AvroSerde, data: bytes | None, claimed: str) -> Any:
        return serde.deserialize(data, claimed=claimed).event

    patches: list[tuple[Any, str, Any]] = [
        (task_module, "known_shape", lambda headers: None),
        (AvroSerde, "event_of", general_event_of),
        (event_module, "fast_init_for", lambda model: None),
        (event_module, "_FAST_INITS", {}),
    ]

    def go() -> None:
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        for owner, name, value in patches:
            setattr(owner, name, value)
        try:
            run()
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000, help="per round (and commit)")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument(
        "--general-path",
        action="store_true",
        help="also the engine with the per-record shortcuts off (header shapes, readers into "
        "models, generated constructors), interleaved with the others",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="choreograph-engine-loop-") as folder:
        tmp = Path(folder)
        choreograph, serde = engine_round(tmp, args.events, args.keys)
        hand = hand_round(tmp, serde, args.events, args.keys)
        variants = {"choreograph engine loop": choreograph, "hand-written loop": hand}
        if args.general_path:
            general, _ = engine_round(tmp / "general", args.events, args.keys)
            variants["choreograph, general path"] = general_path(general)
        found = compare(variants, args.events, args.rounds)
    print(f"{args.events} events a round, {args.keys} keys, {PARTITIONS} partitions, RocksDB, "
          f"{args.rounds} rounds; main-thread CPU per event")  # fmt: skip
    for name, (least, q25) in found.items():
        print(f"  {name:<26} min {least:6.2f} us   q25 {q25:6.2f} us")
    ours, theirs = found["choreograph engine loop"], found["hand-written loop"]
    if args.general_path:
        general = found["choreograph, general path"]
        print(f"  the shortcuts save {general[0] - ours[0]:.2f} us (min), "
              f"{general[1] - ours[1]:.2f} us (q25) per event")  # fmt: skip
    print(f"  choreograph / hand-written: {ours[0] / theirs[0]:.2f}x (min), "
          f"{ours[1] / theirs[1]:.2f}x (q25); target 1.4x or less")  # fmt: skip


if __name__ == "__main__":
    main()
