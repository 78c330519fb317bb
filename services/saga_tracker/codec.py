"""Instances as JSON for the tracker's store (and its trace API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from saga_tracker.instance import Instance, StepState, TimelineEntry

_TIMES = ("started_at", "ended_at", "deadline", "compensation_deadline", "at")


def _times(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k in _TIMES and v else v for k, v in raw.items()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def timeline_entry(e: TimelineEntry) -> dict[str, Any]:
    """One timeline entry as a dict (its time left as a datetime)."""
    return {
        "at": e.at,
        "kind": e.kind,
        "event_type": e.event_type,
        "event_id": e.event_id,
        "causation_id": e.causation_id,
        "source": e.source,
        "step": e.step,
        "note": e.note,
        "origin": e.origin,
    }


def encode(inst: Instance) -> dict[str, Any]:
    """Field by field: `dataclasses.asdict` deep-copies, and this runs for every tracked event."""
    return {
        "correlation_id": inst.correlation_id,
        "process": inst.process,
        "version": inst.version,
        "business_key": inst.business_key,
        "started_at": inst.started_at.isoformat(),
        "status": inst.status,
        "deadline": _iso(inst.deadline),
        "ended_at": _iso(inst.ended_at),
        "failure_reason": inst.failure_reason,
        "steps": {
            name: {
                "name": s.name,
                "status": s.status,
                "started_at": _iso(s.started_at),
                "ended_at": _iso(s.ended_at),
                "deadline": _iso(s.deadline),
                "compensation_deadline": _iso(s.compensation_deadline),
                "reported": s.reported,
            }
            for name, s in inst.steps.items()
        },
        "timeline": [{**timeline_entry(e), "at": e.at.isoformat()} for e in inst.timeline],
        "open_incidents": dict(inst.open_incidents),
        "value": inst.value,
        "reported": inst.reported,
        "conflict": inst.conflict,
        "traceparent": inst.traceparent,
    }


def decode(raw: dict[str, Any]) -> Instance:
    fields = _times(raw)
    fields["steps"] = {name: StepState(**_times(s)) for name, s in raw["steps"].items()}
    fields["timeline"] = [TimelineEntry(**_times(e)) for e in raw["timeline"]]
    fields["open_incidents"] = dict(raw["open_incidents"])
    return Instance(**fields)
