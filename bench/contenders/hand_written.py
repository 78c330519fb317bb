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


class Tally:
    """The per-event work and the state write-back, apart from the loop that feeds them, so
    `bench.engine_loop` runs the same body without a broker."""

    def __init__(
        self,
        producer: Producer,
        schema_of: Any,
        output: str,
        changelog: str,
        source: str,
        out_frame: bytes,
        stores: dict[int, Any],
    ) -> None:
        self.producer = producer
        self.schema_of = schema_of  # schema id -> its parsed writer schema
        self.output = output
        self.changelog = changelog
        self.source = source.encode()
        self.out_frame = out_frame
        self.stores = stores
        self.pending: dict[int, dict[bytes, bytes]] = {p: {} for p in stores}
        self.readers: dict[int, Any] = {}
        self.tallied = fastavro.parse_schema(orjson.loads((HERE / "Tallied.avsc").read_bytes()))
        self.ids = Ids()
        self.positions: dict[int, int] = {}

    def handle(self, batch: list[Any]) -> None:
        producer, ids, source = self.producer, self.ids, self.source
        now_text = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for msg in batch:
            if msg.error() is not None:
                continue
            value, key, partition = msg.value(), msg.key(), msg.partition()
            schema_id = FRAME.unpack_from(value)[1]
            reader = self.readers.get(schema_id)
            if reader is None:
                reader = self.readers[schema_id] = self.schema_of(schema_id)
            tick = fastavro.schemaless_reader(io.BytesIO(value[5:]), reader, None)
            header = dict(msg.headers() or ())
            event_id = header.get("ce_id", b"").decode()
            correlation = (header.get("ce_correlationid") or header.get("ce_id") or b"").decode()
            parent = (header.get("traceparent") or b"").decode()
            trace = parent[3:35] if len(parent) == 55 else ids.next(32)[-32:]
            pending_p = self.pending[partition]
            current = pending_p.get(key)
            if current is None:
                current = self.stores[partition].get(key)
            state = orjson.loads(current) if current else {"count": 0, "total": 0}
            state["count"] += 1
            state["total"] += tick["amount"]
            encoded_state = orjson.dumps(state)
            pending_p[key] = encoded_state
            out = io.BytesIO()
            out.write(self.out_frame)
            record = {"input_id": tick["id"], "key": tick["key"], "count": state["count"],
                      "total": state["total"]}  # fmt: skip
            fastavro.schemaless_writer(out, self.tallied, record)
            headers = [
                ("ce_specversion", b"1.0"), ("ce_id", ids.next().encode()),
                ("ce_source", source), ("ce_type", b"bench.workload.Tallied"),
                ("ce_time", now_text.encode()), ("ce_subject", key),
                ("content-type", b"application/avro"),
                ("ce_correlationid", correlation.encode()), ("ce_causationid", event_id.encode()),
                ("traceparent", f"00-{trace}-{ids.next()}-01".encode()),
            ]  # fmt: skip
            while True:
                try:
                    producer.produce(self.output, out.getvalue(), key, partition=partition,
                                     headers=headers)  # fmt: skip
                    producer.produce(self.changelog, encoded_state, key, partition=partition)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.positions[partition] = msg.offset() + 1
        producer.poll(0)

    def write_back(self) -> None:
        """After the commit: the transaction's state into RocksDB, one WriteBatch a partition."""
        for p, writes in self.pending.items():
            if writes:
                wb = WriteBatch(raw_mode=True)
                for k, v in writes.items():
                    wb.put(k, v)
                self.stores[p].write(wb)
                writes.clear()


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
    out_id = registry.register_schema(
        f"{args.output}-bench.workload.Tallied",
        Schema((HERE / "Tallied.avsc").read_text(), "AVRO"),
    )

    def schema_of(schema_id: int) -> Any:
        return fastavro.parse_schema(orjson.loads(registry.get_schema(schema_id).schema_str))

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
    tally = Tally(producer, schema_of, args.output, changelog, args.group,
                  FRAME.pack(0, out_id), stores)  # fmt: skip

    def assigned(_: Consumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            options = Options(raw_mode=True)
            path = os.path.join(args.state_dir, str(tp.partition))
            stores[tp.partition] = Rdict(path, options, access_type=AccessType.read_write())
            tally.pending[tp.partition] = {}

    consumer.subscribe([args.input], on_assign=assigned)
    in_txn, started = False, 0.0
    while True:
        batch = consumer.consume(500, 0.05)
        if batch and not in_txn:
            producer.begin_transaction()
            in_txn, started = True, time.monotonic()
        tally.handle(batch)
        if in_txn and time.monotonic() - started >= interval:
            offsets = [TopicPartition(args.input, p, o) for p, o in tally.positions.items()]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            in_txn = False
            tally.write_back()


if __name__ == "__main__":
    main()
