"""Liveness and readiness as `/healthz` and `/readyz` answer them, on a clock the test moves."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

from choreograph.observability.endpoint import endpoint_app
from choreograph.observability.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(app: Any, path: str) -> tuple[str, str]:
    answered: list[str] = []
    body = app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""},
               lambda status, headers: answered.append(status))  # fmt: skip
    return answered[0], b"".join(body).decode()


def test_live_while_the_loop_goes_round_not_when_it_stops() -> None:
    clock = Clock()
    health = Health("payments", 60, clock=clock)
    clock.now += 59
    assert health.live()[0]
    clock.now += 2
    live, said = health.live()
    assert not live and said == (
        "payments: the processing loop has not gone round for 61 s (bound 60 s): a handler or "
        "a client call is blocked"
    )
    health.beat()
    assert health.live()[0]


def test_ready_once_joined_and_restored_while_the_broker_answers() -> None:
    away: dict[str, float] = {}
    health = Health("payments", 60, away, clock=Clock())
    assert health.ready() == (False, "payments: starting (joining its group)")
    health.restoring = "the state of partition(s) 0"
    assert health.ready() == (False, "payments: restoring the state of partition(s) 0")
    health.restoring, health.running = "", True
    assert health.ready() == (True, "payments: ready")
    away["broker"] = 1.0
    assert health.ready() == (False, "payments: the broker does not answer")
    away["registry"] = 1.0
    del away["broker"]
    assert health.ready()[0]  # a registry away pauses records, not the service


def test_the_endpoint_answers_probes_and_metrics_on_one_port() -> None:
    registry = CollectorRegistry()
    Counter("choreograph_events", "handled", registry=registry).inc()
    clock = Clock()
    router, tracker = Health("router", 10, clock=clock), Health("tracker", 10, clock=clock)
    router.running = tracker.running = True
    app = endpoint_app(registry, [router, tracker])
    assert call(app, "/readyz") == ("200 OK", "router: ready\ntracker: ready\n")
    tracker.running = False
    assert call(app, "/readyz") == (
        "503 Service Unavailable",
        "tracker: starting (joining its group)\n",
    )
    clock.now += 11
    router.beat()
    status, said = call(app, "/healthz")
    assert status == "503 Service Unavailable" and said.startswith("tracker: the processing")
    status, metrics = call(app, "/metrics")
    assert status == "200 OK" and "choreograph_events_total 1.0" in metrics
