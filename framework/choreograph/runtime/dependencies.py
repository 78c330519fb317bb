"""Which dependencies of a running service (the broker, the schema registry) are away, and since
when: one log line and a gauge when one goes and when it comes back, not one per retry."""

from __future__ import annotations

import logging
import time

from choreograph.contracts.serde import RegistryUnavailable, UnknownSubject
from choreograph.observability.metrics import ServiceMetrics

log = logging.getLogger("choreograph.engine")


class Dependencies:
    def __init__(self, service: str, metrics: ServiceMetrics) -> None:
        self.service = service
        self.metrics = metrics
        self.away: dict[str, float] = {}  # dependency -> since when (monotonic)

    def unavailable(self, dependency: str, problem: object) -> None:
        if dependency in self.away:
            return
        self.away[dependency] = time.monotonic()
        self.metrics.dependency_up.labels(self.service, dependency).set(0)
        log.warning(
            f"{dependency} unavailable; pausing until it answers",
            extra={"dependency": dependency, "error": str(problem)},
        )

    def available(self, dependency: str) -> None:
        since = self.away.pop(dependency, None)
        self.metrics.dependency_up.labels(self.service, dependency).set(1)
        if since is not None:
            log.warning(
                f"{dependency} available again; resumed",
                extra={"dependency": dependency, "away_s": round(time.monotonic() - since, 1)},
            )


def dependency_of(error: BaseException) -> str:
    """The dependency an infrastructure error says is away."""
    return "registry" if isinstance(error, RegistryUnavailable | UnknownSubject) else "broker"
