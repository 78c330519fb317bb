"""One process instance (saga) as the tracker sees it, and the rules that advance it.

Pure logic: envelopes and the clock in, a new instance state and effects out (deadlines to set,
compensation commands to send, incidents to raise or resolve). The tracker service wires it to
Kafka; tests drive it directly. An instance stays on the definition version it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from choreograph.contracts.envelope import Envelope
from choreograph.process.definition import Outcome, ProcessDefinition, Step

StepStatus = Literal[
    "pending",
    "running",
    "completed",
    "failed",
    "timed_out",
    "settling",  # timed out before it reported: its owner was asked to void it or say it is done
    "voided",  # its owner voided it: it did not happen and never will
    "compensating",
    "compensated",
    "compensation_failed",
]
InstanceStatus = Literal[
    "running",
    "completed",
    "failed",
    "compensating",
    "compensated",
    "needs_manual_resolution",
    "resolved",
    "cancelled",  # an operator stopped tracking it: no more deadlines, commands or alerts
]
Severity = Literal["warning", "critical"]
Action = Literal[
    "retry", "compensate", "resolve", "cancel", "pause", "resume", "redrive", "hold", "release"
]
ACTIONS: tuple[Action, ...] = get_args(Action)
# Actions that name a step.
STEP_ACTIONS: frozenset[str] = frozenset({"retry", "redrive"})
ENDED: frozenset[str] = frozenset(
    {"completed", "failed", "compensated", "needs_manual_resolution", "resolved", "cancelled"}
)
# Ended by a person: what comes later is recorded on the timeline, nothing more.
CLOSED: frozenset[str] = frozenset({"resolved", "cancelled"})
# A step that needs attention or is under way: what "instances at step X" means.
ACTIVE_STEP: frozenset[str] = frozenset(
    {"running", "settling", "timed_out", "failed", "compensating", "compensation_failed"}
)
PROCESS = "process"  # deadline and incident name of the whole process
# A step that has not said how it ended: it may still happen, or its owner may still settle it.
UNSETTLED: frozenset[str] = frozenset({"running", "settling"})
# A step whose undo was sent and whose confirmation may still come, even after it escalated.
UNDO_UNCONFIRMED: frozenset[str] = frozenset({"compensating", "compensation_failed"})
# The process failed and is being, or was, undone (for good: failing is one-way).
UNDO_MODE: frozenset[str] = frozenset({"compensating", "compensated", "needs_manual_resolution"})
CONFLICT = "conflict"  # incident: something no compensation undoes happened during an undo


@dataclass
class StepState:
    name: str
    status: StepStatus = "pending"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    deadline: datetime | None = None
    compensation_deadline: datetime | None = None
    reported: str | None = None  # what the step's own events said last: completed or failed


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # event, timeout, compensation, incident, status
    event_type: str = ""
    event_id: str = ""
    causation_id: str | None = None
    source: str = ""
    step: str | None = None
    note: str = ""
    origin: str = ""  # where the event was read, "topic/partition/offset", when known


@dataclass
class Instance:
    correlation_id: str
    process: str
    version: int
    business_key: str
    started_at: datetime
    status: InstanceStatus = "running"
    deadline: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    open_incidents: dict[str, Severity] = field(default_factory=dict)  # name -> raised severity
    value: float | None = None  # the definition's value-at-risk field of the start event
    reported: str | None = None  # the process's own outcome events: success or failure
    conflict: str | None = None  # what cannot be undone although the process is being undone
    traceparent: str | None = None  # of the start event: the instance's trace joins its trace
    # The definition's search attributes, read from the events that carry them: filters for
    # on-call, and the recorded inputs a redrive builds its command from.
    attributes: dict[str, Any] = field(default_factory=dict)
    # Deadlines armed now (name -> when), kept by the rules: a pause takes them all back and a
    # resume sets them again, moved by how long the instance was paused.
    timers: dict[str, datetime] = field(default_factory=dict)
    paused_at: datetime | None = None  # paused by an operator: no deadline fires, no SLA clock
    paused_s: float = 0.0  # how long it was paused before, in all (off its SLA clock)
    held: str | None = None  # a legal hold (who and why): kept past its retention
    batched: list[str] = field(default_factory=list)  # the last batch actions applied (ids)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def next_wake(self) -> datetime | None:
        """When its earliest armed deadline passes; None when none is armed or it is paused."""
        if self.paused_at is not None or not self.timers:
            return None
        return min(self.timers.values())

    def active_steps(self) -> list[str]:
        """The steps under way or needing attention (see ACTIVE_STEP)."""
        return [name for name, s in self.steps.items() if s.status in ACTIVE_STEP]

    def sla_seconds(self) -> float | None:
        """Time on its SLA clock: start to end, less the time it was paused."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds() - self.paused_s

    @property
    def at_risk(self) -> bool:
        """Its business value is in doubt: alerting, being undone, or waiting for a human."""
        if self.status in ("compensating", "needs_manual_resolution"):
            return True
        return not self.ended and bool(self.open_incidents)


