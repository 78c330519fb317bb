"""The cluster every command that talks to Kafka or the registry reaches: the address flags,
defaulting to the environment the local stack and the Helm charts set, and the same
`ServiceConfig` (security, SASL, SSL, registry credentials from CHOREOGRAPH_*) services use.
A broker that does not answer is one line and exit 2, never an empty result."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from choreograph.runtime.broker_contact import cluster_metadata
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.errors import BrokerUnreachable
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
    try:
        metadata = cluster_metadata(config, REACH_TIMEOUT_S)
    except BrokerUnreachable as err:
        raise ClusterUnreachable(str(err)) from None
    if metadata is not None and topic is not None and topic not in metadata.topics:
        raise ClusterUnreachable(
            f"there is no topic {topic} on {config.bootstrap_servers}: check the name "
            "(a service's dead letters are in <service>.dlq once it has started)"
        )


def reached(
    args: argparse.Namespace, command: str, topic: str | None = None
) -> ServiceConfig | None:
    """The cluster settings of `args`, once its broker answered (and has `topic`); None, having
    said why in one line, when not. The caller exits 2 then."""
    config = cluster_config(args)
    try:
        reach(config, topic)
    except ClusterUnreachable as err:
        print(f"choreograph {command}: {err}", file=sys.stderr)
        return None
    return config


def registry_client(config: ServiceConfig) -> Any:
    """A schema registry client with the services' registry settings (URL, credentials, CA)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient(config.registry_conf())
