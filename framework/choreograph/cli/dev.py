"""`choreograph dev`: developer commands against the local stack."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from choreograph.cli.cluster import add_bootstrap, add_registry, reached
from choreograph.contracts.envelope import Envelope
from choreograph.runtime.transactions import Outcome, Transactions

SMOKE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "SmokeChecked",
    "namespace": "dev.choreograph.smoke",
    "doc": "Emitted by `choreograph dev smoke` to prove the local stack works end to end.",
    "fields": [
        {"name": "check_id", "type": "string", "doc": "Business key of the check."},
        {"name": "sequence", "type": "int", "doc": "Position in the run."},
    ],
}


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("dev", help="developer commands against the local stack")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    smoke = commands.add_parser(
        "smoke", help="register a schema, publish events transactionally, read them back"
    )
    add_bootstrap(smoke)
    add_registry(smoke)
    smoke.add_argument("--events", type=int, default=10, help="events to send and read back")
    smoke.add_argument("--format", choices=("text", "json"), default="text")
    smoke.set_defaults(run=run_smoke)


def run_smoke(args: argparse.Namespace) -> int:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic
    from confluent_kafka.schema_registry import (
        SchemaRegistryClient,
        topic_record_subject_name_strategy,
    )
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    config = reached(args, "dev smoke")
    if config is None:
        return 2
    client = config.client_conf()
    progress = sys.stdout if args.format == "text" else sys.stderr

    def say(line: str) -> None:
        print(f"smoke: {line}", file=progress, flush=True)

    def result(ok: bool, **facts: Any) -> int:
        if args.format == "json":
            print(json.dumps({"ok": ok, "topic": topic, **facts}))
        return 0 if ok else 1

    run = uuid.uuid4().hex[:8]
    topic = f"smoke-{run}.events"
    say(f"broker {config.bootstrap_servers}, registry {config.registry_url}, topic {topic}")
    admin = AdminClient(client)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)

    registry = SchemaRegistryClient(config.registry_conf())
    serializer = AvroSerializer(
        registry,
        json.dumps(SMOKE_SCHEMA),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    say("topic created; starting a transactional producer")
    txn = Transactions({**client, "transactional.id": f"smoke-{run}"}, name="smoke")
    if not txn.ready(30):
        say(f"no transactional producer on {config.bootstrap_servers} within 30 s")
        return result(False, failed="transactional producer")
    txn.begin()
    ctx = SerializationContext(topic, MessageField.VALUE)
    for seq in range(args.events):
        key = f"check-{seq}"
        value = serializer({"check_id": key, "sequence": seq}, ctx)
        envelope = Envelope.new(
            "dev.choreograph.smoke.SmokeChecked", "choreograph-dev-smoke", key, correlation_id=run
        )
        txn.produce(topic, value, key.encode(), envelope.to_headers())
    outcome = txn.commit(30)
    if outcome is not Outcome.COMMITTED:
        say(f"the transaction was not committed ({outcome.value})")
        return result(False, failed=f"commit: {outcome.value}")
    say(f"committed {args.events} Avro events in one transaction")

    say("reading back")
    consumer = Consumer(
        {
            **client,
            "group.id": f"smoke-{run}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    # Assigned, not subscribed: reading back needs no group join (and no wait on a coordinator).
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    # The subject strategy named, as for the serializer: the client's default asks the registry
    # for topic associations, an endpoint only Confluent's registry serves.
    deserializer = AvroDeserializer(
        registry, conf={"subject.name.strategy": topic_record_subject_name_strategy}
    )
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(seen) < args.events and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        seen.append(deserializer(msg.value(), ctx))
    consumer.close()
    ok = sorted(e["sequence"] for e in seen) == list(range(args.events))
    verdict = "OK" if ok else "MISMATCH"
    say(f"read back {len(seen)}/{args.events} events read_committed: {verdict}")
    return result(ok, events=args.events, read_back=len(seen))
