"""Anchor: the tally workload written by hand with the same libraries and the same guarantees as
choreograph, the way a careful engineer would, without a framework.

Per event: registry Avro decode (writer schema looked up once per id); ce_id, ce_correlationid and
traceparent read from the headers; RocksDB state (rocksdict, raw mode, orjson values, with a
per-transaction dict consulted first and written in one WriteBatch per partition after the
commit); a changelog record per update; Avro encode of the output with full CloudEvents headers
(new id, source, type, time, subject, content-type, correlation, causation, child traceparent);
exactly-once transactions with send_offsets_to_transaction at the commit interval.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import time
from datetime import UTC, datetime
from typing import Any

import fastavro
import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from rocksdict import AccessType, Options, Rdict, WriteBatch

from bench.contenders import contender_args
from bench.workload import HERE

FRAME = struct.Struct(">bI")


class Ids:
    """Unique ids without a system call per event: a random prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.n = 0

    def next(self, width: int = 16) -> str:
        self.n += 1
        return f"{self.prefix}{self.n:0{width}x}"


def main() -> None:
    args = contender_args("--input", "--output", "--group", "--bootstrap", "--registry",
                          "--state-dir", "--instance")  # fmt: skip
    interval = args.commit_interval
    os.makedirs(args.state_dir, exist_ok=True)
    registry = SchemaRegistryClient({"url": args.registry})
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    partitions = len(admin.list_topics(args.input, timeout=30).topics[args.input].partitions)
    changelog = f"{args.group}.tallies.changelog"
    for future in admin.create_topics(
        [NewTopic(changelog, partitions, 1, config={"cleanup.policy": "compact"})]
    ).values():
        with contextlib.suppress(KafkaException):  # it exists
            future.result(30)
    tallied = fastavro.parse_schema(orjson.loads((HERE / "Tallied.avsc").read_bytes()))
    out_id = registry.register_schema(
        f"{args.output}-bench.workload.Tallied",
        Schema((HERE / "Tallied.avsc").read_text(), "AVRO"),
    )
    out_frame = FRAME.pack(0, out_id)
    readers: dict[int, Any] = {}

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })  # fmt: skip
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "transactional.id": f"{args.group}-{args.instance}",
        "linger.ms": 5, "compression.type": "lz4",
    })  # fmt: skip
    producer.init_transactions(30)
    stores: dict[int, Rdict] = {}
    pending: dict[int, dict[bytes, bytes]] = {}

    def assigned(_: Consumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            options = Options(raw_mode=True)
            path = os.path.join(args.state_dir, str(tp.partition))
            stores[tp.partition] = Rdict(path, options, access_type=AccessType.read_write())
            pending[tp.partition] = {}

    consumer.subscribe([args.input], on_assign=assigned)
    ids = Ids()
    positions: dict[int, int] = {}
    in_txn, started = False, 0.0
    while True:
        batch = consumer.consume(500, 0.05)
        if batch and not in_txn:
            producer.begin_transaction()
            in_txn, started = True, time.monotonic()
        now_text = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for msg in batch:
            if msg.error() is not None:
                continue
            value, key, partition = msg.value(), msg.key(), msg.partition()
            schema_id = FRAME.unpack_from(value)[1]
            reader = readers.get(schema_id)
            if reader is None:
                raw = orjson.loads(registry.get_schema(schema_id).schema_str)
                reader = readers[schema_id] = fastavro.parse_schema(raw)
            tick = fastavro.schemaless_reader(io.BytesIO(value[5:]), reader, None)
            header = dict(msg.headers() or ())
            event_id = header.get("ce_id", b"").decode()
            correlation = (header.get("ce_correlationid") or header.get("ce_id") or b"").decode()
            parent = (header.get("traceparent") or b"").decode()
            trace = parent[3:35] if len(parent) == 55 else ids.next(32)[-32:]
            pending_p = pending[partition]
            current = pending_p.get(key)
            if current is None:
                current = stores[partition].get(key)
            state = orjson.loads(current) if current else {"count": 0, "total": 0}
            state["count"] += 1
            state["total"] += tick["amount"]
            encoded_state = orjson.dumps(state)
            pending_p[key] = encoded_state
            out = io.BytesIO()
            out.write(out_frame)
            record = {"input_id": tick["id"], "key": tick["key"], "count": state["count"],
                      "total": state["total"]}  # fmt: skip
            fastavro.schemaless_writer(out, tallied, record)
            headers = [
                ("ce_specversion", b"1.0"), ("ce_id", ids.next().encode()),
                ("ce_source", args.group.encode()), ("ce_type", b"bench.workload.Tallied"),
                ("ce_time", now_text.encode()), ("ce_subject", key),
                ("content-type", b"application/avro"),
                ("ce_correlationid", correlation.encode()), ("ce_causationid", event_id.encode()),
                ("traceparent", f"00-{trace}-{ids.next()}-01".encode()),
            ]  # fmt: skip
            while True:
                try:
                    producer.produce(args.output, out.getvalue(), key, partition=partition,
                                     headers=headers)  # fmt: skip
                    producer.produce(changelog, encoded_state, key, partition=partition)
                    break
                except BufferError:
                    producer.poll(0.05)
            positions[partition] = msg.offset() + 1
        producer.poll(0)
        if in_txn and time.monotonic() - started >= interval:
            offsets = [TopicPartition(args.input, p, o) for p, o in positions.items()]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            in_txn = False
            for p, writes in pending.items():
                if writes:
                    wb = WriteBatch(raw_mode=True)
                    for k, v in writes.items():
                        wb.put(k, v)
                    stores[p].write(wb)
                    writes.clear()


if __name__ == "__main__":
    main()
