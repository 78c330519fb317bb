"""The picture of one instance: a row per step with a bar from its start to its report (or to
now), its deadline as a tick, and marks for what happened on it (timeouts, compensations and
their confirmations, incidents, events that came late); a last row for the services' decisions
and approval requests; a shaded band for each time an operator paused it (its deadlines and SLA
clock stood still). Laid out here, drawn by templates/timeline.svg (autoescaped), so the
page needs no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from saga_tracker.instance import Instance

WIDTH = 900  # of the drawing area, px
LABEL = 140  # room for the step names on the left
ROW = 28


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    status: str
    title: str


@dataclass(frozen=True)
class Mark:
    x: float
    kind: str  # timeout, compensation, incident, late, event, decision, approval
    title: str


@dataclass(frozen=True)
class Row:
    y: float
    label: str
    bars: list[Bar]
    ticks: list[Mark]  # deadlines
    marks: list[Mark]


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    rows: list[Row]
    axis: list[tuple[float, str]]  # x, label
    pauses: list[Bar]  # from a pause to its resume (or to now)


def _stamp(moment: datetime) -> str:
    return f"{moment:%H:%M:%S} UTC"


def picture(
    inst: Instance,
    now: datetime,
    decisions: list[dict[str, Any]] | None = None,
    approvals: list[dict[str, Any]] | None = None,
) -> Picture:
    start = inst.started_at
    moments = [start, inst.ended_at or now, *(e.at for e in inst.timeline)]
    for s in inst.steps.values():
        moments += [m for m in (s.started_at, s.ended_at, s.deadline) if m is not None]
    end = max(moments)
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime | None) -> float:
        at = moment or now
        return LABEL + (at - start).total_seconds() / span * (WIDTH - LABEL - 10)

    rows: list[Row] = []
    for i, (name, s) in enumerate(inst.steps.items()):
        bars = []
        if s.started_at is not None:
            left, right = x(s.started_at), x(s.ended_at or (now if not inst.ended_at else end))
            until = _stamp(s.ended_at) if s.ended_at else "now"
            bars.append(Bar(left, max(right - left, 2.0), s.status,
                            f"{name}: {s.status}, {_stamp(s.started_at)} to {until}"))  # fmt: skip
        ticks = []
        if s.deadline is not None:
            ticks.append(Mark(x(s.deadline), "deadline", f"{name} deadline {_stamp(s.deadline)}"))
        marks = []
        for e in inst.timeline:
            if e.step != name:
                continue
            kind = "late" if "arrived while" in e.note else e.kind
            if kind == "event" and not e.note:
                continue  # the bar already shows the step's own events
            title = f"{_stamp(e.at)} {e.kind} {e.event_type} {e.note}".strip()
            marks.append(Mark(x(e.at), kind, title))
        rows.append(Row(20 + i * ROW, name, bars, ticks, marks))
    process_marks = [
        Mark(x(e.at), "late" if "arrived while" in e.note else e.kind,
             f"{_stamp(e.at)} {e.kind} {e.event_type} {e.note}".strip())
        for e in inst.timeline
        if e.step is None and e.kind != "event"
    ]  # fmt: skip
    for d in decisions or []:
        at = _parse(d.get("at"))
        if at is not None:
            process_marks.append(Mark(x(at), "decision", f"{_stamp(at)} {d.get('kind')} "
                                      f"by {d.get('by')}: {d.get('reason', '')}"))  # fmt: skip
    for a in approvals or []:
        at = _parse(a.get("requested_at"))
        if at is not None:
            process_marks.append(Mark(x(at), "approval", f"{_stamp(at)} approval "
                                      f"{a.get('approval_id')} {a.get('status')}"))  # fmt: skip
    rows.append(Row(20 + len(rows) * ROW, "process", [], [], process_marks))
    pauses, paused_at = [], None
    for e in inst.timeline:
        if e.kind == "operator" and e.note.startswith("pause by "):
            paused_at = e.at
        elif e.kind == "operator" and e.note.startswith("resume by ") and paused_at is not None:
            pauses.append(_pause(x(paused_at), x(e.at), paused_at, e.at))
            paused_at = None
    if paused_at is not None and inst.paused_at is not None:
        pauses.append(_pause(x(paused_at), x(now), paused_at, None))
    ticks_every = _step(span)
    label = "%Y-%m-%d %H:%M UTC" if span > 86400 else "%H:%M:%S UTC"
    axis = []
    t = 0.0
    while t <= span:
        at = start + timedelta(seconds=t)
        axis.append((x(at), f"{at:{label}}"))
        t += ticks_every
    return Picture(WIDTH, 20 + len(rows) * ROW + 24, rows, axis, pauses)


def _pause(left: float, right: float, since: datetime, until: datetime | None) -> Bar:
    end = _stamp(until) if until else "now"
    return Bar(left, max(right - left, 2.0), "paused", f"paused {_stamp(since)} to {end}")


def _step(span: float) -> float:
    """Axis ticks a few per picture, on round seconds, minutes or hours."""
    for candidate in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400):
        if span / candidate <= 6:
            return float(candidate)
    return span / 6


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
