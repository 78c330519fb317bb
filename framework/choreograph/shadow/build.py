"""The shadow form of a service: the same handlers, machines and stores under another name (so
its consumer group, changelogs, DLQ and transactional ids are its own), its own repartition
topics, and every record it would publish sent to `<topic>.shadow` instead. The one place that
names a shadow's topics."""

from __future__ import annotations

from choreograph.runtime.service import Service

SUFFIX = ".shadow"
NAME_SUFFIX = "-shadow"


def shadow_topic(topic: str) -> str:
    return f"{topic}{SUFFIX}"


def shadowed(service: Service) -> Service:
    """Turn `service` (a freshly built one: it is changed in place) into its shadow: it reads
    what the live service reads and publishes nothing where the live service does."""
    if service.name.endswith(NAME_SUFFIX):
        raise ValueError(f"{service.name} is a shadow already")
    live_name = service.name
    service.name = f"{live_name}{NAME_SUFFIX}"
    renamed = {topic: shadow_topic(topic) for topic in service.rekeyed}
    service.rekeyed = {renamed[topic]: r for topic, r in service.rekeyed.items()}
    for rekeyed in service.rekeyed.values():
        rekeyed.topic = renamed.get(rekeyed.topic, rekeyed.topic)
    service.inputs = [renamed.get(t, t) for t in service.inputs]
    service.outputs = [renamed.get(t, t) for t in service.outputs]
    service.published_as = {
        topic: shadow_topic(topic) for topic in service.outputs if topic not in service.rekeyed
    }
    return service


def published(service: Service) -> list[str]:
    """The topics a shadow writes its outputs to (not its own repartition topics)."""
    return sorted(service.published_as.values())
