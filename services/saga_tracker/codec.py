"""Instances as JSON for the tracker's store (and its trace API).

`stored` is what the store keeps: orjson writes the dataclasses field by field, times as RFC 3339
text, exactly the bytes `encode` then the store's JSON encoding give (a test checks it), without
the dict in between: every tracked event stores its instance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from saga_tracker.instance import PROCESS, Instance, StepState, TimelineEntry

_TIMES = ("started_at", "ended_at", "deadline", "compensation_deadline", "at", "paused_at")


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


def stored(inst: Instance) -> bytes:
    """The instance as the store keeps it (the JSON of `encode`)."""
    return orjson.dumps(inst)


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
        "attributes": inst.attributes,
        "timers": {name: at.isoformat() for name, at in inst.timers.items()},
        "paused_at": _iso(inst.paused_at),
        "paused_s": inst.paused_s,
        "held": inst.held,
        "batched": inst.batched,
    }


def decode(raw: dict[str, Any]) -> Instance:
    fields = _times(raw)
    fields["steps"] = {name: StepState(**_times(s)) for name, s in raw["steps"].items()}
    fields["timeline"] = [TimelineEntry(**_times(e)) for e in raw["timeline"]]
    fields["open_incidents"] = dict(raw["open_incidents"])
    timers = raw.get("timers")
    fields["attributes"] = dict(raw.get("attributes") or {})
    inst = Instance(**{**fields, "timers": {}})
    if timers is None:  # kept before the instance knew its timers: the ones its state implies
        inst.timers = armed_deadlines(inst)
    else:
        inst.timers = {name: datetime.fromisoformat(at) for name, at in timers.items()}
    return inst


def armed_deadlines(inst: Instance) -> dict[str, datetime]:
    """The deadlines an instance's state says are armed (for one stored before `timers`)."""
    if inst.ended:
        return {}
    found: dict[str, datetime] = {}
    if inst.deadline is not None and inst.status == "running":
        found[PROCESS] = inst.deadline
    for name, state in inst.steps.items():
        if state.status == "running" and state.deadline is not None:
            found[name] = state.deadline
        if state.status == "compensating" and state.compensation_deadline is not None:
            found[f"{name}.compensation"] = state.compensation_deadline
    return found
