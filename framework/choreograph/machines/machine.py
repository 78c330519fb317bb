"""StateMachine: explicit states, transitions on events with guards, per-state timeouts, terminal
outcomes, actions on entering a state and on a timeout, and compensation hooks. One instance per
business key, persisted in a store of the service, so it survives restarts and moves with its
partition.

    payment = StateMachine("payment")
    payment.state("awaiting", timeout=timedelta(minutes=15), on_timeout="timed_out")
    payment.terminal("paid")
    payment.terminal("timed_out", outcome="failure")

    @payment.on(OrderPlaced, source="new", target="awaiting")
    def start(ctx, event, data):
        return {"amount": str(event.total)}

    @payment.on_timeout("awaiting")
    def escalate(ctx, data):
        ctx.emit(PaymentFailed(order_id=ctx.key, reason="no answer in 15 minutes"))

The user's `data` holds only what actions return; the machine's own bookkeeping (state,
states visited, which state timed out, what was compensated) is kept beside it on `Instance`.

A guard is a function, or the id of a policy (see choreograph.governance.policies), checked
against the event's contract when the machine is added to its service. Every transition writes a
decision record (`choreograph.decisions`) in the same transaction: states, trigger, every guard
and policy evaluated on the way, the service that decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from choreograph.contracts.event import Event
from choreograph.governance.approvals import DECIDED, REQUESTED, Approval, approval_id
from choreograph.governance.contracts_bound import APPROVALS_TOPIC, model
from choreograph.governance.decisions import ActorKind, Kind, RuleEvaluation, record_decision
from choreograph.runtime.context import Context
from choreograph.runtime.errors import ConfigurationError

if TYPE_CHECKING:
    from choreograph.governance.policies import BoundPolicy

Action = Callable[[Context, Any, dict[str, Any]], dict[str, Any] | None]
Guard = Callable[[Any, dict[str, Any]], bool]
Hook = Callable[[Context, dict[str, Any]], None]
StateAction = Callable[[Context, dict[str, Any]], dict[str, Any] | None]
Outcome = Literal["success", "failure"]


class MachineDefinitionError(ValueError):
    """The machine refers to states that do not exist, or is otherwise inconsistent."""


@dataclass(frozen=True)
class Migration:
    """How instances stored under an older version continue under this one: `states` renames
    states (a state not named keeps its name, and must exist here), `data` rewrites their data."""

    from_version: int
    states: dict[str, str]
    data: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def state(self, old: str) -> str:
        return self.states.get(old, old)


@dataclass
class StateSpec:
    name: str
    timeout: timedelta | None = None
    on_timeout: str | None = None
    outcome: Outcome | None = None  # set for terminal states
    compensation: Hook | None = None
    entered: StateAction | None = None  # runs on entering the state
    expired: StateAction | None = None  # runs when the state's timeout fires, before leaving
    approval: Approval | None = None  # the state waits for a person's approval


@dataclass
class Transition:
    event_type: type[Event]
    sources: frozenset[str]
    target: str
    guard: Guard | str | None  # a function, or a policy id
    action: Action | None
    timeout: Literal["restart", "cancel"] = "restart"
    policy: BoundPolicy | None = None  # the guard's policy, once bound to the service's

    def allows(self, machine: str, event: Event, data: dict[str, Any]) -> RuleEvaluation | None:
        """The guard's evaluation (None without a guard)."""
        if self.policy is not None:
            return self.policy.allows(event)[1]
        if callable(self.guard):
            name = getattr(self.guard, "__qualname__", repr(self.guard))
            return RuleEvaluation(f"{machine}:{name}", "code", bool(self.guard(event, data)))
        return None


@dataclass
class Instance:
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    visited: list[str] = field(default_factory=list)
    seq: int = 0
    outcome: Outcome | None = None
    timed_out_in: str | None = None  # the state whose timeout moved the instance, if one did
    compensated: list[str] = field(default_factory=list)  # states undone, most recent first
    approval: str | None = None  # the approval request it waits on, if any
    # The machine version it runs under; stored before versions were recorded counts as 1.
    version: int = 1

    def dump(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "state": self.state,
            "data": self.data,
            "visited": self.visited,
            "seq": self.seq,
            "outcome": self.outcome,
            "timed_out_in": self.timed_out_in,
            "compensated": self.compensated,
            "approval": self.approval,
        }


