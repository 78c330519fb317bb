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

from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.dependencies import Dependencies
from choreograph.runtime.errors import BrokerUnreachable
from choreograph.runtime.kafka_logs import SILENT


def first_contact(config: ServiceConfig, stopping: threading.Event) -> bool:
    """Whether the broker answered before the service was stopped; BrokerUnreachable (exit 2)
    when it does not within `startup_broker_timeout_s`, rather than retrying in silence."""
    bound = config.startup_broker_timeout_s
    quiet: dict[str, Any] = {**config.client_conf(), "logger": SILENT}
    probe = AdminClient(quiet)
    deadline = time.monotonic() + bound
    while not stopping.is_set():
        try:
            probe.list_topics(timeout=max(min(2.0, deadline - time.monotonic()), 0.2))
            return True
        except KafkaException as exc:
            problem = exc.args[0] if exc.args else exc
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(
                f"cannot reach a Kafka broker at {config.bootstrap_servers} "
                f"(CHOREOGRAPH_BOOTSTRAP) within {bound:.0f} s: {problem}; check the "
                "address, the port and that the broker is up"
            )
        stopping.wait(0.5)
    return False


def wait_for_broker(
    attempt: Callable[[], bool],
    stopping: threading.Event,
    dependencies: Dependencies,
    backoff_max_s: float,
) -> bool:
    """Retry `attempt` (which fails with a KafkaException or returns False) with jittered
    back-off until it works (True) or the service is stopped (False)."""
    delay, rand = 0.5, random.Random()
    while not stopping.is_set():
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
