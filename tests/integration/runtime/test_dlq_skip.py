"""`choreograph dlq skip` on the real broker: a stopped service's group moves past exactly one
record, which is dead-lettered first; anything unsafe is refused and changes nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph.runtime.records import Record
from tests.kafka_helpers import committed_consumer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def skip_cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "choreograph.cli.main", "dlq", "skip", "--bootstrap", bootstrap,
         *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def group_offset(admin: AdminClient, group: str, topic: str) -> int:
    listed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    )
    return int(listed[group].result(30).topic_partitions[0].offset)


def test_skip_dead_letters_the_record_and_moves_the_group_past_it(
    bootstrap_servers: str, admin: AdminClient, new_topic: Callable[..., str]
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    topic = new_topic("skip.source")
    admin.create_topics([NewTopic(f"{service}.dlq", 1, 1)])[f"{service}.dlq"].result(30)
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for i in range(3):
        producer.produce(topic, f"value-{i}".encode(), f"key-{i}".encode(), headers=[("h", b"x")])
    assert producer.flush(30) == 0
    # The service stopped on offset 1: its group stands there.
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": service})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    consumer.close()

    wrong = skip_cli(bootstrap_servers, "--service", service, "--topic", topic,
                     "--partition", "0", "--offset", "2", "--reason", "poison")  # fmt: skip
    assert wrong.returncode == 1 and "stands at" in wrong.stderr
    assert group_offset(admin, service, topic) == 1  # refused: nothing moved

    done = skip_cli(bootstrap_servers, "--service", service, "--topic", topic,
                    "--partition", "0", "--offset", "1", "--reason", "crashes readers")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"action": "dlq-skip"' in done.stdout and "crashes readers" in done.stdout
    assert group_offset(admin, service, topic) == 2

    reader = committed_consumer(bootstrap_servers, f"{service}.dlq")
    letters: list[Record] = []
    for _ in range(60):
        msg = reader.poll(0.5)
        if msg is not None and msg.error() is None:
            letters.append(Record.of(msg))
            break
    reader.close()
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.key, letter.value) == (b"key-1", b"value-1")
    assert letter.header("dlq_origin_topic") == topic and letter.header("dlq_origin_offset") == "1"
    assert letter.header("dlq_reason") == "skipped" and letter.header("h") == "x"


def test_skip_is_refused_while_the_service_runs(
    bootstrap_servers: str, new_topic: Callable[..., str]
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    topic = new_topic("skip.running")
    member = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": service,
            "auto.offset.reset": "earliest",
        }
    )
    member.subscribe([topic])
    for _ in range(40):
        member.poll(0.25)
        if member.assignment():
            break
    try:
        refused = skip_cli(bootstrap_servers, "--service", service, "--topic", topic,
                           "--partition", "0", "--offset", "0", "--reason", "x")  # fmt: skip
        assert refused.returncode == 1 and "stop the service first" in refused.stderr
    finally:
        member.close()
