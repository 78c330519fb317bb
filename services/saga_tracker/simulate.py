"""Simulate a process definition on captured traffic: the tracker's own instance rules, run in
virtual time over each captured instance's events, under a candidate definition next to the
current one. A deadline or step change is judged on real traffic before release.

Only what was recorded is replayed: where the candidate would send a command the recorded run
never sent, its confirmation is not invented, so such an instance shows what would be sent and
where it would then wait.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro

from choreograph.contracts.envelope import Envelope, EnvelopeError
from choreograph.process.definition import ProcessDefinition
from choreograph.replay.capture import Capture, CapturedRecord
from saga_tracker.instance import (
    ENDED,
    CancelDeadline,
    Effect,
    Instance,
    ProcessRules,
    RaiseIncident,
    SendCommand,
    SetDeadline,
)


@dataclass
class Outcome:
    status: str
    timeouts: list[str] = field(default_factory=list)
    compensations: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    value: float | None = None
    steps: dict[str, str] = field(default_factory=dict)  # step -> the status it reached
    commands: list[str] = field(default_factory=list)  # every command sent: "Command (step)"

    @property
    def at_risk(self) -> float:
        risky = self.status in ("compensating", "needs_manual_resolution") or self.incidents
        return (self.value or 0.0) if risky else 0.0


@dataclass
class Comparison:
    correlation_id: str
    current: Outcome | None
    candidate: Outcome


@dataclass
class SimulationReport:
    process: str
    candidate_version: int
    current_version: int | None
    instances: list[Comparison]

    def totals(self) -> dict[str, dict[str, float]]:
        def total(which: str) -> dict[str, float]:
            outcomes = [getattr(c, which) for c in self.instances if getattr(c, which)]
            return {
                "instances": len(outcomes),
                "timeouts": sum(len(o.timeouts) for o in outcomes),
                "compensations": sum(len(o.compensations) for o in outcomes),
                "incidents": sum(len(o.incidents) for o in outcomes),
                "completed": sum(o.status == "completed" for o in outcomes),
                "value_at_risk": sum(o.at_risk for o in outcomes),
            }

        return {"current": total("current"), "candidate": total("candidate")}

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "candidate_version": self.candidate_version,
            "current_version": self.current_version,
            "instances": [asdict(c) for c in self.instances],
            "totals": self.totals(),
        }

    def migration(self) -> list[dict[str, Any]]:
        """Per instance: whether it could move to the candidate now (see migration_verdict)."""
        found = []
        for c in self.instances:
            safe, reason = migration_verdict(c.current, c.candidate)
            found.append({"correlation_id": c.correlation_id, "safe": safe, "reason": reason})
        return found

    def migration_text(self) -> str:
        verdicts = self.migration()
        safe = sum(v["safe"] for v in verdicts)
        lines = [f"{self.process}: moving to v{self.candidate_version} now, {safe} of "
                 f"{len(verdicts)} instance(s) safe"]  # fmt: skip
        for v in verdicts:
            lines.append(f"  {v['correlation_id']}: {'safe' if v['safe'] else 'not safe'}: "
                         f"{v['reason']}")  # fmt: skip
        return "\n".join(lines)

    def text(self) -> str:
        cur = f"v{self.current_version}" if self.current_version else "(none)"
        lines = [f"{self.process}: v{self.candidate_version} against {cur} on "
                 f"{len(self.instances)} captured instance(s)"]  # fmt: skip
        for c in self.instances:
            now = _describe(c.current) if c.current else "-"
            lines.append(f"  {c.correlation_id}: {now}  ->  {_describe(c.candidate)}")
        totals = self.totals()
        for key in ("completed", "timeouts", "compensations", "incidents", "value_at_risk"):
            a, b = totals["current"][key], totals["candidate"][key]
            lines.append(f"  {key:<14} {a:>10g} -> {b:<10g} ({b - a:+g})")
        return "\n".join(lines)


def _describe(outcome: Outcome) -> str:
    parts = [outcome.status]
    if outcome.timeouts:
        parts.append("timed out at " + ", ".join(outcome.timeouts))
    if outcome.compensations:
        parts.append("sends " + ", ".join(outcome.compensations))
    if outcome.incidents:
        parts.append("pages " + ", ".join(outcome.incidents))
    return "; ".join(parts)


def _value(record: CapturedRecord, capture: Capture, field_name: str | None) -> float | None:
    schema = capture.schemas.get(record.schema_id or -1)
    if not field_name or schema is None or record.value is None:
        return None
    parsed = fastavro.parse_schema(json.loads(schema), named_schemas={})
    body: Any = fastavro.schemaless_reader(io.BytesIO(record.value[5:]), parsed)
    found = body.get(field_name) if isinstance(body, dict) else None
    return float(found) if isinstance(found, (int, float, Decimal)) else None


def run_instance(
    rules: ProcessRules, records: list[CapturedRecord], capture: Capture, until: datetime
) -> Outcome | None:
    """The instance's outcome under `rules`, its events applied at their recorded times."""
    d = rules.definition
    followed = d.event_types()
    events: list[tuple[datetime, Envelope, CapturedRecord]] = []
    for record in sorted(records, key=lambda r: (r.timestamp, r.topic, r.offset)):
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError:
            continue
        if envelope.type in followed:
            at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            events.append((at, envelope, record))
    start = next((e for e in events if e[1].type == d.start), None)
    if start is None:
        return None
    value = _value(start[2], capture, d.value_at_risk)
    history = [(at, envelope) for at, envelope, _ in events]
    ran = run_history(rules, history, until, start=start[1])
    if ran is None:
        return None
    ran[1].value = value
    return ran[1]


