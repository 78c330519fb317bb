"""The local stack is real: Avro through the registry in Confluent wire format, and transactions."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.schema_registry import (
    Schema,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from choreograph.testing.servers import Servers
from tests.kafka_helpers import committed_consumer, registry_client

ORDER_PLACED = {
    "type": "record",
    "name": "OrderPlaced",
    "namespace": "com.acme.orders",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount_cents", "type": "long"},
    ],
}


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    consumer = committed_consumer(bootstrap, topic)
    records = []
    deadline = datetime.now(UTC).timestamp() + timeout
    while len(records) < expected and datetime.now(UTC).timestamp() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None or msg.error().code() == KafkaError._PARTITION_EOF
        if msg.error() is None:
            records.append(msg)
    consumer.close()
    return records


def test_avro_event_with_cloudevents_headers_round_trips_through_registry(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("orders.events")
    registry = registry_client(registry_url)
    serializer = AvroSerializer(
        registry,
        json.dumps(ORDER_PLACED),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    value = serializer(
        {"order_id": "o-1", "amount_cents": 4200}, SerializationContext(topic, MessageField.VALUE)
    )
    subject = f"{topic}-com.acme.orders.OrderPlaced"
    registered = registry.get_latest_version(subject)

    assert value[0] == 0
    assert struct.unpack(">I", value[1:5])[0] == registered.schema_id
    # The registry, asked directly over HTTP, holds the schema under the record-name subject.
    with urllib.request.urlopen(f"{registry_url}/schemas/ids/{registered.schema_id}") as reply:
        stored = json.load(reply)
    assert json.loads(stored["schema"])["name"] == "OrderPlaced"

    event_id = str(uuid.uuid4())
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"orders-service"),
        ("ce_type", b"com.acme.orders.OrderPlaced"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_subject", b"o-1"),
        ("content-type", b"application/avro"),
        ("ce_correlationid", b"corr-1"),
    ]
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    producer.produce(topic, key=b"o-1", value=value, headers=headers)
    assert producer.flush(15) == 0

    [msg] = consume_all(bootstrap_servers, topic, expected=1)
    got_headers = {k: v.decode() for k, v in msg.headers()}
    assert got_headers["ce_id"] == event_id
    assert got_headers["ce_type"] == "com.acme.orders.OrderPlaced"
    assert got_headers["ce_correlationid"] == "corr-1"
    assert msg.key() == b"o-1"
    # A fresh client with an empty cache must fetch the writer schema from the registry by id.
    fresh = AvroDeserializer(
        registry_client(registry_url),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    decoded = fresh(msg.value(), SerializationContext(topic, MessageField.VALUE))
    assert decoded == {"order_id": "o-1", "amount_cents": 4200}


def test_read_committed_consumer_sees_transactional_records_only_after_commit(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("payments.events")
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "transactional.id": f"smoke-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"aborted", value=b"never visible")
    producer.flush(15)
    producer.abort_transaction(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush(15)  # records are on the broker, transaction still open
    assert consume_all(bootstrap_servers, topic, expected=1, timeout=4.0) == []

    producer.commit_transaction(30)
    seen = consume_all(bootstrap_servers, topic, expected=3)
    assert [m.value() for m in seen] == [b"v0", b"v1", b"v2"]
    assert all(m.key() != b"aborted" for m in seen)


def test_the_registry_keeps_its_schemas_in_the_broker(
    servers: Servers, registry_url: str, new_topic: Callable[..., str]
) -> None:
    """Records outlive a registry restart, so the schema ids they carry must too: the local
    stack's registry journals to the broker (KafkaSQL) instead of keeping them in memory."""
    if servers.origin.startswith("testcontainers"):
        pytest.skip("the registry of testcontainers is not the local stack's")
    subject = f"{new_topic('journal.check')}-com.acme.orders.OrderPlaced"
    registry = registry_client(registry_url)
    schema_id = registry.register_schema(subject, Schema(json.dumps(ORDER_PLACED), "AVRO"))
    journal = committed_consumer(servers.bootstrap, "_registry-journal")
    found, deadline = False, datetime.now(UTC).timestamp() + 20
    while not found and datetime.now(UTC).timestamp() < deadline:
        msg = journal.poll(0.5)
        if msg is not None and msg.error() is None and msg.value():
            found = json.loads(msg.value()).get("artifactId") == subject
    journal.close()
    assert found, f"{subject} (id {schema_id}) is not in the registry's journal topic"
    topic = ConfigResource(ConfigResource.Type.TOPIC, "_registry-journal")
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    [kept] = admin.describe_configs([topic]).values()
    assert kept.result(10)["retention.ms"].value == "-1"  # never expires under the records


def test_dev_smoke_commits_through_the_transaction_owner_and_reads_back(
    servers: Servers,
) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "choreograph.cli.main", "dev", "smoke",
             "--bootstrap", servers.bootstrap, "--registry", servers.registry_url, "--events", "7"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except subprocess.TimeoutExpired as slow:  # say how far it got
        pytest.fail(f"dev smoke took over 120 s; it printed: {slow.stdout!r} {slow.stderr!r}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "committed 7 Avro events in one transaction" in done.stdout
    assert "read back 7/7 events read_committed: OK" in done.stdout
