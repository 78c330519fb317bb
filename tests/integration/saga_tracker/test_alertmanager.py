"""Incidents on a real topic reach a real Alertmanager, and resolving them ends the alert."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.config import Guarantee, ServiceConfig
from choreograph.runtime.engine import Engine
from saga_tracker.definitions import command_and_incident_models
from saga_tracker.notifier import build_notifier
from tests.integration.saga_tracker.helpers import alerts, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def test_raised_then_resolved_incident_in_alertmanager(
    bootstrap_servers: str,
    registry_url: str,
    alertmanager_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = new_topic("choreograph.alerts")
    Incident = command_and_incident_models(REPO / "schemas/avro")["dev.choreograph.Incident"]
    incident_id = f"c-{uuid.uuid4().hex[:8]}/order-fulfilment/reservation"
    base = {
        "incident_id": incident_id,
        "severity": "critical",
        "process": "order-fulfilment",
        "version": 1,
        "step": "reservation",
        "correlation_id": incident_id.split("/")[0],
        "business_key": "o-1",
        "owner": "orders-oncall",
        "summary": "step reservation timed out",
        "at": datetime.now(UTC),
    }
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "saga-tracker",
    )
    service = build_notifier(
        Incident,
        alertmanager_url,
        trace_url="http://tracker/traces",
        name=f"notifier-{uuid.uuid4().hex[:6]}",
        topic=topic,
        repeat=timedelta(seconds=1),
    )
    config = ServiceConfig(
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        instance_id="n",
        state_dir=tmp_path,
        guarantee=Guarantee.AT_LEAST_ONCE,
    )
    with engine_thread(Engine(service, config)):
        publisher.publish(
            Incident.from_avro({**base, "status": "RAISED"}), base["correlation_id"], topic=topic
        )
        publisher.flush()
        wait_for(lambda: alerts(alertmanager_url, incident_id, active=True), "the alert to fire")
        [alert] = alerts(alertmanager_url, incident_id, active=True)
        assert (
            alert["labels"]["process"] == "order-fulfilment"
            and alert["labels"]["owner"] == "orders-oncall"
        )
        assert (
            alert["labels"]["severity"] == "critical" and alert["labels"]["step"] == "reservation"
        )
        assert alert["generatorURL"].endswith(base["correlation_id"])
        # Still open: sent again, so Alertmanager does not let it expire.
        first_update = alert["updatedAt"]
        wait_for(
            lambda: (
                alerts(alertmanager_url, incident_id, active=True)[0]["updatedAt"] != first_update
            ),
            "the open incident to be sent again",
            seconds=10,
        )
        publisher.publish(
            Incident.from_avro({**base, "status": "RESOLVED", "at": datetime.now(UTC)}),
            base["correlation_id"],
            topic=topic,
        )
        publisher.flush()
        wait_for(
            lambda: not alerts(alertmanager_url, incident_id, active=True), "the alert to resolve"
        )
