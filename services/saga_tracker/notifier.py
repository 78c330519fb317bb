"""Mirrors `choreograph.alerts` to Alertmanager: a choreograph service whose handler calls out.

The call is a side effect outside Kafka, so the service runs at-least-once: an incident may be
posted twice after a crash, which Alertmanager absorbs (same labels, same alert).
"""

from __future__ import annotations

from typing import Any

from choreograph.contracts.event import Event
from choreograph.runtime.context import Context
from choreograph.runtime.service import Service
from saga_tracker.alerts import alertmanager_alert, post_alerts

ALERTS_TOPIC = "choreograph.alerts"


def build_notifier(
    incident_model: type[Event],
    alertmanager_url: str,
    *,
    trace_url: str = "",
    name: str = "saga-tracker-notifier",
    topic: str = ALERTS_TOPIC,
) -> Service:
    notifier = Service(name, [topic], malformed="skip")

    def mirror(ctx: Context, incident: Any) -> None:
        post_alerts(alertmanager_url, [alertmanager_alert(incident.to_avro(), trace_url)])

    notifier.handle(incident_model)(mirror)
    return notifier
