"""Moving an open instance to a newer version of its process definition, when that is safe.

An instance is pinned to the version it started on. A newer version may fix a deadline or a
step; an open instance moves to it only when its recorded history, run under both versions up to
now (`simulate.run_history`, the simulation engine), shows the move changes nothing that already
happened: the same states are reached, no deadline of the new version has already passed, and
the new version would not have sent a command or raised an incident the old one did not
(`simulate.migration_verdict`). What is not safe is said with its reason and left where it is.

The history is the instance's own timeline: every event its process mentions is kept there, late
or not. Three things make it not enough, and such an instance is not moved: an operator acted on
it (a retry, a redrive, a compensate or a pause is not an event to replay), the new version
follows event types the old one did not record, or the history does not replay under the old
version to where the instance stands.

The same check serves the dry run (the API, before anything is sent) and the move itself (the
tracker, when the action reaches the instance: it may have moved on since).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from choreograph.contracts.envelope import Envelope
from choreograph.governance.decisions import RuleEvaluation
from saga_tracker.instance import ENDED, Instance, ProcessRules, TimelineEntry
from saga_tracker.simulate import migration_verdict, run_history

# Operator entries that change nothing the rules decide on: a legal hold and its release.
_NEUTRAL = ("hold by ", "release by ")
# Timeline kinds an operator's action writes (besides "operator"): what events cannot replay.
_ACTED = frozenset({"operator", "retry", "redrive"})


@dataclass(frozen=True)
class MigrationCheck:
    """Whether one instance can move from its version to `to_version` now, and why (or not)."""

    correlation_id: str
    process: str
    from_version: int
    to_version: int
    safe: bool
    reason: str
    moved: Instance | None = None  # the instance as it stands under the new version (safe only)

    def to_json(self) -> dict[str, object]:
        return {"correlation_id": self.correlation_id, "process": self.process,
                "from_version": self.from_version, "to_version": self.to_version,
                "safe": self.safe, "reason": self.reason}  # fmt: skip

    def evidence(self) -> RuleEvaluation:
        """The check as a rule evaluation, for the move's decision record."""
        inputs: dict[str, object] = {"reason": self.reason}
        if self.moved is not None:
            inputs["steps"] = {n: s.status for n, s in self.moved.steps.items()}
            inputs["deadlines"] = {n: at.isoformat() for n, at in sorted(self.moved.timers.items())}
        return RuleEvaluation(
            "migration-check", f"v{self.from_version}->v{self.to_version}", self.safe, inputs
        )


def history_of(inst: Instance) -> list[tuple[datetime, Envelope]]:
    """The events the instance recorded, in the order they were applied, at the times they
    were (the start first)."""
    return [
        (
            entry.at,
            Envelope(
                id=entry.event_id,
                source=entry.source,
                type=entry.event_type,
                subject=inst.business_key,
                correlation_id=inst.correlation_id,
                time=entry.at,
                causation_id=entry.causation_id,
                traceparent=inst.traceparent,
            ),
        )
        for entry in inst.timeline
        if entry.kind == "event" and entry.event_type
    ]


def check_migration(
    inst: Instance, current: ProcessRules, candidate: ProcessRules, now: datetime
) -> MigrationCheck:
    """Whether `inst` (on `current`) can move to `candidate` now; when it can, `moved` is the
    instance under the new version: its steps, deadlines and timers as the new version has
    them, everything else (timeline, attributes, holds, batch memory) as it was."""
    to = candidate.definition.version

    def refused(reason: str) -> MigrationCheck:
        return MigrationCheck(inst.correlation_id, inst.process, inst.version, to, False, reason)

    if candidate.definition.name != inst.process:
        return refused(f"v{to} is a version of {candidate.definition.name}, not {inst.process}")
    if to <= inst.version:
        return refused(f"it runs on v{inst.version} already: move it only to a newer version")
    if inst.status in ENDED:
        return refused(f"ended ({inst.status}): nothing to migrate")
    if inst.paused:
        return refused("paused: resume it first (its deadlines are kept back while paused)")
    acted = [e for e in inst.timeline if e.kind in _ACTED and not e.note.startswith(_NEUTRAL)]
    if acted:
        return refused(
            f"an operator acted on it ({acted[0].note or acted[0].kind}): its history is more "
            "than events, so it cannot be replayed under the new version"
        )
    unseen = sorted(candidate.definition.event_types() - current.definition.event_types())
    if unseen:
        return refused(
            f"v{to} follows {', '.join(unseen)}, which v{inst.version} did not record: its "
            "history under the new version is not known"
        )
    history = history_of(inst)
    again = run_history(current, history, now)
    if again is None:
        return refused("its start event is not on its timeline")
    replayed, as_now = again
    stands = {n: s.status for n, s in inst.steps.items()}
    if replayed.status != inst.status or as_now.steps != stands:
        return refused(
            f"its recorded events do not replay to where it stands under v{inst.version} "
            f"({replayed.status}, {as_now.steps} against {inst.status}, {stands})"
        )
    ran = run_history(candidate, history, now)
    assert ran is not None  # the same start event
    under_new, would_be = ran
    safe, reason = migration_verdict(as_now, would_be)
    if safe and set(under_new.open_incidents) != set(inst.open_incidents):
        safe, reason = (
            False,
            (
                f"open incidents would be {sorted(under_new.open_incidents)}, "
                f"are {sorted(inst.open_incidents)}"
            ),
        )
    if not safe:
        return refused(reason)
    moved = replace(
        inst,
        version=to,
        deadline=under_new.deadline,
        steps=under_new.steps,
        timers=under_new.timers,
        open_incidents=dict(inst.open_incidents),
        timeline=list(inst.timeline),
    )
    return MigrationCheck(inst.correlation_id, inst.process, inst.version, to, True, reason, moved)


def record_move(moved: Instance, check: MigrationCheck, actor: str, why: str, at: datetime) -> None:
    """Note the move on the instance's timeline (who, from, to, why)."""
    note = f"migrated v{check.from_version} -> v{check.to_version} by {actor}: {why}"
    moved.timeline.append(TimelineEntry(at, "migration", note=note))