def attribute_value(value: Any) -> str | float | bool:
    """A search attribute's value as kept: numbers as floats, times as RFC 3339 text, the rest
    (text, enum symbols) as text."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetDeadline:
    name: str  # a step name, or PROCESS
    at: datetime


@dataclass(frozen=True)
class CancelDeadline:
    name: str


@dataclass(frozen=True)
class SendCommand:
    """Send a step's compensation command, its settle command, or its retry command."""

    step: str
    purpose: Literal["compensation", "retry", "settle", "redrive"]
    command: str  # Avro full name of the command
    key: str  # business key the command is about
    reason: str
    # Sent for an operator's decision: its command is caused by that decision's record.
    by_operator: bool = False


@dataclass(frozen=True)
class RaiseIncident:
    name: str  # deduplication key within the instance: step name, PROCESS, or "<step>.compensation"
    step: str | None
    severity: Severity
    summary: str


@dataclass(frozen=True)
class ResolveIncident:
    """Ends an incident; same step and severity as when raised, so on-call tools match them."""

    name: str
    step: str | None
    severity: Severity


Effect = SetDeadline | CancelDeadline | SendCommand | RaiseIncident | ResolveIncident


class ActionRefused(Exception):
    """An operator action does not apply to the instance as it stands; says why."""


class ProcessRules:
    """How instances of one definition version move.

    The outcome depends on which events arrived, not on the order they arrived in across topics
    (see docs/saga-tracker.md, "Compensation semantics"). Two ideas make that so:

    - Failing is one-way. A step failure, a failure event, a compensating timeout or an operator
      puts the instance in undo mode for good; from then on every compensable step that is
      known or suspected to have happened is undone, whenever that becomes known.
    - Reports are facts, whenever they come. A step's success or failure updates the step even
      after a timeout or after the instance ended, and the instance is re-evaluated: a late
      success in undo mode means the undo is needed (and is sent again if it was confirmed
      before the success was seen); a step that cannot be undone, or a success reported for the
      process, while it is being undone is a conflict only a person can settle.
    """

    def __init__(self, definition: ProcessDefinition) -> None:
        self.definition = definition
        self.steps = {s.name: s for s in definition.steps}
        self.mentioned = definition.event_types()
        read: dict[str, list[str]] = {}
        for attribute in definition.search_attributes.values():
            wanted = read.setdefault(attribute.event_or(definition.start), [])
            if attribute.field not in wanted:
                wanted.append(attribute.field)
        self._read = {kind: tuple(names) for kind, names in read.items()}

    # -- start ---------------------------------------------------------------------------------

    def start(
        self,
        envelope: Envelope,
        now: datetime,
        origin: str = "",
        fields: dict[str, Any] | None = None,
    ) -> tuple[Instance, list[Effect]]:
        """`origin`: where the start event was read, kept on the timeline (see TimelineEntry).
        `fields`: what its body holds of the fields `fields_read` names."""
        d = self.definition
        inst = Instance(envelope.correlation_id, d.name, d.version, envelope.subject, now)
        inst.traceparent = envelope.traceparent
        self._record(inst, envelope.type, fields)
        inst.steps = {s.name: StepState(s.name) for s in d.steps}
        effects: list[Effect] = []
        if d.deadline:
            inst.deadline = now + d.deadline
            effects.append(SetDeadline(PROCESS, inst.deadline))
        self._log(inst, now, "event", envelope, note="process started", origin=origin)
        for step in d.steps:
            if not step.starts_on:
                effects += self._start_step(inst, step, now)
        return inst, self._armed(inst, effects, now)

    def fields_read(self, event_type: str) -> tuple[str, ...]:
        """The body fields of `event_type` the instance records (its search attributes)."""
        return self._read.get(event_type, ())

    def _record(self, inst: Instance, event_type: str, fields: dict[str, Any] | None) -> None:
        """Keep the search attributes an event carries (the first value of each stands, as
        for an attribute set at start)."""
        for name, attribute in self.definition.search_attributes.items():
            if attribute.event_or(self.definition.start) != event_type or not fields:
                continue
            value = fields.get(attribute.field)
            if value is not None and name not in inst.attributes:
                inst.attributes[name] = attribute_value(value)

    def _armed(self, inst: Instance, effects: list[Effect], now: datetime) -> list[Effect]:
        """Keep the instance's armed deadlines in step with `effects`. While it is paused a new
        deadline is kept back (set on resume with the time it had left) and nothing is
        cancelled (nothing is set). An instance that ended is paused no more."""
        out: list[Effect] = []
        for effect in effects:
            if isinstance(effect, SetDeadline):
                if inst.paused_at is not None:  # its time starts running at the resume
                    inst.timers[effect.name] = effect.at - (now - inst.paused_at)
                    continue
                inst.timers[effect.name] = effect.at
            elif isinstance(effect, CancelDeadline):
                inst.timers.pop(effect.name, None)
                if inst.paused_at is not None:
                    continue
            out.append(effect)
        if inst.ended and inst.paused_at is not None:
            inst.paused_s += (now - inst.paused_at).total_seconds()
            inst.paused_at = None
            inst.timers.clear()
        return out

    # -- events --------------------------------------------------------------------------------

    def apply(
        self,
        inst: Instance,
        envelope: Envelope,
        now: datetime,
        origin: str = "",
        fields: dict[str, Any] | None = None,
    ) -> list[Effect]:
        """Advance `inst` by one event of the process; events it does not know change nothing.
        Every event the process mentions is recorded on the timeline, late or not, with where
        it was read (`origin`) when known. `fields`: as for `start`."""
        kind = envelope.type
        if kind not in self.mentioned:
            return []
        self._record(inst, kind, fields)
        return self._armed(inst, self._apply(inst, envelope, now, origin), now)

    def _apply(
        self, inst: Instance, envelope: Envelope, now: datetime, origin: str
    ) -> list[Effect]:
        kind, d = envelope.type, self.definition
        if kind == d.start and not self._reports(kind):
            return []
        named, note = self._step_of(kind), self._lateness(inst)
        self._log(inst, now, "event", envelope, step=named, note=note, origin=origin)
        effects: list[Effect] = []
        for step in d.steps:
            if step.compensation and kind in step.compensation.completes_on:
                effects += self._compensation_confirmed(inst, step, now)
        if inst.status in CLOSED:
            return effects  # a person closed it: what comes later is recorded, nothing more
        for step in d.steps:
            if kind in step.completes_on:
                effects += self._step_succeeded(inst, step, now)
            elif kind in step.fails_on:
                effects += self._step_failed(inst, step, now, kind)
            elif step.settle and kind in step.settle.voided_on:
                effects += self._step_voided(inst, step, now)
            elif step.settle and kind in step.settle.done_on:
                effects += self._step_done_late(inst, step, now)
        if kind in d.success:
            effects += self._process_succeeded(inst, now, kind)
        if kind in d.failure:
            effects += self._process_failed(inst, now, kind)
        for step in d.steps:
            if kind in step.starts_on and inst.steps[step.name].status == "pending":
                effects += self._start_step(inst, step, now)
        return effects + self._reconcile(inst, now)

    def _reports(self, kind: str) -> bool:
        """Whether `kind` reports anything besides the start (a start event can do both)."""
        d = self.definition
        if kind in d.success or kind in d.failure:
            return True
        return any(
            kind in (*s.starts_on, *s.completes_on, *s.fails_on)
            or (s.compensation is not None and kind in s.compensation.completes_on)
            or (s.settle is not None and kind in (*s.settle.voided_on, *s.settle.done_on))
            for s in d.steps
        )

    @staticmethod
    def _lateness(inst: Instance) -> str:
        return f"arrived while {inst.status}" if inst.status != "running" else ""

    # -- deadlines -----------------------------------------------------------------------------

    def deadline_passed(self, inst: Instance, name: str, now: datetime) -> list[Effect]:
        """A deadline set by an earlier effect has passed (the tracker's timer fired). While the
        instance is paused it is kept back: it passes again right after the resume."""
        if inst.paused_at is not None:
            inst.timers[name] = inst.paused_at
            return []
        inst.timers.pop(name, None)
        if inst.status in CLOSED:
            return []
        return self._armed(inst, self._deadline_passed(inst, name, now), now)

    def _deadline_passed(self, inst: Instance, name: str, now: datetime) -> list[Effect]:
        if name.endswith(".settle"):
            return self._settle_overdue(inst, self.steps[name.removesuffix(".settle")], now)
        if name.endswith(".compensation"):
            # Each undo in doubt escalates on its own, even after another one already did.
            step_name = name.removesuffix(".compensation")
            state = inst.steps[step_name]
            if state.status != "compensating" or inst.status not in UNDO_MODE:
                return []
            state.status = "compensation_failed"
            self._log(
                inst, now, "timeout", step=step_name, note="compensation not confirmed in time"
            )
            inst.open_incidents[name] = "critical"
            effects: list[Effect] = [
                RaiseIncident(
                    name,
                    step_name,
                    "critical",
                    f"compensation of {step_name} did not complete: manual resolution needed",
                )
            ]
            return effects + self._reconcile(inst, now)
        if name == PROCESS:
            if inst.status != "running":
                return []
            self._log(inst, now, "timeout", note="process deadline passed")
            return self._timeout(inst, None, self.definition.on_timeout, now)
        step = self.steps[name]
        state = inst.steps[name]
        if state.status != "running" or inst.status not in ("running", *UNDO_MODE):
            return []
        outcome = step.on_timeout
        if inst.status in UNDO_MODE:
            if step.compensation is None:
                return []  # nothing to undo: how late it is no longer matters
            outcome = "compensate"  # the process is being undone: a step in doubt is undone
        if outcome == "compensate" and step.settle is not None:
            self._log(inst, now, "timeout", step=name, note="step deadline passed (settle)")
            return self._ask_to_settle(inst, step, now, f"step {name} timed out")
        self._log(inst, now, "timeout", step=name, note=f"step deadline passed ({outcome})")
        return self._timeout(inst, step, outcome, now)

    # -- operator actions ----------------------------------------------------------------------

    def refusal(self, inst: Instance, action: str, step: str | None) -> str | None:
        """Why `action` does not apply to `inst` now; None when it does."""
        if action in STEP_ACTIONS and (step is None or step not in inst.steps):
            return f"{action} needs one of the steps: {', '.join(inst.steps)}"
        if action == "retry":
            assert step is not None
            state = inst.steps[step]
            if state.status == "compensation_failed":
                return None
            late = state.status == "running" and step in inst.open_incidents
            if state.status in ("failed", "timed_out") or late:
                if inst.status in ("running", "failed"):
                    return None
                return f"the instance is {inst.status}: its steps are being or were undone"
            return f"step {step} is {state.status}: nothing to retry"
        if action == "redrive":
            assert step is not None
            if self.steps[step].redrive is None:
                return (
                    f"step {step} of {inst.process} v{inst.version} declares no redrive "
                    "command: add `redrive: {command: ..., payload: ...}` to the step"
                )
            if inst.status not in ("running", "failed"):
                return f"the instance is {inst.status}: redrive runs a step of a live process"
            status = inst.steps[step].status
            if status not in ("pending", "running", "failed", "timed_out"):
                return f"step {step} is {status}: nothing to redrive"
            return None
        if action == "compensate":
            if inst.status not in ("running", "failed"):
                return f"the instance is {inst.status}"
            if not any(
                inst.steps[s.name].status in ("completed", "running", "settling", "timed_out")
                and s.compensation
                for s in self.definition.steps
            ):
                return "no step that happened or may have happened has a compensation"
            return None
        if action == "resolve":
            if inst.open_incidents or inst.status in ("needs_manual_resolution", "failed"):
                return None
            return f"the instance is {inst.status} with no open incident: nothing to resolve"
        if action in ("cancel", "pause"):
            if inst.ended:
                return f"the instance is {inst.status}: it has ended"
            if action == "pause" and inst.paused_at is not None:
                return f"the instance is paused already, since {inst.paused_at.isoformat()}"
            return None
        if action == "resume":
            return None if inst.paused_at is not None else "the instance is not paused"
        if action == "hold":
            return f"the instance is on hold already ({inst.held})" if inst.held else None
        if action == "release":
            return None if inst.held else "the instance is not on hold"
        return f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"

    def act(
        self,
        inst: Instance,
        action: str,
        step: str | None,
        actor: str,
        reason: str,
        now: datetime,
    ) -> list[Effect]:
        """Carry out an operator's action; raises ActionRefused when it does not apply."""
        refused = self.refusal(inst, action, step)
        if refused:
            raise ActionRefused(refused)
        what = f"{action} {step}" if action in STEP_ACTIONS else action
        self._log(inst, now, "operator", step=step, note=f"{what} by {actor}: {reason}")
        why = f"{what} requested by {actor}: {reason}"
        if action == "pause":
            inst.paused_at = now
            return [CancelDeadline(name) for name in sorted(inst.timers)]
        if action == "resume":
            return self._resume(inst, now)
        if action in ("hold", "release"):
            inst.held = f"{actor}: {reason}" if action == "hold" else None
            return []
        return self._armed(inst, self._act(inst, action, step, why, now), now)

    def _act(
        self, inst: Instance, action: str, step: str | None, why: str, now: datetime
    ) -> list[Effect]:
        if action == "retry":
            assert step is not None
            return self._retry(inst, self.steps[step], now, why)
        if action == "redrive":
            assert step is not None
            return self._redrive(inst, self.steps[step], now, why)
        if action == "compensate":
            effects: list[Effect] = []
            for s in self.definition.steps:
                state = inst.steps[s.name]
                if state.status in UNSETTLED:
                    # Stopped by the operator: undone as if it happened, since it may have.
                    state.status = "timed_out" if s.compensation else "failed"
                    effects.append(CancelDeadline(s.name))
                    if s.settle is not None:
                        effects.append(CancelDeadline(f"{s.name}.settle"))
            return effects + self._begin_undo(inst, now, why) + self._reconcile(inst, now)
        if action == "cancel":
            effects = [self._resolve(inst, name) for name in sorted(inst.open_incidents)]
            effects += [CancelDeadline(name) for name in sorted(inst.timers)]
            inst.status, inst.ended_at = "cancelled", now
            self._log(inst, now, "status", note="cancelled")
            return effects
        effects = [self._resolve(inst, name) for name in sorted(inst.open_incidents)]
        if inst.status != "running":
            inst.status, inst.ended_at = "resolved", now
            self._log(inst, now, "status", note="resolved")
            effects.append(CancelDeadline(PROCESS))
            effects += [
                CancelDeadline(f"{s}.compensation")
                for s, st in inst.steps.items()
                if st.status == "compensating"
            ]
        return effects

    def _resume(self, inst: Instance, now: datetime) -> list[Effect]:
        """The clock runs again: every deadline kept back is set, later by the pause."""
        assert inst.paused_at is not None
        held = now - inst.paused_at
        inst.paused_s += held.total_seconds()
        inst.paused_at = None
        inst.timers = {name: at + held for name, at in inst.timers.items()}
        if inst.deadline is not None and PROCESS in inst.timers:
            inst.deadline = inst.timers[PROCESS]
        for name, state in inst.steps.items():
            if state.deadline is not None and name in inst.timers:
                state.deadline = inst.timers[name]
            undo = f"{name}.compensation"
            if state.compensation_deadline is not None and undo in inst.timers:
                state.compensation_deadline = inst.timers[undo]
        return [SetDeadline(name, at) for name, at in sorted(inst.timers.items())]

    def _redrive(self, inst: Instance, step: Step, now: datetime, why: str) -> list[Effect]:
        """Run the step again: its redrive command, built from the instance's recorded inputs,
        and a fresh deadline; the process is live again if it had failed."""
        assert step.redrive is not None
        effects: list[Effect] = []
        if step.name in inst.open_incidents:
            effects.append(self._resolve(inst, step.name))
        if inst.status == "failed" and inst.deadline and inst.deadline > now:
            effects.append(SetDeadline(PROCESS, inst.deadline))  # its end cancelled it
        inst.status, inst.ended_at, inst.failure_reason = "running", None, None
        inst.steps[step.name].reported = None
        effects += self._start_step(inst, step, now)
        command = step.redrive.command
        effects.append(
            SendCommand(step.name, "redrive", command, inst.business_key, why, by_operator=True)
        )
        self._log(inst, now, "redrive", step=step.name, note=f"sent {command}")
        return effects

    def _retry(self, inst: Instance, step: Step, now: datetime, why: str) -> list[Effect]:
        state = inst.steps[step.name]
        effects: list[Effect] = []
        if state.status == "compensation_failed":
            effects += self._send_compensation(inst, step, now, why)
            return effects + self._reconcile(inst, now)
        if step.name in inst.open_incidents:
            effects.append(self._resolve(inst, step.name))
        if inst.status == "failed" and inst.deadline and inst.deadline > now:
            effects.append(SetDeadline(PROCESS, inst.deadline))  # its end cancelled it
        inst.status, inst.ended_at, inst.failure_reason = "running", None, None
        effects += self._start_step(inst, step, now)
        if step.retry is not None:
            command = step.retry.command
            effects.append(
                SendCommand(step.name, "retry", command, inst.business_key, why, by_operator=True)
            )
            self._log(inst, now, "retry", step=step.name, note=f"sent {step.retry.command}")
        return effects

    # -- what the steps report -----------------------------------------------------------------

    def _start_step(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        state = inst.steps[step.name]
        state.status, state.started_at = "running", now
        # While running, every step has a deadline; while undoing, only a step whose outcome
        # decides an undo is waited for. An ended instance waits for nothing.
        armed = inst.status == "running" or (inst.status in UNDO_MODE and step.compensation)
        if step.deadline and armed:
            state.deadline = now + step.deadline
            return [SetDeadline(step.name, state.deadline)]
        return []

    def _step_succeeded(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        state = inst.steps[step.name]
        if state.reported == "failed" and state.status == "failed":
            return []  # it said it failed: a contradicting report is recorded, not acted on
        state.reported = "completed"
        effects: list[Effect] = [CancelDeadline(step.name)]
        if step.settle is not None:
            effects.append(CancelDeadline(f"{step.name}.settle"))
        if state.status in ("pending", "running", "settling", "timed_out"):
            if state.status in ("timed_out", "settling"):
                self._log(inst, now, "status", step=step.name, note="completed after its deadline")
            state.status, state.ended_at = "completed", now
            state.started_at = state.started_at or now
        elif state.status == "voided":
            # Its owner said it would never happen, and it did: a fact all the same, undone.
            self._log(inst, now, "status", step=step.name, note="happened after it was voided")
            state.status, state.ended_at = "completed", now
        elif state.status == "compensated":
            # Undone before it was seen to happen: the undo may have found nothing to undo.
            self._log(
                inst, now, "status", step=step.name, note="happened after its undo: undo again"
            )
            state.status, state.ended_at = "completed", now
        incident = inst.open_incidents.get(step.name)
        if incident == "warning":  # it was late and recovered
            effects.append(self._resolve(inst, step.name))
        if inst.status == "failed" and not self._failed_steps(inst):
            # Failed only because this step was late; it was not: the process goes on.
            self._log(inst, now, "status", note="running: the late step completed")
            inst.status, inst.ended_at, inst.failure_reason = "running", None, None
            if inst.deadline and inst.deadline > now:
                effects.append(SetDeadline(PROCESS, inst.deadline))
        return effects

    def _step_failed(self, inst: Instance, step: Step, now: datetime, kind: str) -> list[Effect]:
        state = inst.steps[step.name]
        if state.reported == "completed" and state.status != "timed_out":
            return []  # it said it completed: a contradicting report is recorded, not acted on
        state.reported = "failed"
        effects: list[Effect] = [CancelDeadline(step.name)]
        if step.settle is not None:
            effects.append(CancelDeadline(f"{step.name}.settle"))
        if state.status in ("pending", "running", "settling", "timed_out"):
            state.status, state.ended_at = "failed", now
        if inst.open_incidents.get(step.name) == "warning":  # it was late; now it has said
            effects.append(self._resolve(inst, step.name))
        if inst.status in ("running", "completed"):
            # A business failure the process foresaw: undo, but page nobody.
            effects += self._begin_undo(inst, now, f"step {step.name} failed: {kind}")
        return effects

    def _process_succeeded(self, inst: Instance, now: datetime, kind: str) -> list[Effect]:
        inst.reported = "success"
        if inst.status in ("running", "failed"):  # a failed instance had nothing undone
            return self._end(inst, now, "completed")
        return []  # in undo mode: a conflict, raised by _reconcile

    def _process_failed(self, inst: Instance, now: datetime, kind: str) -> list[Effect]:
        inst.reported = inst.reported or "failure"
        if inst.status in ("running", "completed"):
            return self._begin_undo(inst, now, f"process failed: {kind}")
        return []

    # -- deadlines and failures ----------------------------------------------------------------

    def _timeout(
        self, inst: Instance, step: Step | None, outcome: Outcome, now: datetime
    ) -> list[Effect]:
        name = step.name if step else PROCESS
        what = f"step {step.name}" if step else f"process {inst.process}"
        if outcome == "alert":
            if name in inst.open_incidents:
                return []  # raised once
            inst.open_incidents[name] = "warning"
            return [
                RaiseIncident(
                    name,
                    step.name if step else None,
                    "warning",
                    f"{what} is late for {inst.business_key}",
                )
            ]
        # Nobody knows whether a step that did not report happened: it is in doubt. Its owner
        # is asked where the definition says how; the others are undone as if they happened.
        doubtful = [step] if step else [s for s in self.definition.steps if s.compensation]
        effects: list[Effect] = []
        for s in doubtful:
            if inst.steps[s.name].status == "running":
                if s.settle is not None and step is None:
                    effects += self._ask_to_settle(
                        inst, s, now, "the process timed out", page=False
                    )
                else:
                    inst.steps[s.name].status = "timed_out"
        reason = f"{what} timed out"
        if name not in inst.open_incidents:  # a timeout means something is stuck: page
            inst.open_incidents[name] = "critical"
            effects.append(RaiseIncident(name, step.name if step else None, "critical", reason))
        if inst.status in UNDO_MODE:
            return effects + self._reconcile(inst, now)
        if outcome == "fail":
            inst.failure_reason = reason
            return effects + self._end(inst, now, "failed")
        return effects + self._begin_undo(inst, now, reason) + self._reconcile(inst, now)

    # -- settling a step in doubt ---------------------------------------------------------------

    def _ask_to_settle(
        self, inst: Instance, step: Step, now: datetime, reason: str, *, page: bool = True
    ) -> list[Effect]:
        """Ask the step's owner to void the step if it was not done, instead of guessing: the
        answer decides between compensating and going on. Meanwhile the step is late (a warning
        incident, the SLA missed), not a failure."""
        assert step.settle is not None
        state = inst.steps[step.name]
        state.status = "settling"
        command = step.settle.command
        effects: list[Effect] = [
            SendCommand(step.name, "settle", command, inst.business_key, reason)
        ]
        owner = f" of {step.owner}" if step.owner else ""
        self._log(
            inst, now, "settle", step=step.name, note=f"sent {command}: asked the owner{owner}"
        )
        if step.settle.deadline:
            effects.append(SetDeadline(f"{step.name}.settle", now + step.settle.deadline))
        if page and step.name not in inst.open_incidents:
            inst.open_incidents[step.name] = "warning"
            effects.append(
                RaiseIncident(
                    step.name,
                    step.name,
                    "warning",
                    f"step {step.name} is late for {inst.business_key}: missed its deadline; "
                    f"its owner{owner} was asked to settle it",
                )
            )
        return effects

    def _step_voided(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        """The owner voided the step: it did not happen and never will. What completed before
        it is compensated; the step itself needs no undo."""
        state = inst.steps[step.name]
        effects: list[Effect] = [CancelDeadline(f"{step.name}.settle")]
        if state.status not in UNSETTLED:
            return effects  # it reported, or was undone meanwhile: recorded, nothing more
        state.status, state.ended_at = "voided", now
        state.started_at = state.started_at or now
        effects.append(CancelDeadline(step.name))
        if inst.open_incidents.get(step.name) is not None:
            effects.append(self._resolve(inst, step.name))  # its outcome is known and dealt with
        if inst.status in ("running", "completed", "failed"):
            effects += self._begin_undo(inst, now, f"step {step.name} voided by its owner")
        return effects

    def _step_done_late(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        """The owner could not void the step: it was done. The process goes on, late; the
        step's own report (which its owner sent before this answer) completes or fails it."""
        state = inst.steps[step.name]
        effects: list[Effect] = [CancelDeadline(f"{step.name}.settle")]
        if state.status == "settling":
            state.status = "running"
            self._log(inst, now, "status", step=step.name, note="done, late: awaiting its report")
        return effects

    def _settle_overdue(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        """The owner did not answer in time: the step is in doubt, as without a settle."""
        state = inst.steps[step.name]
        if state.status != "settling":
            return []
        state.status = "timed_out"
        self._log(inst, now, "timeout", step=step.name, note="its owner did not settle it in time")
        effects: list[Effect] = []
        if inst.open_incidents.get(step.name) == "warning":
            effects.append(self._resolve(inst, step.name))
        reason = f"step {step.name} timed out and its owner did not settle it"
        if step.name not in inst.open_incidents:
            inst.open_incidents[step.name] = "critical"
            effects.append(RaiseIncident(step.name, step.name, "critical", reason))
        if inst.status in UNDO_MODE:
            return effects + self._reconcile(inst, now)
        return effects + self._begin_undo(inst, now, reason) + self._reconcile(inst, now)

    def _begin_undo(self, inst: Instance, now: datetime, reason: str) -> list[Effect]:
        """Undo mode, for good: running steps nobody needs to wait for are let go."""
        inst.failure_reason = inst.failure_reason or reason
        inst.status, inst.ended_at = "compensating", None
        self._log(inst, now, "status", note=f"compensating: {reason}")
        effects: list[Effect] = [CancelDeadline(PROCESS)]
        for step in self.definition.steps:
            if step.compensation is None and inst.steps[step.name].status == "running":
                effects.append(CancelDeadline(step.name))
        return effects

    def _reconcile(self, inst: Instance, now: datetime) -> list[Effect]:
        """In undo mode: undo whatever happened or may have happened and is not undone yet,
        raise a conflict for what cannot be undone, and say where the undo stands. In any mode:
        settle incidents of timeouts whose step has since reported."""
        effects: list[Effect] = []
        if inst.status in UNDO_MODE:
            to_undo = [
                s
                for s in self.definition.steps
                if s.compensation and inst.steps[s.name].status in ("completed", "timed_out")
            ]
            order = list(self.steps)  # ties go to the later step: it started from the earlier
            to_undo.sort(
                key=lambda s: (self._last_moved(inst, s.name) or now, order.index(s.name)),
                reverse=True,
            )
            for step in to_undo:
                effects += self._send_compensation(inst, step, now, inst.failure_reason or "")
            effects += self._conflict(inst, now)
            stuck = inst.conflict is not None or any(
                s.status == "compensation_failed" for s in inst.steps.values()
            )
            waiting = any(
                inst.steps[s.name].status in ("running", "settling", "compensating")
                for s in self.definition.steps
                if s.compensation
            )
            status: InstanceStatus = (
                "needs_manual_resolution" if stuck else "compensating" if waiting else "compensated"
            )
            if status != inst.status:
                inst.status = status
                inst.ended_at = now if status in ENDED else None
                self._log(inst, now, "status", note=status)
        for name, severity in list(inst.open_incidents.items()):
            state = inst.steps.get(name)
            settled = ("completed", "failed", "compensated")
            if severity == "critical" and state and state.reported and state.status in settled:
                effects.append(self._resolve(inst, name))  # its outcome is known and dealt with
        return effects

    def _conflict(self, inst: Instance, now: datetime) -> list[Effect]:
        """What happened that no compensation can undo, while the process is being undone."""
        if inst.conflict is not None:
            return []
        done = [
            s.name
            for s in self.definition.steps
            if s.compensation is None and inst.steps[s.name].status == "completed"
        ]
        if done:
            inst.conflict = f"step {done[0]} completed, and it has no compensation"
        elif inst.reported == "success":
            inst.conflict = "the process reported success"
        else:
            return []
        summary = f"{inst.conflict}, but the process is being undone: manual resolution needed"
        self._log(inst, now, "status", note=summary)
        inst.open_incidents[CONFLICT] = "critical"
        return [RaiseIncident(CONFLICT, None, "critical", summary)]

    @staticmethod
    def _failed_steps(inst: Instance) -> list[str]:
        return [n for n, s in inst.steps.items() if s.status in ("failed", "timed_out")]

    @staticmethod
    def _last_moved(inst: Instance, name: str) -> datetime | None:
        state = inst.steps[name]
        return state.ended_at or state.started_at

    # -- compensations -------------------------------------------------------------------------

    def _send_compensation(
        self, inst: Instance, step: Step, now: datetime, reason: str
    ) -> list[Effect]:
        assert step.compensation is not None
        state = inst.steps[step.name]
        command = step.compensation.command
        effects: list[Effect] = [
            SendCommand(step.name, "compensation", command, inst.business_key, reason)
        ]
        self._log(inst, now, "compensation", step=step.name, note=f"sent {command}")
        if step.compensation.completes_on:
            state.status = "compensating"
            if step.compensation.deadline:
                state.compensation_deadline = now + step.compensation.deadline
                effects.append(
                    SetDeadline(f"{step.name}.compensation", state.compensation_deadline)
                )
        else:
            state.status = "compensated"  # nothing confirms it: sent is done
        return effects

    def _compensation_confirmed(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        """The undo happened; after its deadline it still counts, as a late step completion does:
        the refund was made, so its incident is resolved."""
        state = inst.steps[step.name]
        if state.status not in UNDO_UNCONFIRMED:
            return []  # nothing of it is waiting: recorded on the timeline, nothing more
        late = state.status == "compensation_failed"
        state.status = "compensated"
        name = f"{step.name}.compensation"
        effects: list[Effect] = [CancelDeadline(name)]
        if name in inst.open_incidents:  # it escalated: a retry worked, or the undo was slow
            effects.append(self._resolve(inst, name))
        if late:
            self._log(inst, now, "status", step=step.name, note="compensated after its deadline")
        return effects

    def _end(self, inst: Instance, now: datetime, status: InstanceStatus) -> list[Effect]:
        inst.status, inst.ended_at = status, now
        self._log(inst, now, "status", note=status)
        effects: list[Effect] = [CancelDeadline(PROCESS)]
        effects += [CancelDeadline(s) for s, st in inst.steps.items() if st.status == "running"]
        if status == "completed":  # the instance recovered: every incident it raised is resolved
            effects += [self._resolve(inst, name) for name in sorted(inst.open_incidents)]
        return effects

    def _resolve(self, inst: Instance, name: str) -> ResolveIncident:
        severity = inst.open_incidents.pop(name)
        step = name.removesuffix(".compensation")
        return ResolveIncident(name, step if step in inst.steps else None, severity)

    def _step_of(self, kind: str) -> str | None:
        for step in self.definition.steps:
            if kind in (*step.starts_on, *step.completes_on, *step.fails_on):
                return step.name
            if step.compensation and kind in step.compensation.completes_on:
                return step.name
        return None

    def _log(
        self,
        inst: Instance,
        now: datetime,
        kind: str,
        envelope: Envelope | None = None,
        step: str | None = None,
        note: str = "",
        origin: str = "",
    ) -> None:
        inst.timeline.append(
            TimelineEntry(
                now,
                kind,
                envelope.type if envelope else "",
                envelope.id if envelope else "",
                envelope.causation_id if envelope else None,
                envelope.source if envelope else "",
                step,
                note,
                origin,
            )
        )


def step_latencies(inst: Instance) -> dict[str, timedelta]:
    """How long each finished step took."""
    return {
        name: s.ended_at - s.started_at
        for name, s in inst.steps.items()
        if s.started_at and s.ended_at
    }


def step_latency_ms(inst: Instance) -> dict[str, int]:
    """How long each finished step took, in whole milliseconds (API and trace records)."""
    return {name: int(took.total_seconds() * 1000) for name, took in step_latencies(inst).items()}
