"""Least-privilege Kafka ACLs, derived from a service's declared topology.

A service may read its inputs, write its outputs, read and write its own changelogs, write its
DLQ, use its consumer group and its transactional ids, and nothing else: a team's service cannot
write another team's topic or read another team's state. Rendered as kafka-acls commands, JSON,
or a Strimzi KafkaUser; `bindings()` gives them to an AdminClient.

The service creates its changelogs, DLQ and repartition topics at start-up when they are missing
(Create on those names only), and reads the size limit of the topics it writes
(DescribeConfigs), so an oversized record is dead-lettered before the broker refuses it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from choreograph.runtime.service import Service


@dataclass(frozen=True, order=True)
class Acl:
    resource_type: str  # topic, group, transactional-id
    name: str
    pattern_type: str  # literal or prefixed
    operation: str  # Read, Write, Describe, Create, DescribeConfigs
    principal: str
    host: str = "*"
    permission: str = "Allow"


def derive(service: Service, principal: str | None = None) -> list[Acl]:
    """The ACLs `service` needs to run, for `principal` (default User:<service name>)."""
    who = principal or f"User:{service.name}"
    changelogs = [service.changelog_topic(s) for s in service.store_names()]
    wanted: set[tuple[str, str, str, str]] = set()

    def allow(kind: str, name: str, *operations: str, pattern: str = "literal") -> None:
        for operation in operations:
            wanted.add((kind, name, pattern, operation))

    for topic in service.inputs:
        allow("topic", topic, "Read", "Describe")
    for topic in service.outputs:  # under the names it publishes them as (a shadow's own)
        allow("topic", service.published_as.get(topic, topic), "Write", "Describe",
              "DescribeConfigs")  # fmt: skip
    for topic in changelogs:
        allow("topic", topic, "Read", "Write", "Describe", "DescribeConfigs", "Create")
    for topic in (service.dlq_topic, *service.rekeyed):
        allow("topic", topic, "Write", "Describe", "DescribeConfigs", "Create")
    for topic in service.rekeyed:
        allow("topic", topic, "Read")
    allow("group", service.name, "Read", "Describe")
    # Transactional ids are `<service>-<instance id>`, one per running copy.
    allow("transactional-id", f"{service.name}-", "Write", "Describe", pattern="prefixed")
    return sorted(Acl(kind, name, pattern, op, who) for kind, name, pattern, op in wanted)


def _grouped(acls: list[Acl]) -> dict[tuple[str, str, str, str], list[str]]:
    grouped: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for acl in acls:
        grouped[(acl.principal, acl.resource_type, acl.name, acl.pattern_type)].append(
            acl.operation
        )
    return grouped


def kafka_acls_commands(acls: list[Acl], bootstrap: str = "$BOOTSTRAP") -> str:
    """One `kafka-acls.sh --add` per resource."""
    flags = {"topic": "--topic", "group": "--group", "transactional-id": "--transactional-id"}
    lines = []
    for (principal, kind, name, pattern), operations in sorted(_grouped(acls).items()):
        ops = " ".join(f"--operation {op}" for op in operations)
        prefixed = " --resource-pattern-type prefixed" if pattern == "prefixed" else ""
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal {principal} "
            f"{ops} {flags[kind]} {name}{prefixed}"
        )
    return "\n".join(lines)


def as_json(acls: list[Acl]) -> str:
    return json.dumps([asdict(a) for a in acls], indent=1)


def strimzi_acls(acls: list[Acl]) -> list[dict[str, Any]]:
    """The ACLs as Strimzi's KafkaUser lists them."""
    kinds = {"transactional-id": "transactionalId"}
    entries = [
        {
            "resource": {"type": kinds.get(kind, kind), "name": name, "patternType": pattern},
            "operations": operations,
            "host": "*",
        }
        for (_, kind, name, pattern), operations in sorted(_grouped(acls).items())
    ]
    return entries


def strimzi_user(acls: list[Acl], user: str, cluster: str) -> str:
    """A KafkaUser with SCRAM-SHA-512 and exactly these ACLs."""
    user_spec = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {"name": user, "labels": {"strimzi.io/cluster": cluster}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": strimzi_acls(acls)},
        },
    }
    return yaml.safe_dump(user_spec, sort_keys=False)


def helm_values(acls: list[Acl], user: str, cluster: str) -> str:
    """Values for the team-processor chart's `kafkaUser`."""
    values = {"kafkaUser": {"enabled": True, "name": user, "cluster": cluster,
                            "acls": strimzi_acls(acls)}}  # fmt: skip
    return yaml.safe_dump(values, sort_keys=False)


_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}
_OPERATION = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "Create": AclOperation.CREATE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
}


def bindings(acls: list[Acl]) -> list[AclBinding]:
    """The ACLs as AclBindings, for `AdminClient.create_acls`."""
    return [
        AclBinding(
            _RESOURCE[a.resource_type],
            a.name,
            ResourcePatternType.PREFIXED
            if a.pattern_type == "prefixed"
            else ResourcePatternType.LITERAL,
            a.principal,
            a.host,
            _OPERATION[a.operation],
            AclPermissionType.ALLOW,
        )
        for a in acls
    ]
