"""Dead-letter records: the original key, value and headers, plus where and why it failed.

Inspect, replay and skip are for operators (`choreograph dlq inspect|replay|skip`). Skip moves a
stopped service's consumer group past one record, dead-lettering it first: the way out when a
record stops a service that the runtime could not protect (an older release, a bug). Replay sends
each record back to its origin topic unchanged but for a `dlq_replayed_from` header, and remembers
how far it got in a consumer group of its own, so a replay can be run again without sending twice
what it already sent.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from choreograph.runtime.limits import RecordLimits
from choreograph.runtime.partitioning import java_compatible
from choreograph.runtime.records import HeaderList, Record

DLQ_HEADERS = (
    "dlq_origin_topic",
    "dlq_origin_partition",
    "dlq_origin_offset",
    "dlq_service",
    "dlq_reason",
    "dlq_error_class",
    "dlq_error_message",
    "dlq_attempts",
    "dlq_failed_at",
)


def dead_letter_headers(
    original: HeaderList | None,
    *,
    topic: str | None,
    partition: int,
    offset: int,
    service: str,
    reason: str,
    error: BaseException,
    attempts: int,
) -> list[tuple[str, str | bytes | None]]:
    keep: list[tuple[str, str | bytes | None]] = [
        (k, v) for k, v in (original or []) if not k.startswith("dlq_") or k == "dlq_timer"
    ]
    message = "".join(traceback.format_exception_only(type(error), error)).strip()[:4000]
    origin: list[tuple[str, str | bytes | None]] = []
    if topic is not None:  # a record; a failed timer has no origin to replay to
        origin = [
            ("dlq_origin_topic", topic),
            ("dlq_origin_partition", str(partition)),
            ("dlq_origin_offset", str(offset)),
        ]
    return [
        *keep,
        *origin,
        ("dlq_service", service),
        ("dlq_reason", reason),
        ("dlq_error_class", f"{type(error).__module__}.{type(error).__qualname__}"),
        ("dlq_error_message", message),
        ("dlq_attempts", str(attempts)),
        ("dlq_failed_at", datetime.now(UTC).isoformat()),
    ]


def slim_dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, str | bytes | None]],
    limit: int,
) -> tuple[bytes | None, None, list[tuple[str, str | bytes | None]]]:
    """A dead letter too large to copy: no value, and only the headers that say what and where it
    was (`dlq_origin_*` point at the original, which stays on its topic until retention)."""
    kept: list[tuple[str, str | bytes | None]] = [
        (k, v) for k, v in headers if k.startswith(("dlq_", "ce_")) and len(v or b"") <= 4096
    ]
    kept.append(("dlq_value_omitted", str(len(value or b""))))
    if key is not None and (limit <= 0 or len(key) > limit // 4):
        kept.append(("dlq_key_omitted", str(len(key))))
        key = None
    return key, None, kept


def fitting_dead_letter(
    limits: RecordLimits,
    dlq: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, str | bytes | None]],
) -> tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]:
    """The dead letter as it is when `dlq` accepts its size, else its headers-only form."""
    if limits.fits(dlq, key, value, headers):
        return key, value, headers
    return slim_dead_letter(key, value, headers, limits.limit(dlq))


def summary(record: Record) -> dict[str, Any]:
    """What an operator needs to see of a dead letter."""
    return {
        "dlq_offset": f"{record.partition}:{record.offset}",
        "key": record.key.decode(errors="replace") if record.key else None,
        "type": record.header("ce_type"),
        "correlation_id": record.header("ce_correlationid"),
        **{h.removeprefix("dlq_"): record.header(h) for h in DLQ_HEADERS},
    }


def client_conf(cluster: str | dict[str, Any]) -> dict[str, Any]:
    """A bootstrap address alone (tests, the local stack) or a whole client configuration
    (brokers, SASL, SSL: `ServiceConfig.client_conf()`)."""
    return {"bootstrap.servers": cluster} if isinstance(cluster, str) else dict(cluster)


def read_dead_letters(
    bootstrap: str | dict[str, Any],
    dlq_topic: str,
    *,
    group: str | None = None,
    limit: int | None = None,
    idle_s: float = 3.0,
) -> Iterator[tuple[Consumer, Record]]:
    """Records of the DLQ from the start (or the group's position) until it is idle."""
    consumer = Consumer(
        {
            **client_conf(bootstrap),
            "group.id": group or f"dlq-inspect-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([dlq_topic])
    seen, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < idle_s and (limit is None or seen < limit):
            msg = consumer.poll(0.3)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {dlq_topic}: {err}")
                continue
            last = time.monotonic()
            seen += 1
            yield consumer, Record.of(msg)
    finally:
        consumer.close()


def replay(
    bootstrap: str | dict[str, Any],
    dlq_topic: str,
    *,
    error_class: str | None = None,
    limit: int | None = None,
) -> tuple[int, int]:
    """Send dead letters back to their origin topics; return (replayed, skipped)."""
    producer = Producer(java_compatible({**client_conf(bootstrap), "enable.idempotence": True}))
    replayed = skipped = 0
    group = f"{dlq_topic}.replay"
    for consumer, record in read_dead_letters(bootstrap, dlq_topic, group=group, limit=limit):
        origin = record.header("dlq_origin_topic")
        if origin is None or (error_class and record.header("dlq_error_class") != error_class):
            skipped += 1
        else:
            headers: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in record.headers if not k.startswith("dlq_")
            ]
            headers.append(("dlq_replayed_from", f"{dlq_topic}:{record.partition}:{record.offset}"))
            producer.produce(origin, key=record.key, value=record.value, headers=headers)
            replayed += 1
        if producer.flush(30) != 0:
            raise TimeoutError("replayed records were not acknowledged")
        consumer.commit(
            offsets=[TopicPartition(dlq_topic, record.partition, record.offset + 1)],
            asynchronous=False,
        )
    return replayed, skipped


audit_log = logging.getLogger("choreograph.audit")


class SkipRefused(Exception):
    """The skip would be unsafe or cannot be done; nothing was changed."""


def skip(
    client: dict[str, Any],
    service: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    reason: str,
    actor: str | None = None,
) -> dict[str, Any]:
    """Dead-letter the record at `topic[partition]@offset` and move `service`'s consumer group
    past it. Only while the group has no members (the service is stopped) and only when the group
    stands exactly at that record, so nothing else is skipped. Returns the audit entry."""
    admin = AdminClient(client)
    group = admin.describe_consumer_groups([service])[service].result(30)
    if group.members:
        raise SkipRefused(
            f"{service} has {len(group.members)} running member(s); stop the service first "
            "(its offsets can only move while nobody consumes them)"
        )
    tp = TopicPartition(topic, partition)
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(service, [tp])])
    committed = listed[service].result(30).topic_partitions[0].offset
    if committed != offset:
        raise SkipRefused(
            f"{service} stands at {topic}[{partition}]@{committed}, not @{offset}: skipping "
            "would move it over other records too; give the offset it stands at"
        )
    record = _read_one(client, topic, partition, offset)
    dlq = f"{service}.dlq"
    headers = dead_letter_headers(
        record.headers,
        topic=topic,
        partition=partition,
        offset=offset,
        service=service,
        reason="skipped",
        error=RuntimeError(f"skipped by an operator: {reason}"),
        attempts=0,
    )
    key, value, headers = fitting_dead_letter(
        RecordLimits(admin, {}), dlq, record.key, record.value, headers
    )
    producer = Producer(java_compatible({**client, "enable.idempotence": True}))
    producer.produce(dlq, value, key, headers=headers, partition=partition)
    if producer.flush(30) != 0:
        raise SkipRefused(f"the dead letter was not acknowledged by {dlq}; nothing was skipped")
    moved = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(service, [TopicPartition(topic, partition, offset + 1)])]
    )
    moved[service].result(30)
    entry = {
        "action": "dlq-skip",
        "service": service,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "actor": actor or getpass.getuser(),
        "reason": reason,
        "dead_letter": dlq,
        "value_copied": value is not None,
        "at": datetime.now(UTC).isoformat(),
    }
    audit_log.warning("operator skipped a record", extra={"audit": json.dumps(entry)})
    return entry


def _read_one(client: dict[str, Any], topic: str, partition: int, offset: int) -> Record:
    consumer = Consumer(
        {
            **client,
            "group.id": f"choreograph-dlq-skip-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise SkipRefused(f"reading {topic}[{partition}]@{offset}: {err}")
            if msg.offset() != offset:
                raise SkipRefused(
                    f"{topic}[{partition}] has no committed record at {offset} "
                    f"(the next is at {msg.offset()})"
                )
            return Record.of(msg)
        raise SkipRefused(f"no record at {topic}[{partition}]@{offset} within 30 s")
    finally:
        consumer.close()