def run_history(
    rules: ProcessRules,
    events: list[tuple[datetime, Envelope]],
    until: datetime,
    start: Envelope | None = None,
) -> tuple[Instance, Outcome] | None:
    """An instance run under `rules` in virtual time: `events` applied at their times (in the
    order given), each deadline passing when it falls due, up to `until`. `start`: the event
    that starts it (by default the first of the start type). None when no event starts it.

    The one engine behind simulation on captured traffic and the migration check on a live
    instance's recorded history (`saga_tracker.migration`)."""
    d = rules.definition
    start = start or next((e for _, e in events if e.type == d.start), None)
    if start is None:
        return None
    at = next(moment for moment, e in events if e is start)
    inst, effects = rules.start(start, at)
    outcome = Outcome("running")
    deadlines: dict[str, datetime] = {}

    def absorb(found: list[Effect]) -> None:
        for effect in found:
            if isinstance(effect, SetDeadline):
                deadlines[effect.name] = effect.at
            elif isinstance(effect, CancelDeadline):
                deadlines.pop(effect.name, None)
            elif isinstance(effect, SendCommand):
                outcome.commands.append(f"{effect.command} ({effect.step})")
                if effect.purpose == "compensation":
                    outcome.compensations.append(f"{effect.command} ({effect.step})")
            elif isinstance(effect, RaiseIncident):
                outcome.incidents.append(f"{effect.name} ({effect.severity})")

    def fire_until(moment: datetime) -> None:
        while deadlines:
            name, due = min(deadlines.items(), key=lambda item: item[1])
            if due > moment:
                return
            del deadlines[name]
            before = len([e for e in inst.timeline if e.kind == "timeout"])
            absorb(rules.deadline_passed(inst, name, due))
            if len([e for e in inst.timeline if e.kind == "timeout"]) > before:
                outcome.timeouts.append(name)

    absorb(effects)
    for at, envelope in events:
        if envelope is start:
            continue
        fire_until(at)
        absorb(rules.apply(inst, envelope, at))
    fire_until(until)
    outcome.status = inst.status
    outcome.steps = {name: step.status for name, step in inst.steps.items()}
    return inst, outcome


def migration_verdict(current: Outcome | None, candidate: Outcome) -> tuple[bool, str]:
    """Whether an open instance could move to the candidate version now, its recorded history
    run under both: safe when the candidate reaches the same states, has no deadline of its own
    already passed, and sends no command and raises no incident the current version has not;
    else the reason."""
    if current is None:
        return False, "no current version to compare with"
    if current.status in ENDED:
        return False, f"ended ({current.status}): nothing to migrate"
    passed = [t for t in candidate.timeouts if t not in current.timeouts]
    if passed:
        became = f" (would be {candidate.status}, is {current.status})"
        return False, f"deadline already passed under the new rules: {', '.join(passed)}{became}"
    if candidate.status != current.status:
        return False, f"would be {candidate.status}, is {current.status}"
    moved = sorted(
        f"{step} would be {candidate.steps.get(step, 'absent')}, is {status}"
        for step, status in current.steps.items()
        if candidate.steps.get(step, "pending") != status  # a step dropped while pending is fine
    ) + sorted(
        f"{step} would be {status}, is absent"
        for step, status in candidate.steps.items()
        if step not in current.steps and status != "pending"
    )
    if moved:
        return False, "; ".join(moved)
    unsent = [c for c in candidate.commands if c not in current.commands]
    if unsent:
        return False, f"would send what was not sent: {', '.join(unsent)}"
    paged = [i for i in candidate.incidents if i not in current.incidents]
    if paged:
        return False, f"would raise what was not raised: {', '.join(paged)}"
    return True, "same states, no deadline passed, nothing new to send"


def simulate(
    capture: Capture,
    candidate: ProcessDefinition,
    current: ProcessDefinition | None = None,
    until: datetime | None = None,
) -> SimulationReport:
    """`until`: how far virtual time runs (default: the capture's last record; a migration
    check runs to now, so that deadlines passed since count)."""
    until = until or datetime.fromtimestamp(
        max((r.timestamp for r in capture.records), default=0) / 1000, UTC
    )
    new_rules = ProcessRules(candidate)
    old_rules = ProcessRules(current) if current else None
    compared = []
    for cid, records in sorted(capture.instances().items()):
        new = run_instance(new_rules, records, capture, until)
        if new is None:
            continue  # its start event is not in the capture
        old = run_instance(old_rules, records, capture, until) if old_rules else None
        compared.append(Comparison(cid, old, new))
    return SimulationReport(
        candidate.name, candidate.version, current.version if current else None, compared
    )
