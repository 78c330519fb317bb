"""The whole tracker process on the real broker, registry and Alertmanager: a compensation that
is never confirmed escalates to a critical incident; an operator retries it over the HTTP API
with a bearer token; the confirmed refund resolves the incident. Every request is audited, every
status change is on `choreograph.traces`, and /metrics follows along."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.config import ServiceConfig
from choreograph_examples.contracts.inventory import StockReleased
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentRefunded
from saga_tracker.access import digest
from saga_tracker.app import TrackerApp, TrackerSettings
from tests.integration.saga_tracker.helpers import alerts, collect, order_placed, wait_for
from tests.ports import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
# The reservation gets 2 s, both compensations 6 s: long enough for the test to confirm the
# operator's retry well before that retry's own deadline.
DEFINITION = (
    (REPO / "processes/order-fulfilment.v1.yaml")
    .read_text()
    .replace("      deadline: 10m", "      deadline: 6s")
    .replace("    deadline: 10m", "    deadline: 2s")
)
OPERATOR, VIEWER = "operator-token-" + uuid.uuid4().hex, "viewer-token-" + uuid.uuid4().hex


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def metric(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(url) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_escalated_compensation_retried_by_an_operator_and_audited(
    bootstrap_servers: str,
    registry_url: str,
    alertmanager_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    domains = ("orders", "payments", "inventory", "shipping")
    topic = {d: new_topic(f"{d}.events", 2) for d in domains}
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes/order-fulfilment.v1.yaml").write_text(DEFINITION)
    (tmp_path / "tokens.yaml").write_text(
        "tokens:\n"
        f"  - {{name: alice, role: operator, sha256: {digest(OPERATOR)}}}\n"
        f"  - {{name: victor, role: viewer, sha256: {digest(VIEWER)}}}\n"
    )
    run = uuid.uuid4().hex[:6]
    metrics_port = free_port()
    settings = TrackerSettings(
        definitions=tmp_path / "processes",
        schemas=REPO / "schemas/avro",
        inputs=list(topic.values()),
        config=ServiceConfig(
            bootstrap_servers=bootstrap_servers,
            registry_url=registry_url,
            instance_id="t",
            state_dir=tmp_path / "state",
            auto_register_schemas=True,
        ),
        name=f"tracker-{run}",
        repartition=new_topic("saga-tracker.repartition", 2),
        http_port=0,
        tokens=tmp_path / "tokens.yaml",
        alerts_topic=new_topic("choreograph.alerts"),
        alertmanager_url=alertmanager_url,
        metrics_port=metrics_port,
    )
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )
    key = f"E{run}"
    app = TrackerApp(settings).start()
    scrape = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        order = order_placed(key, "250.00")
        first = publisher.publish(order, key, topic=topic["orders"])
        paid = PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal("250.00"))
        publisher.publish(paid, key, topic=topic["payments"], parent=first)
        publisher.flush()
        corr = first.correlation_id
        api = f"{app.public_url}/api/instances/{corr}"

        # Every part (router, tracker, batch runner, notifier) live and ready, on the metrics port.
        def probe(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}") as reply:
                    return reply.status, reply.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, err.read().decode()

        wait_for(lambda: probe("/readyz")[0] == 200, "the tracker ready", seconds=60)
        status, said = probe("/readyz")
        assert said.count(": ready") == len(app.engines) == 4, said
        assert probe("/healthz")[0] == 200
        # Reservation times out (2 s), the refund is sent and never confirmed (6 s): escalation.
        incident_id = f"{corr}/order-fulfilment/payment.compensation"
        wait_for(
            lambda: alerts(alertmanager_url, incident_id, active=True),
            "the escalation to reach Alertmanager",
            seconds=40,
        )
        [page] = alerts(alertmanager_url, incident_id, active=True)
        assert page["labels"]["severity"] == "critical" and page["labels"]["step"] == "payment"
        assert page["generatorURL"] == f"{app.public_url}/traces/{corr}"
        # The API reads the visibility store, which follows the tracker's commits closely.
        wait_for(
            lambda: call(api, VIEWER)[1]["status"] == "needs_manual_resolution",
            "the escalated instance in the visibility store",
            seconds=5,
        )
        assert metric(scrape, "choreograph_saga_value_at_risk", process="order-fulfilment") == 250
        # The timed-out reservation was in doubt: its release was sent too, and escalated too.
        wait_for(
            lambda: metric(scrape, "choreograph_saga_compensations_total", outcome="failed") == 2,
            "both undos to escalate",
        )
        released = StockReleased(order_id=key)  # the release was only slow
        publisher.publish(released, key, topic=topic["inventory"], correlation_id=corr)
        publisher.flush()
        wait_for(
            lambda: call(api, VIEWER)[1]["steps"]["reservation"]["status"] == "compensated",
            "the late release to count",
        )
        assert call(api, VIEWER)[1]["status"] == "needs_manual_resolution"  # the refund is not

        # Reading needs a token; acting needs the operator role and a reason.
        assert call(api)[0] == 401
        retry = {"action": "retry", "step": "payment", "reason": "PSP back up"}
        assert call(f"{api}/actions", None, retry)[0] == 401
        assert call(f"{api}/actions", VIEWER, retry)[0] == 403
        assert call(f"{api}/actions", OPERATOR, {"action": "retry", "step": "payment"})[0] == 400
        refused = call(f"{api}/actions", OPERATOR, {"action": "compensate", "reason": "x"})
        assert refused == (409, {"error": "the instance is needs_manual_resolution"})
        status, accepted = call(f"{api}/actions", OPERATOR, retry)
        assert status == 202
        wait_for(
            lambda: call(api, VIEWER)[1]["status"] == "compensating", "the retry to be applied"
        )
        confirm = PaymentRefunded(order_id=key, reason="refunded")
        publisher.publish(confirm, key, topic=topic["payments"], correlation_id=corr)
        publisher.flush()

        refunds = collect(
            bootstrap_servers,
            registry_url,
            "payments.commands",
            {corr},
            seconds=20,
            until=lambda found: len(found) >= 2,
        )
        assert len(refunds) == 2  # the first one, then the operator's retry
        assert "retry payment requested by alice: PSP back up" in refunds[1][1]["reason"]
        wait_for(lambda: call(api, VIEWER)[1]["status"] == "compensated", "the refund to land")
        wait_for(
            lambda: not alerts(alertmanager_url, incident_id, active=True),
            "the escalation to resolve in Alertmanager",
        )
        assert metric(scrape, "choreograph_saga_value_at_risk", process="order-fulfilment") == 0
        assert metric(scrape, "choreograph_saga_active_instances", process="order-fulfilment") == 0
        assert metric(scrape, "choreograph_saga_operator_actions_total", outcome="applied") == 1
        trace = call(api, VIEWER)[1]
        assert [e["note"] for e in trace["timeline"] if e["kind"] == "operator"] == [
            "retry payment by alice: PSP back up"
        ]
    finally:
        app.stop()
    assert not app.failed.is_set()

    audit = collect(
        bootstrap_servers,
        registry_url,
        "choreograph.audit",
        {corr},
        seconds=20,
        until=lambda found: len(found) >= 6,
    )
    outcomes = sorted((e["outcome"], e["actor"], e["action"]) for _, e in audit)
    assert outcomes == [
        ("ACCEPTED", "alice", "retry"),
        ("APPLIED", "alice", "retry"),
        ("DENIED", "anonymous", "retry"),
        ("DENIED", "victor", "retry"),
        ("INVALID", "alice", "retry"),
        ("REFUSED", "alice", "compensate"),
    ]
    accepted_entry = next(e for _, e in audit if e["outcome"] == "ACCEPTED")
    assert accepted_entry["action_id"] == accepted["action_id"]
    traces = collect(
        bootstrap_servers,
        registry_url,
        "choreograph.traces",
        {corr},
        seconds=20,
        until=lambda found: any(t["status"] == "compensated" for _, t in found),
    )
    assert [t["status"] for _, t in traces] == [
        "compensating",
        "needs_manual_resolution",
        "compensating",
        "compensated",
    ]
    assert traces[-1][1]["value"] == 250.0
