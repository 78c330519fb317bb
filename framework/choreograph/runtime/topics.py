"""Topics a service owns or reads: co-partitioning checks, changelog and DLQ creation.

`create_missing` is the one place the framework creates topics (a service's changelogs and DLQ,
a replay sandbox, a shadow run's outputs, the tracker's batches topic): topics another run made
meanwhile are fine, any other refusal says which topic and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from choreograph.runtime.errors import ConfigurationError

if TYPE_CHECKING:
    from choreograph.runtime.service import Service


def partition_counts(admin: AdminClient, topics: list[str], timeout: float = 30) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout)
    counts = {}
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ConfigurationError(
                f"input topic {topic} does not exist: a service reads topics, it does not "
                "create them; create it with its owner's partition count (e.g. kafka-topics.sh "
                f"--create --topic {topic} --partitions 6), or correct the service's inputs"
            )
        counts[topic] = len(found.partitions)
    return counts


def ensure_service_topics(admin: AdminClient, service: Service, replication: int = -1) -> int:
    """Check inputs are co-partitioned; create compacted changelogs and the DLQ with as many
    partitions. Return the partition count."""
    counts = partition_counts(admin, service.external_inputs)
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{t}={n}" for t, n in counts.items())
        raise ConfigurationError(
            f"inputs of {service.name} are not co-partitioned ({detail}): state of one key must "
            "live in one partition task; repartition the inputs to one partition count"
        )
    n = next(iter(counts.values()))
    wanted = {
        service.changelog_topic(s): {"cleanup.policy": "compact"} for s in service.store_names()
    }
    wanted[service.dlq_topic] = {}
    for topic in service.rekeyed:  # group_by: co-partitioned with the inputs by construction
        wanted[topic] = {"cleanup.policy": "delete"}
    existing = partition_counts_if_exist(admin, list(wanted))
    for topic, have in existing.items():
        if topic != service.dlq_topic and have != n:
            raise ConfigurationError(
                f"{topic} has {have} partitions, inputs have {n}: a changelog or repartition "
                "topic must have as many partitions as the inputs"
            )
    create_missing(
        admin,
        {t: n for t in wanted if t not in existing},
        configs=wanted,
        replication=replication,
        existing=set(existing),
    )
    return n


def create_missing(
    admin: AdminClient,
    partitions: dict[str, int],
    *,
    configs: dict[str, dict[str, str]] | None = None,
    replication: int = -1,
    existing: set[str] | None = None,
) -> list[str]:
    """Create each topic of `partitions` (name -> partition count) that does not exist yet, with
    its `configs`; the ones created. `existing`: the topics known to exist (else asked)."""
    if existing is None:
        existing = set(partition_counts_if_exist(admin, list(partitions)))
    missing = [
        NewTopic(
            t, num_partitions=n, replication_factor=replication, config=(configs or {}).get(t, {})
        )
        for t, n in partitions.items()
        if t not in existing
    ]
    created = []
    for topic, future in (
        admin.create_topics(missing, operation_timeout=30) if missing else {}
    ).items():
        try:
            future.result()
            created.append(topic)
        except Exception as err:  # made meanwhile by another run: fine
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise ConfigurationError(f"cannot create {topic}: {err}") from err
    return created


def partition_counts_if_exist(admin: AdminClient, topics: list[str]) -> dict[str, int]:
    metadata = admin.list_topics(timeout=30)
    return {
        t: len(metadata.topics[t].partitions)
        for t in topics
        if t in metadata.topics and metadata.topics[t].error is None
    }