class StateMachine:
    def __init__(self, name: str, initial: str = "new", *, version: int = 1) -> None:
        """`version`: named in every decision record; raise it when the machine's rules change."""
        self.name = name
        self.version = version
        self.initial = initial
        self.states: dict[str, StateSpec] = {initial: StateSpec(initial)}
        self.transitions: list[Transition] = []
        # Older versions kept registered until their instances drain (see Service.add_machine),
        # and how instances of versions no longer registered continue under this one.
        self.older: dict[int, StateMachine] = {}
        self.migrations: dict[int, Migration] = {}

    # -- definition ----------------------------------------------------------------------------

    def state(
        self, name: str, *, timeout: timedelta | None = None, on_timeout: str | None = None
    ) -> StateMachine:
        if (timeout is None) != (on_timeout is None):
            raise MachineDefinitionError(f"state {name}: timeout and on_timeout go together")
        spec = self.states.setdefault(name, StateSpec(name))
        spec.timeout, spec.on_timeout = timeout, on_timeout
        return self

    def approval(
        self,
        state: str,
        *,
        granted: str,
        denied: str,
        requested_by: str | Callable[[dict[str, Any]], str] | None = None,
        summary: Callable[[dict[str, Any]], str] | None = None,
    ) -> StateMachine:
        """`state` waits for a person's approval: entering it asks for one (ApprovalRequested on
        choreograph.approvals); a grant moves the instance to `granted`, a denial to `denied`.
        `requested_by`: the data key (or a function of the data) naming who caused the request,
        who may not approve it. The state may also have a timeout, for requests nobody answers."""
        spec = self.states.setdefault(state, StateSpec(state))
        spec.approval = Approval(granted, denied, requested_by, summary)
        return self

    @property
    def approvals(self) -> bool:
        return any(spec.approval for spec in self.states.values())

    def terminal(self, name: str, outcome: Outcome = "success") -> StateMachine:
        self.states.setdefault(name, StateSpec(name)).outcome = outcome
        return self

    def on(
        self,
        event_type: type[Event],
        *,
        source: str | Iterable[str],
        target: str,
        guard: Guard | str | None = None,
        timeout: Literal["restart", "cancel"] = "restart",
    ) -> Callable[[Action], Action]:
        """A transition on `event_type` from `source` to `target`, decorating its action
        (`action(ctx, event, data)` returns the new data, or None to keep it). Entering `target`
        starts its timeout afresh (also on a self-transition: a restart); `timeout="cancel"`
        enters it without one. Use `transition()` for one without an action."""

        def register(action: Action) -> Action:
            self._add(event_type, source, target, guard, action, timeout)
            return action

        return register

    def transition(
        self,
        event_type: type[Event],
        *,
        source: str | Iterable[str],
        target: str,
        guard: Guard | str | None = None,
        timeout: Literal["restart", "cancel"] = "restart",
    ) -> StateMachine:
        """A transition with no action of its own."""
        self._add(event_type, source, target, guard, None, timeout)
        return self

    def _add(
        self,
        event_type: type[Event],
        source: str | Iterable[str],
        target: str,
        guard: Guard | str | None,
        action: Action | None,
        timeout: Literal["restart", "cancel"],
    ) -> None:
        sources = frozenset([source] if isinstance(source, str) else source)
        self.transitions.append(Transition(event_type, sources, target, guard, action, timeout))

    def on_enter(self, state: str) -> Callable[[StateAction], StateAction]:
        """Run `action(ctx, data)` on entering `state` (it may emit; it returns new data or
        None)."""

        def register(action: StateAction) -> StateAction:
            self.states.setdefault(state, StateSpec(state)).entered = action
            return action

        return register

    def on_timeout(self, state: str) -> Callable[[StateAction], StateAction]:
        """Run `action(ctx, data)` when `state`'s timeout fires, before the instance moves to
        the state's `on_timeout` target: the place to emit an escalation."""

        def register(action: StateAction) -> StateAction:
            self.states.setdefault(state, StateSpec(state)).expired = action
            return action

        return register

    def compensation(self, state: str) -> Callable[[Hook], Hook]:
        """Undo what entering `state` did, when the instance ends in failure."""

        def register(hook: Hook) -> Hook:
            self.states.setdefault(state, StateSpec(state)).compensation = hook
            return hook

        return register

    def migrate(
        self,
        from_version: int,
        states: dict[str, str] | None = None,
        data: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> StateMachine:
        """Instances stored under `from_version` continue under this version: each state in
        `states` becomes the state it names (the others keep their names, so they must exist
        here), and `data`, if given, rewrites their data. They move when next touched (an event,
        their timer), and are saved under this version."""
        if from_version >= self.version:
            raise MachineDefinitionError(
                f"machine {self.name} v{self.version}: a migration comes from an older version, "
                f"not v{from_version}"
            )
        self.migrations[from_version] = Migration(from_version, dict(states or {}), data)
        return self

    def validate(self) -> None:
        known = set(self.states)
        for migration in self.migrations.values():
            for old, new in migration.states.items():
                if new not in known:
                    raise MachineDefinitionError(
                        f"machine {self.name} v{self.version}: the migration from "
                        f"v{migration.from_version} moves state {old!r} to unknown state "
                        f"{new!r}; declare it with .state() or .terminal()"
                    )
        for t in self.transitions:
            for s in (*t.sources, t.target):
                if s not in known:
                    raise MachineDefinitionError(
                        f"machine {self.name}: transition on {t.event_type.__name__} names "
                        f"unknown state {s!r}; declare it with .state() or .terminal()"
                    )
            terminal_sources = [s for s in t.sources if self.states[s].outcome]
            if terminal_sources:
                raise MachineDefinitionError(
                    f"machine {self.name}: terminal state {terminal_sources[0]!r} cannot have "
                    "outgoing transitions"
                )
        for spec in self.states.values():
            if spec.approval is not None:
                for answer in (spec.approval.granted, spec.approval.denied):
                    if answer not in known:
                        raise MachineDefinitionError(
                            f"machine {self.name}: approval of state {spec.name} leads to "
                            f"unknown state {answer!r}; declare it with .state() or .terminal()"
                        )
                if spec.outcome:
                    raise MachineDefinitionError(
                        f"machine {self.name}: terminal state {spec.name} cannot wait for an "
                        "approval"
                    )
            if spec.expired is not None and spec.timeout is None:
                raise MachineDefinitionError(
                    f"machine {self.name}: state {spec.name} has a timeout action but no "
                    "timeout; declare it with .state(name, timeout=..., on_timeout=...)"
                )
            if spec.on_timeout and spec.on_timeout not in known:
                raise MachineDefinitionError(
                    f"machine {self.name}: state {spec.name} times out to unknown state "
                    f"{spec.on_timeout!r}"
                )

    def bind_policies(self, policy: Callable[[str, type[Event], str], BoundPolicy]) -> None:
        """Resolve guards that name a policy, through the service's `policy` (which raises, at
        start-up, for a policy that is missing or reads another event)."""
        for t in self.transitions:
            if isinstance(t.guard, str):
                where = f"machine {self.name}'s transition on {t.event_type.__name__}"
                t.policy = policy(t.guard, t.event_type, where)

    @property
    def store_name(self) -> str:
        return f"machine.{self.name}"

    @property
    def timer_name(self) -> str:
        return f"machine.{self.name}.timeout"

    def event_types(self) -> set[type[Event]]:
        """What this version and the older ones still registered act on."""
        found = {t.event_type for t in self.transitions}
        if self.approvals:
            found.add(model(DECIDED))
        for older in self.older.values():
            found |= older.event_types()
        return found

    # -- versions ------------------------------------------------------------------------------

    def keep(self, older: StateMachine) -> None:
        """Run `older`'s instances with `older` until they end (Service.add_machine calls this
        when two versions of one machine are added)."""
        if older.version >= self.version:
            raise MachineDefinitionError(
                f"machine {self.name}: v{older.version} is not older than v{self.version}"
            )
        self.older[older.version] = older
        self.older.update(older.older)
        older.older = {}

    def versions(self) -> list[int]:
        return sorted([self.version, *self.older])

    def runner(self, inst: Instance) -> tuple[StateMachine, Instance]:
        """The version that runs `inst`: its own, when registered; else this one, with the
        instance migrated (renamed state, rewritten data, this version)."""
        if inst.version == self.version:
            return self, inst
        older = self.older.get(inst.version)
        if older is not None:
            return older, inst
        migration = self.migrations.get(inst.version)
        state = migration.state(inst.state) if migration else inst.state
        if inst.outcome is None and state not in self.states:
            raise StrandedInstances(self, {(inst.version, inst.state): 1})
        if migration is not None:
            if migration.data is not None and inst.outcome is None:
                inst.data = migration.data(dict(inst.data))
            inst.visited = [migration.state(name) for name in inst.visited]
            inst.compensated = [migration.state(name) for name in inst.compensated]
        inst.state, inst.version = state, self.version
        return self, inst

    def stranded(self, instances: Iterable[dict[str, Any]]) -> dict[tuple[int, str], int]:
        """Open stored instances (as stored) that no registered version can run, counted by
        (version, state): their state is gone and no migration says where it went."""
        found: dict[tuple[int, str], int] = {}
        for raw in instances:
            if raw.get("outcome") is not None:
                continue  # ended: nothing will move it again
            version, state = raw.get("version", 1), raw["state"]
            runner = self if version == self.version else self.older.get(version)
            if runner is not None:
                ok = state in runner.states
            else:
                migration = self.migrations.get(version)
                ok = (migration.state(state) if migration else state) in self.states
            if not ok:
                found[(version, state)] = found.get((version, state), 0) + 1
        return found

    # -- running -------------------------------------------------------------------------------

    def load(self, ctx: Context) -> Instance | None:
        raw = ctx.store(self.store_name).get(ctx.key)
        return None if raw is None else Instance(**raw)

    def _save(self, ctx: Context, inst: Instance) -> None:
        ctx.store(self.store_name).put(ctx.key, inst.dump())

    def handle(self, ctx: Context, event: Event) -> str | None:
        """Apply the first matching transition; return the new state, or None if none matched.
        A stored instance runs under its own version while that is registered; a new one
        starts under this version."""
        stored = self.load(ctx)
        if stored is None:
            return self._handle(ctx, event, Instance(self.initial, version=self.version))
        runner, inst = self.runner(stored)
        return runner._handle(ctx, event, inst)

    def _handle(self, ctx: Context, event: Event, inst: Instance) -> str | None:
        if inst.outcome is not None:
            return None
        if type(event).__avro_name__ == DECIDED:
            return self._decided(ctx, inst, event)
        data = dict(inst.data)
        for t in self.transitions:
            if not isinstance(event, t.event_type) or inst.state not in t.sources:
                continue
            if isinstance(t.guard, str) and t.policy is None:
                raise TypeError(
                    f"machine {self.name} names policy {t.guard!r} but was not added to a "
                    "service with policies; service.add_machine(...) it"
                )
            evaluation = t.allows(self.name, event, data)
            if evaluation is not None:
                ctx.evaluated(evaluation)
                if evaluation.result is not True:
                    continue
            if t.action is not None:
                updated = t.action(ctx, event, data)
                if updated is not None:
                    data = updated
            inst.data = data
            self._enter(ctx, inst, t.target, start_timer=t.timeout == "restart")
            return t.target
        ctx.take_evaluations()  # guards that held nothing back: no decision was taken
        return None

    def _decided(self, ctx: Context, inst: Instance, event: Any) -> str | None:
        """An approver's answer: applied when it answers the request the instance waits on
        (a late answer to an earlier request, or one for another machine, changes nothing)."""
        spec = self.states[inst.state]
        if (
            event.machine != self.name
            or spec.approval is None
            or inst.approval != event.approval_id
        ):
            return None
        target = spec.approval.granted if event.granted else spec.approval.denied
        verdict = "granted" if event.granted else "denied"
        inst.approval = None
        self._enter(ctx, inst, target, kind="approval", actor=event.approver,
                    actor_kind="approver", reason=f"{verdict}: {event.reason}")  # fmt: skip
        return target

    def timer_fired(self, ctx: Context, payload: dict[str, Any]) -> str | None:
        """The runtime's entry for this machine's timer: run the state's timeout action, then
        move to its `on_timeout` target."""
        stored = self.load(ctx)
        if stored is None:
            return None
        armed_in = stored.state
        runner, inst = self.runner(stored)
        if armed_in != payload.get("state") or inst.seq != payload.get("seq"):
            return None  # the instance moved on: a stale timer
        return runner._timer_fired(ctx, inst)

    def _timer_fired(self, ctx: Context, inst: Instance) -> str | None:
        spec = self.states[inst.state]
        target = spec.on_timeout
        if target is None:
            return None  # migrated into a state this version gives no timeout
        if spec.expired is not None:
            updated = spec.expired(ctx, dict(inst.data))
            if updated is not None:
                inst.data = updated
        inst.timed_out_in = inst.state
        self._enter(ctx, inst, target, trigger=f"timer:{self.timer_name}")
        return target

    def _enter(
        self,
        ctx: Context,
        inst: Instance,
        target: str,
        start_timer: bool = True,
        trigger: str | None = None,
        kind: Kind | None = None,
        actor: str | None = None,
        actor_kind: ActorKind = "service",
        reason: str = "",
    ) -> None:
        leaving = self.states[inst.state]
        before = inst.state
        inst.approval = None  # leaving a state that waited: its request is answered or moot
        if leaving.timeout is not None:
            ctx.cancel(self.timer_name)
        if inst.state != self.initial or inst.seq:
            inst.visited.append(inst.state)
        inst.state = target
        inst.seq += 1
        spec = self.states[target]
        if spec.timeout is not None and start_timer:
            ctx.schedule(self.timer_name, spec.timeout, {"state": target, "seq": inst.seq})
        if spec.entered is not None:
            updated = spec.entered(ctx, dict(inst.data))
            if updated is not None:
                inst.data = updated
        if spec.outcome is not None:
            inst.outcome = spec.outcome
            if spec.outcome == "failure":
                self._compensate(ctx, inst)
        if spec.approval is not None:
            self._request_approval(ctx, inst, spec.approval)
        self._save(ctx, inst)
        undone = f"compensated {', '.join(inst.compensated)}" if inst.compensated else ""
        record_decision(
            ctx,
            subject="machine",
            name=self.name,
            version=self.version,
            kind=kind or ("timeout" if trigger else "transition"),
            from_state=before,
            to_state=target,
            trigger=trigger,
            actor=actor,
            actor_kind=actor_kind,
            reason=reason or (undone if spec.outcome == "failure" else ""),
        )

    def _request_approval(self, ctx: Context, inst: Instance, approval: Approval) -> None:
        asked = approval_id(ctx.service, self.name, ctx.key, inst.state, inst.seq)
        inst.approval = asked
        envelope = ctx.envelope
        request = model(REQUESTED).from_avro(
            {
                "approval_id": asked,
                "correlation_id": envelope.correlation_id if envelope else ctx.key,
                "service": ctx.service,
                "machine": self.name,
                "version": self.version,
                "instance": ctx.key,
                "state": inst.state,
                "requested_by": approval.requester(inst.data, ctx.service),
                "summary": approval.summary(inst.data) if approval.summary else "",
                "requested_at": ctx.now,
            }
        )
        ctx.emit(request, key=ctx.key, topic=APPROVALS_TOPIC)

    def _compensate(self, ctx: Context, inst: Instance) -> None:
        """Run compensation hooks of completed states, most recent first."""
        for name in reversed(inst.visited):
            spec = self.states.get(name)  # a state an older version had, and this one not
            hook = spec.compensation if spec is not None else None
            if hook is not None:
                hook(ctx, inst.data)
                inst.compensated.append(name)


class StrandedInstances(ConfigurationError):
    """Stored instances that no registered version of their machine can run: their state is
    gone, and no migration says where it went. Refused at start-up, naming what to change."""

    def __init__(self, machine: StateMachine, counts: dict[tuple[int, str], int]) -> None:
        self.machine = machine.name
        self.counts = counts
        parts = ", ".join(
            f"{n} in state {state!r} of v{version}"
            for (version, state), n in sorted(counts.items())
        )
        versions = sorted({version for version, _ in counts})
        # States changed under the same version number: the way out starts with a new number.
        bump = (
            f"Give the changed machine a new version (StateMachine({machine.name!r}, "
            f"version={machine.version + 1})), then keep"
            if versions[-1] >= machine.version
            else "Keep"
        )
        newest = max(machine.version, versions[-1] + 1)
        super().__init__(
            f"machine {machine.name}: stored instances that v{machine.version} cannot run: "
            f"{parts}. {bump} the version they run under registered until they drain "
            f"(service.add_machine(<the v{versions[0]} machine>) beside v{newest}), or "
            f"declare where each state went: {machine.name}.migrate({versions[0]}, "
            f"{{{', '.join(repr(s) + ': ...' for (_, s) in sorted(counts))}}})"
        )
