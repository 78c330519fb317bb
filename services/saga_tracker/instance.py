"""One process instance (saga) as the tracker sees it, and the rules that advance it.

Pure logic: envelopes and the clock in, a new instance state and effects out (deadlines to set,
compensation commands to send, incidents to raise or resolve). The tracker service wires it to
Kafka; tests drive it directly. An instance stays on the definition version it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from choreograph.contracts.envelope import Envelope
from choreograph.process.definition import Outcome, ProcessDefinition, Step

StepStatus = Literal[
    "pending",
    "running",
    "completed",
    "failed",
    "timed_out",
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
]
Severity = Literal["warning", "critical"]
Action = Literal["retry", "compensate", "resolve"]
ACTIONS: tuple[Action, ...] = ("retry", "compensate", "resolve")
ENDED: frozenset[str] = frozenset(
    {"completed", "failed", "compensated", "needs_manual_resolution", "resolved"}
)
PROCESS = "process"  # deadline and incident name of the whole process
# A step whose undo was sent and whose confirmation may still come, even after it escalated.
UNDO_UNCONFIRMED: frozenset[str] = frozenset({"compensating", "compensation_failed"})


@dataclass
class StepState:
    name: str
    status: StepStatus = "pending"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    deadline: datetime | None = None
    compensation_deadline: datetime | None = None


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

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def undoing(self) -> bool:
        """A compensation was sent and its confirmation may still come, even after escalating."""
        return any(s.status in UNDO_UNCONFIRMED for s in self.steps.values())

    @property
    def at_risk(self) -> bool:
        """Its business value is in doubt: alerting, being undone, or waiting for a human."""
        if self.status in ("compensating", "needs_manual_resolution"):
            return True
        return not self.ended and bool(self.open_incidents)


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
    """Send a step's compensation command, or its retry command."""

    step: str
    purpose: Literal["compensation", "retry"]
    command: str  # Avro full name of the command
    key: str  # business key the command is about
    reason: str


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
    """How instances of one definition version move."""

    def __init__(self, definition: ProcessDefinition) -> None:
        self.definition = definition
        self.steps = {s.name: s for s in definition.steps}

    # -- start ---------------------------------------------------------------------------------

    def start(self, envelope: Envelope, now: datetime) -> tuple[Instance, list[Effect]]:
        d = self.definition
        inst = Instance(envelope.correlation_id, d.name, d.version, envelope.subject, now)
        inst.steps = {s.name: StepState(s.name) for s in d.steps}
        effects: list[Effect] = []
        if d.deadline:
            inst.deadline = now + d.deadline
            effects.append(SetDeadline(PROCESS, inst.deadline))
        self._log(inst, now, "event", envelope, note="process started")
        for step in d.steps:
            if not step.starts_on:
                effects += self._start_step(inst, step, now)
        return inst, effects

    # -- events --------------------------------------------------------------------------------

    def apply(self, inst: Instance, envelope: Envelope, now: datetime) -> list[Effect]:
        """Advance `inst` by one event of the process; events it does not know change nothing.
        An ended instance only takes the confirmation of an undo it still waits for."""
        kind, d = envelope.type, self.definition
        effects: list[Effect] = []
        matched = False
        live = not inst.ended
        for step in d.steps:
            state = inst.steps[step.name]
            if live and kind in step.starts_on and state.status == "pending":
                matched = True
                effects += self._start_step(inst, step, now)
            if (
                live
                and kind in step.completes_on
                and state.status in ("pending", "running", "timed_out")
            ):
                matched = True
                effects += self._complete_step(inst, step, now)
            if live and kind in step.fails_on and state.status in ("pending", "running"):
                matched = True
                state.status, state.ended_at = "failed", now
                effects.append(CancelDeadline(step.name))
                # A business failure the process foresaw: compensate, but page nobody.
                effects += self._fail(
                    inst, step, now, f"step {step.name} failed: {kind}", "compensate", page=False
                )
            if (
                step.compensation
                and kind in step.compensation.completes_on
                and state.status in UNDO_UNCONFIRMED
            ):
                matched = True
                effects += self._compensation_confirmed(inst, step, now)
        if kind in d.success and not inst.ended:
            matched = True
            effects += self._end(inst, now, "completed")
        if kind in d.failure and inst.status == "running":
            matched = True
            inst.failure_reason = inst.failure_reason or f"process failed: {kind}"
            effects += self._end(inst, now, "failed")
        if matched or (live and kind == d.start):
            self._log(inst, now, "event", envelope, step=self._step_of(kind))
        return effects

    # -- deadlines -----------------------------------------------------------------------------

    def deadline_passed(self, inst: Instance, name: str, now: datetime) -> list[Effect]:
        """A deadline set by an earlier effect has passed (the tracker's timer fired)."""
        if name.endswith(".compensation"):
            # Each undo in doubt escalates on its own, even after another one already did.
            step_name = name.removesuffix(".compensation")
            state = inst.steps[step_name]
            undoing = inst.status in ("compensating", "needs_manual_resolution")
            if state.status != "compensating" or not undoing:
                return []
            state.status = "compensation_failed"
            self._log(
                inst, now, "timeout", step=step_name, note="compensation not confirmed in time"
            )
            if inst.status != "needs_manual_resolution":
                inst.status, inst.ended_at = "needs_manual_resolution", now
            inst.open_incidents[name] = "critical"
            return [
                RaiseIncident(
                    name,
                    step_name,
                    "critical",
                    f"compensation of {step_name} did not complete: manual resolution needed",
                )
            ]
        if inst.ended:
            return []
        if name == PROCESS:
            self._log(inst, now, "timeout", note="process deadline passed")
            return self._timeout(inst, None, self.definition.on_timeout, now)
        step = self.steps[name]
        state = inst.steps[name]
        if state.status != "running":
            return []
        self._log(inst, now, "timeout", step=name, note=f"step deadline passed ({step.on_timeout})")
        return self._timeout(inst, step, step.on_timeout, now)

    # -- operator actions ----------------------------------------------------------------------

    def refusal(self, inst: Instance, action: str, step: str | None) -> str | None:
        """Why `action` does not apply to `inst` now; None when it does."""
        if action == "retry":
            if step is None or step not in inst.steps:
                return f"retry needs one of the steps: {', '.join(inst.steps)}"
            state = inst.steps[step]
            if state.status == "compensation_failed":
                return None
            late = state.status == "running" and step in inst.open_incidents
            if state.status in ("failed", "timed_out") or late:
                if inst.status in ("running", "failed"):
                    return None
                return f"the instance is {inst.status}: its steps are being or were undone"
            return f"step {step} is {state.status}: nothing to retry"
        if action == "compensate":
            if inst.status not in ("running", "failed"):
                return f"the instance is {inst.status}"
            if not any(
                inst.steps[s.name].status == "completed" and s.compensation
                for s in self.definition.steps
            ):
                return "no completed step has a compensation"
            return None
        if action == "resolve":
            if inst.open_incidents or inst.status in ("needs_manual_resolution", "failed"):
                return None
            return f"the instance is {inst.status} with no open incident: nothing to resolve"
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
        what = f"{action} {step}" if action == "retry" else action
        self._log(inst, now, "operator", step=step, note=f"{what} by {actor}: {reason}")
        why = f"{what} requested by {actor}: {reason}"
        if action == "retry":
            assert step is not None
            return self._retry(inst, self.steps[step], now, why)
        if action == "compensate":
            inst.failure_reason = inst.failure_reason or why
            effects: list[Effect] = [CancelDeadline(PROCESS)]
            for name, state in inst.steps.items():
                if state.status == "running":
                    state.status = "failed"
                    effects.append(CancelDeadline(name))
            inst.status = "running"  # so _compensate may start from a failed instance too
            return effects + self._compensate(inst, now, why)
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

    def _retry(self, inst: Instance, step: Step, now: datetime, why: str) -> list[Effect]:
        state = inst.steps[step.name]
        effects: list[Effect] = []
        if state.status == "compensation_failed":
            effects += self._send_compensation(inst, step, now, why)
            inst.status, inst.ended_at = "compensating", None
            return effects + self._maybe_compensated(inst, now)
        if step.name in inst.open_incidents:
            effects.append(self._resolve(inst, step.name))
        if inst.status == "failed" and inst.deadline and inst.deadline > now:
            effects.append(SetDeadline(PROCESS, inst.deadline))  # its end cancelled it
        inst.status, inst.ended_at, inst.failure_reason = "running", None, None
        effects += self._start_step(inst, step, now)
        if step.retry is not None:
            effects.append(
                SendCommand(step.name, "retry", step.retry.command, inst.business_key, why)
            )
            self._log(inst, now, "retry", step=step.name, note=f"sent {step.retry.command}")
        return effects

    # -- internals -----------------------------------------------------------------------------

    def _start_step(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        state = inst.steps[step.name]
        state.status, state.started_at = "running", now
        if step.deadline:
            state.deadline = now + step.deadline
            return [SetDeadline(step.name, state.deadline)]
        return []

    def _complete_step(self, inst: Instance, step: Step, now: datetime) -> list[Effect]:
        state = inst.steps[step.name]
        late = state.status == "timed_out"
        state.status, state.ended_at = "completed", now
        state.started_at = state.started_at or now
        effects: list[Effect] = [CancelDeadline(step.name)]
        if step.name in inst.open_incidents:  # it recovered after an alert
            effects.append(self._resolve(inst, step.name))
        if late:
            self._log(inst, now, "status", step=step.name, note="completed after its deadline")
        return effects

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
        if step:
            inst.steps[step.name].status = "timed_out"
        return self._fail(inst, step, now, f"{what} timed out", outcome)

    def _fail(
        self,
        inst: Instance,
        step: Step | None,
        now: datetime,
        reason: str,
        outcome: Outcome,
        *,
        page: bool = True,
    ) -> list[Effect]:
        """Fail the instance; `page` raises a critical incident (timeouts: something is stuck)."""
        if inst.ended or inst.status == "compensating":
            return []
        inst.failure_reason = reason
        effects: list[Effect] = []
        name = step.name if step else PROCESS
        if page and name not in inst.open_incidents:
            inst.open_incidents[name] = "critical"
            effects.append(RaiseIncident(name, step.name if step else None, "critical", reason))
        if outcome == "fail":
            return effects + self._end(inst, now, "failed")
        return effects + self._compensate(inst, now, reason)

    def _compensate(self, inst: Instance, now: datetime, reason: str) -> list[Effect]:
        """Undo completed steps, most recently completed first."""
        done = [
            s
            for s in self.definition.steps
            if inst.steps[s.name].status == "completed" and s.compensation is not None
        ]
        done.sort(key=lambda s: inst.steps[s.name].ended_at or now, reverse=True)
        effects: list[Effect] = []
        for step in done:
            effects += self._send_compensation(inst, step, now, reason)
        inst.status = "compensating"
        return effects + self._maybe_compensated(inst, now)

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
        the refund was made, so its incident is resolved and the instance may end compensated."""
        state = inst.steps[step.name]
        late = state.status == "compensation_failed"
        state.status = "compensated"
        name = f"{step.name}.compensation"
        effects: list[Effect] = [CancelDeadline(name)]
        if name in inst.open_incidents:  # it escalated: a retry worked, or the undo was slow
            effects.append(self._resolve(inst, name))
        if late:
            self._log(inst, now, "status", step=step.name, note="compensated after its deadline")
            stuck = any(s.status == "compensation_failed" for s in inst.steps.values())
            if inst.status == "needs_manual_resolution" and not stuck:
                inst.status, inst.ended_at = "compensating", None
        return effects + self._maybe_compensated(inst, now)

    def _maybe_compensated(self, inst: Instance, now: datetime) -> list[Effect]:
        if inst.status != "compensating":
            return []
        if any(s.status == "compensating" for s in inst.steps.values()):
            return []
        return self._end(inst, now, "compensated")

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
        return None

    def _log(
        self,
        inst: Instance,
        now: datetime,
        kind: str,
        envelope: Envelope | None = None,
        step: str | None = None,
        note: str = "",
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
