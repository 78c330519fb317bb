"""Mirrors `choreograph.alerts` to Alertmanager: a choreograph service whose handler calls out.

Alertmanager forgets an alert that is not sent again within its `resolve_timeout` (5 minutes by
default), as Prometheus re-sends firing alerts every evaluation. So the notifier keeps every raised
incident in a store and re-sends it every `repeat` until the incident is resolved, and a restarted
notifier picks the repeats up from its timers.

The call is a side effect outside Kafka, so the service runs at-least-once: an incident may be
posted twice after a crash, which Alertmanager absorbs (same labels, same alert).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from choreograph.contracts.event import Event
from choreograph.runtime.context import Context
from choreograph.runtime.service import Service
from saga_tracker.alerts import alertmanager_alert, post_alerts

ALERTS_TOPIC = "choreograph.alerts"
REPEAT = timedelta(minutes=1)


def build_notifier(
    incident_model: type[Event],
    alertmanager_url: str,
    *,
    trace_url: str = "",
    name: str = "saga-tracker-notifier",
    topic: str = ALERTS_TOPIC,
    repeat: timedelta = REPEAT,
) -> Service:
    notifier = Service(name, [topic], malformed="skip")
    notifier.store("firing", keyed=False)  # by incident id, within the instance's partition

    def mirror(ctx: Context, incident: Any) -> None:
        record = incident.to_avro()
        alert = alertmanager_alert(record, trace_url)
        firing = ctx.store("firing")
        timer = f"repeat:{record['incident_id']}"
        if record["status"] == "RAISED":
            firing.put(record["incident_id"], alert)
            ctx.schedule(timer, repeat, {"incident_id": record["incident_id"]})
        else:
            firing.delete(record["incident_id"])
            ctx.cancel(timer)
        post_alerts(alertmanager_url, [alert])

    def send_again(ctx: Context, payload: dict[str, Any]) -> None:
        alert = ctx.store("firing").get(payload["incident_id"])
        if alert is None:
            return  # resolved meanwhile
        post_alerts(alertmanager_url, [alert])
        ctx.schedule(f"repeat:{payload['incident_id']}", repeat, payload)

    notifier.handle(incident_model, topic=topic)(mirror)
    notifier.timer("repeat:*")(send_again)
    return notifier
