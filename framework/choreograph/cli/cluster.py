"""The cluster every command that talks to Kafka or the registry reaches: the address flags,
defaulting to the environment the local stack and the Helm charts set, and the same
`ServiceConfig` (security, SASL, SSL, registry credentials from CHOREOGRAPH_*) services use.
A broker that does not answer is one line and exit 2, never an empty result."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.kafka_logs import SILENT
from choreograph.testing.servers import BOOTSTRAP_ENV, REGISTRY_ENV

LOCAL_BOOTSTRAP = "127.0.0.1:9092"
LOCAL_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"
REACH_TIMEOUT_S = 6.0


class ClusterUnreachable(Exception):
    """The broker did not answer, or a topic the command reads is not there: exit 2."""


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=os.environ.get(BOOTSTRAP_ENV, LOCAL_BOOTSTRAP))


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=os.environ.get(REGISTRY_ENV, LOCAL_REGISTRY))


def cluster_config(args: argparse.Namespace) -> ServiceConfig:
    """The services' settings from the environment, with the addresses given on the line."""
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["bootstrap_servers"] = args.bootstrap
    if isinstance(getattr(args, "registry", None), str):
        overrides["registry_url"] = args.registry
    return ServiceConfig.from_env(**overrides)


def reach(config: ServiceConfig, topic: str | None = None) -> None:
    """Return once the broker answered (and has `topic`); ClusterUnreachable within
    REACH_TIMEOUT_S otherwise, saying what to check."""
    quiet: dict[str, Any] = {**config.client_conf(), "logger": SILENT}
    probe = AdminClient(quiet)
    deadline = time.monotonic() + REACH_TIMEOUT_S
    problem: object = "no answer"
    while time.monotonic() < deadline:
        try:
            metadata = probe.list_topics(timeout=max(min(2.0, deadline - time.monotonic()), 0.2))
        except KafkaException as exc:
            problem = exc.args[0] if exc.args else exc
            time.sleep(0.3)
            continue
        if topic is not None and topic not in metadata.topics:
            raise ClusterUnreachable(
                f"there is no topic {topic} on {config.bootstrap_servers}: check the name "
                "(a service's dead letters are in <service>.dlq once it has started)"
            )
        return
    protocol = config.security.get("security.protocol", "PLAINTEXT")
    raise ClusterUnreachable(
        f"cannot reach a Kafka broker at {config.bootstrap_servers} ({protocol}) within "
        f"{REACH_TIMEOUT_S:.0f} s: {problem}; check --bootstrap (CHOREOGRAPH_BOOTSTRAP), that "
        "the broker is up, and the security settings (CHOREOGRAPH_SECURITY_PROTOCOL, "
        "CHOREOGRAPH_SASL_*)"
    )
