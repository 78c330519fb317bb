"""Start-up against a broker: one that never answers is most likely a wrong address and stops
the service with a one-line reason; one that answered and went away is a pause."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata

from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.dependencies import Dependencies
from choreograph.runtime.errors import BrokerUnreachable
from choreograph.runtime.kafka_logs import SILENT


def first_contact(config: ServiceConfig, stopping: threading.Event) -> bool:
    """Whether the broker answered before the service was stopped; BrokerUnreachable (exit 2)
    when it does not within `startup_broker_timeout_s`, rather than retrying in silence."""
    return cluster_metadata(config, config.startup_broker_timeout_s, stopping) is not None


def cluster_metadata(
    config: ServiceConfig, bound: float, stopping: threading.Event | None = None
) -> ClusterMetadata | None:
    """The cluster's metadata once a broker answers (None: stopped first); BrokerUnreachable
    when none does within `bound` seconds. Services at start-up and operator commands alike."""
    quiet: dict[str, Any] = {**config.client_conf(), "logger": SILENT}
    probe = AdminClient(quiet)
    deadline = time.monotonic() + bound
    stopping = stopping or threading.Event()
    while not stopping.is_set():
        try:
            return probe.list_topics(timeout=max(min(2.0, deadline - time.monotonic()), 0.2))
        except KafkaException as exc:
            problem = exc.args[0] if exc.args else exc
        if time.monotonic() >= deadline:
            protocol = config.security.get("security.protocol", "PLAINTEXT")
            raise BrokerUnreachable(
                f"cannot reach a Kafka broker at {config.bootstrap_servers} ({protocol}) "
                f"(CHOREOGRAPH_BOOTSTRAP) within {bound:.0f} s: {problem}; check the "
                "address, the port, that the broker is up, and the security settings "
                "(CHOREOGRAPH_SECURITY_PROTOCOL, CHOREOGRAPH_SASL_*)"
            )
        stopping.wait(0.3)
    return None


def wait_for_broker(
    attempt: Callable[[], bool],
    stopping: threading.Event,
    dependencies: Dependencies,
    backoff_max_s: float,
    beat: Callable[[], None] = lambda: None,
) -> bool:
    """Retry `attempt` (which fails with a KafkaException or returns False) with jittered
    back-off until it works (True) or the service is stopped (False). `beat`: called each
    round (waiting for the broker is a pause, not a wedge)."""
    delay, rand = 0.5, random.Random()
    while not stopping.is_set():
        beat()
        try:
            if attempt():
                dependencies.available("broker")
                return True
            problem: object = "no answer"
        except KafkaException as exc:
            problem = exc.args[0] if exc.args else exc
        dependencies.unavailable("broker", problem)
        stopping.wait(delay * (0.5 + rand.random() / 2))
        delay = min(delay * 2, backoff_max_s)
    return False
