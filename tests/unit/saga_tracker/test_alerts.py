"""Incident payloads for Alertmanager API v2 and PagerDuty Events v2."""

from __future__ import annotations

from datetime import UTC, datetime

from saga_tracker.alerts import alertmanager_alert, pagerduty_event

AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
RAISED = {
    "incident_id": "c-1/order-fulfilment/reservation",
    "status": "RAISED",
    "severity": "critical",
    "process": "order-fulfilment",
    "version": 1,
    "step": "reservation",
    "correlation_id": "c-1",
    "business_key": "o-1",
    "owner": "orders-oncall",
    "summary": "step reservation timed out",
    "at": AT,
}


def test_alertmanager_alert_carries_the_routing_labels_and_trace_link() -> None:
    alert = alertmanager_alert(RAISED, "http://tracker/traces")
    assert alert["labels"] == {
        "alertname": "ChoreographProcessIncident",
        "process": "order-fulfilment",
        "step": "reservation",
        "severity": "critical",
        "owner": "orders-oncall",
        "incident_id": "c-1/order-fulfilment/reservation",
    }
    assert alert["generatorURL"] == "http://tracker/traces/c-1"
    assert alert["startsAt"] == AT.isoformat() and "endsAt" not in alert


def test_resolved_incident_ends_the_alert() -> None:
    alert = alertmanager_alert({**RAISED, "status": "RESOLVED"})
    assert alert["endsAt"] == AT.isoformat() and alert["startsAt"] < alert["endsAt"]
    assert alert["labels"] == alertmanager_alert(RAISED)["labels"]  # the same alert, ended
    assert alertmanager_alert({**RAISED, "step": None})["labels"]["step"] == "process"


def test_pagerduty_trigger_and_resolve_share_the_dedup_key() -> None:
    trigger = pagerduty_event(RAISED, "rk", "http://tracker/traces")
    resolve = pagerduty_event({**RAISED, "status": "RESOLVED"}, "rk")
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == RAISED["incident_id"]
    assert (
        trigger["payload"]["severity"] == "critical"
        and trigger["payload"]["source"] == "choreograph/order-fulfilment"
    )
    assert trigger["links"][0]["href"] == "http://tracker/traces/c-1" and "payload" not in resolve
