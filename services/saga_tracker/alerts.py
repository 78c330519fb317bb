"""Incidents for on-call tools: Alertmanager API v2 alerts and PagerDuty Events v2 payloads.

An incident keeps one identity from raise to resolve (`incident_id`), so Alertmanager
deduplicates repeats by its labels and PagerDuty by its `dedup_key`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def alertmanager_alert(incident: Mapping[str, Any], trace_url: str = "") -> dict[str, Any]:
    """The Alertmanager v2 alert of an incident; a resolved one ends at its resolve time."""
    at = _when(incident["at"])
    labels = {
        "alertname": "ChoreographProcessIncident",
        "process": incident["process"],
        "step": incident.get("step") or "process",
        "severity": incident["severity"],  # raise and resolve carry the same labels
        "owner": incident["owner"],
        "incident_id": incident["incident_id"],
    }
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": incident["summary"],
            "business_key": incident["business_key"],
            "correlation_id": incident["correlation_id"],
            "process_version": str(incident["version"]),
        },
        "startsAt": at.isoformat(),
    }
    if trace_url:
        alert["generatorURL"] = f"{trace_url.rstrip('/')}/{incident['correlation_id']}"
    if incident["status"] == "RESOLVED":
        alert["endsAt"] = at.isoformat()
        alert["startsAt"] = (at - timedelta(seconds=1)).isoformat()
    return alert


def post_alerts(
    alertmanager_url: str, alerts: Sequence[dict[str, Any]], timeout: float = 10
) -> None:
    request = urllib.request.Request(
        f"{alertmanager_url.rstrip('/')}/api/v2/alerts",
        data=json.dumps(list(alerts)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        if reply.status >= 300:
            raise RuntimeError(f"Alertmanager answered {reply.status}")


def pagerduty_event(
    incident: Mapping[str, Any], routing_key: str, trace_url: str = ""
) -> dict[str, Any]:
    """A PagerDuty Events v2 trigger or resolve for the incident."""
    raised = incident["status"] == "RAISED"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if raised else "resolve",
        "dedup_key": incident["incident_id"],
    }
    if raised:
        event["payload"] = {
            "summary": incident["summary"],
            "source": f"choreograph/{incident['process']}",
            "severity": "critical" if incident["severity"] == "critical" else "warning",
            "timestamp": _when(incident["at"]).isoformat(),
            "component": incident.get("step") or "process",
            "group": incident["owner"],
            "custom_details": {
                "business_key": incident["business_key"],
                "correlation_id": incident["correlation_id"],
                "process_version": incident["version"],
            },
        }
        if trace_url:
            event["links"] = [
                {
                    "href": f"{trace_url.rstrip('/')}/{incident['correlation_id']}",
                    "text": "process trace",
                }
            ]
    return event
