"""`python -m bench.hot_path`: the per-event Python work of the tally workload, without Kafka.

The same records go through choreograph's `PartitionTask.process` (the TestKit's task: what the
engine calls per record, with in-memory stores) and through the hand-written contender's
per-event body (`bench/contenders/hand_written.py`, its Kafka calls left out), in one process.
The ratio is free of the broker and librdkafka, which share this machine's cores in `python -m
bench` and make its figures spread. The parts below are what `process` spends its time on.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

import fastavro
import orjson

from bench.workload import HERE, Tallied, Tick
from bench.workload.service import build
from choreograph.contracts.envelope import Envelope
from choreograph.runtime.context import Context
from choreograph.testing.testkit import TestKit

FRAME = struct.Struct(">bI")


def best_of(runs: int, work: Callable[[], None]) -> float:
    """Seconds of the fastest of `runs` runs (the least disturbed by the rest of the machine)."""
    fastest = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    kit = TestKit(build("hot"), partitions=1)
    task, serde = kit.task, kit.serde
    records = []
    for i in range(args.events):
        key = f"k{i % args.keys}"
        value = serde.serialize(Tick(id=str(i), key=key, seq=i, amount=1), "hot.ticks")
        records.append((key.encode(), value, Envelope.new(Tick.__avro_name__, "bench", key)))
    records = [(k, v, e.to_headers()) for k, v, e in records]
    now = datetime.now(UTC)

    def framework() -> None:
        for key, value, headers in records:
            task.process(key, value, headers, now, "hot.ticks", 0)
            task.end_message(True)
        task.committed()

    # The hand-written loop's per-event body, its Kafka calls left out.
    reader = serde.writer_schema(FRAME.unpack_from(records[0][1])[1])[1]
    tallied = fastavro.parse_schema(orjson.loads((HERE / "Tallied.avsc").read_bytes()))
    out_frame = FRAME.pack(0, 1)
    prefix, counter = os.urandom(8).hex(), [0]
    state: dict[bytes, bytes] = {}

    def next_id() -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]:016x}"

    def by_hand() -> None:
        now_text = now.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()
        pending: dict[bytes, bytes] = {}
        for key, value, headers in records:
            tick = fastavro.schemaless_reader(io.BytesIO(value[5:]), reader, None)
            header = dict(headers)
            event_id = header.get("ce_id", b"").decode()
            correlation = (header.get("ce_correlationid") or header.get("ce_id") or b"").decode()
            parent = (header.get("traceparent") or b"").decode()
            trace = parent[3:35] if len(parent) == 55 else next_id() * 2
            current = pending.get(key) or state.get(key)
            tally = orjson.loads(current) if current else {"count": 0, "total": 0}
            tally["count"] += 1
            tally["total"] += tick["amount"]  # type: ignore[call-overload,index]
            pending[key] = orjson.dumps(tally)
            out = io.BytesIO()
            out.write(out_frame)
            record = {"input_id": tick["id"], "key": tick["key"],  # type: ignore[call-overload,index]
                      "count": tally["count"], "total": tally["total"]}  # fmt: skip
            fastavro.schemaless_writer(out, tallied, record)
            out.getvalue()
            _ = [
                ("ce_specversion", b"1.0"), ("ce_id", next_id().encode()),
                ("ce_source", b"hot-tally"), ("ce_type", b"bench.workload.Tallied"),
                ("ce_time", now_text), ("ce_subject", key),
                ("content-type", b"application/avro"),
                ("ce_correlationid", correlation.encode()), ("ce_causationid", event_id.encode()),
                ("traceparent", f"00-{trace[:32]}-{next_id()}-01".encode()),
            ]  # fmt: skip
        state.update(pending)

    framework()  # warm both, and the schema caches
    by_hand()
    ours = best_of(args.runs, framework) / args.events * 1e6
    anchor = best_of(args.runs, by_hand) / args.events * 1e6
    print(f"{args.events:,} events, {args.keys:,} keys, best of {args.runs} runs")
    print(f"  choreograph PartitionTask.process  {ours:6.1f} µs/event")
    print(f"  hand-written per-event body        {anchor:6.1f} µs/event")
    print(f"  ratio (hand-written / choreograph) {anchor / ours:6.2f}x")

    key, value, headers = records[0]
    envelope = Envelope.from_headers(headers, key.decode())
    output = Tallied(input_id="1", key="k1", count=1, total=1)
    ctx = Context(task, "k1", envelope, now)
    store = ctx.store("tallies")
    tick_type, tallied_type = Tick.__avro_name__, Tallied.__avro_name__

    def state_work() -> None:
        store.put("k1", store.get("k1") or {"count": 1})

    parts: list[tuple[str, Callable[[], object]]] = [
        ("envelope of the record in hand", lambda: Envelope.from_headers(headers, "k1")),
        ("Avro decode into the model", lambda: serde.deserialize(value, claimed=tick_type)),
        (
            "output model built (validated)",
            lambda: Tallied(input_id="1", key="k1", count=1, total=1),
        ),
        (
            "output envelope",
            lambda: Envelope.new(tallied_type, "t", "k1", parent=envelope, now=now),
        ),
        ("output headers", lambda: envelope.to_headers()),
        ("Avro encode of the output", lambda: serde.serialize(output, "hot.tallied")),
        ("state read and write (JSON)", state_work),
        ("Context for the handler", lambda: Context(task, "k1", envelope, now)),
    ]
    print("parts of process, each alone:")
    for name, work in parts:
        each = min(timeit.repeat(work, number=5_000, repeat=args.runs)) / 5_000 * 1e6
        print(f"  {name:34s} {each:6.2f} µs")


if __name__ == "__main__":
    main()
