"""The tally workload on Quix Streams: registry Avro in, RocksDB state per key, registry Avro out,
exactly-once. Same topics, schemas and state shape as choreograph's bench.workload.service."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import topic_record_subject_name_strategy
from quixstreams import Application, State
from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer
from quixstreams.models.serializers.schema_registry import (
    SchemaRegistryClientConfig,
    SchemaRegistrySerializationConfig,
)

from bench.contenders import contender_args
from bench.workload import HERE


def main() -> None:
    args = contender_args(
        "--input", "--output", "--group", "--bootstrap", "--registry", "--state-dir"
    )
    registry = SchemaRegistryClientConfig(url=args.registry)
    tallied = json.loads((HERE / "Tallied.avsc").read_text())
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(
        args.input,
        key_deserializer="str",
        value_deserializer=AvroDeserializer(schema_registry_client_config=registry),
    )
    sink = app.topic(
        args.output,
        key_serializer="str",
        value_serializer=AvroSerializer(
            tallied,
            schema_registry_client_config=registry,
            schema_registry_serialization_config=SchemaRegistrySerializationConfig(
                subject_name_strategy=topic_record_subject_name_strategy
            ),
        ),
    )

    def tally(tick: dict[str, Any], state: State) -> dict[str, Any]:
        count = state.get("count", 0) + 1
        total = state.get("total", 0) + tick["amount"]
        state.set("count", count)
        state.set("total", total)
        return {"input_id": tick["id"], "key": tick["key"], "count": count, "total": total}

    app.dataframe(source).apply(tally, stateful=True).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
