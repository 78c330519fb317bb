"""Instances as JSON for the tracker's store (and its trace API)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from saga_tracker.instance import Instance, StepState, TimelineEntry

_TIMES = ("started_at", "ended_at", "deadline", "compensation_deadline", "at")


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _times(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k in _TIMES and v else v for k, v in raw.items()}


def encode(inst: Instance) -> dict[str, Any]:
    encoded: dict[str, Any] = _dump(asdict(inst))
    return encoded


def decode(raw: dict[str, Any]) -> Instance:
    fields = _times(raw)
    fields["steps"] = {name: StepState(**_times(s)) for name, s in raw["steps"].items()}
    fields["timeline"] = [TimelineEntry(**_times(e)) for e in raw["timeline"]]
    fields["open_incidents"] = dict(raw["open_incidents"])
    return Instance(**fields)
