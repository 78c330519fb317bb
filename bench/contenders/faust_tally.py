"""The tally workload on faust-streaming: registry Avro in, a RocksDB-backed Table per key,
registry Avro out, exactly-once. Same topics, schemas and state shape as the other contenders."""

from __future__ import annotations

import json
import sys
from typing import Any

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench.contenders import contender_args
from bench.workload import HERE


class RegistryAvro(faust.Codec):
    """Confluent wire format through the registry, as the Quix contender uses."""

    def __init__(self, registry: str, topic: str, schema: dict[str, Any] | None = None) -> None:
        client = SchemaRegistryClient({"url": registry})
        self.ctx = SerializationContext(topic, MessageField.VALUE)
        self.decode = AvroDeserializer(client)
        self.encode = (
            AvroSerializer(
                client,
                json.dumps(schema),
                conf={"subject.name.strategy": topic_record_subject_name_strategy},
            )
            if schema
            else None
        )
        super().__init__()

    def _loads(self, s: bytes) -> Any:
        return self.decode(s, self.ctx)

    def _dumps(self, obj: Any) -> bytes:
        assert self.encode is not None
        return self.encode(obj, self.ctx)  # type: ignore[no-any-return]


def main() -> None:
    args = contender_args(
        "--input", "--output", "--group", "--bootstrap", "--registry", "--state-dir"
    )
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.state_dir,
        processing_guarantee="exactly_once",
        broker_commit_interval=args.commit_interval,
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
        web_enabled=False,
    )
    tallied = json.loads((HERE / "Tallied.avsc").read_text())
    source = app.topic(
        args.input, key_type=str, value_serializer=RegistryAvro(args.registry, args.input)
    )
    sink = app.topic(
        args.output,
        key_type=str,
        value_serializer=RegistryAvro(args.registry, args.output, tallied),
    )
    tallies = app.Table("tallies", default=lambda: None, partitions=4)

    @app.agent(source)
    async def tally(stream: Any) -> None:
        async for key, tick in stream.items():
            current = tallies[key] or {"count": 0, "total": 0}
            current = {"count": current["count"] + 1, "total": current["total"] + tick["amount"]}
            tallies[key] = current
            await sink.send(
                key=key,
                value={"input_id": tick["id"], "key": tick["key"], **current},
            )

    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    app.main()


if __name__ == "__main__":
    main()
