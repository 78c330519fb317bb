"""The saga tracker as two choreograph services.

- The router reads the domain topics and repartitions every event a process definition mentions
  by its correlation id (`saga-tracker.repartition`). It first checks that the body is what the
  envelope claims and can be read: a record the teams' services would dead-letter must not start,
  advance or page for an instance, so it goes to the router's DLQ (counted in
  `choreograph_saga_rejected_events`). It copies the body only where the tracker reads it, so no
  body, however large, can stop the tracker.
- The tracker reads the repartition topic, so all events of one process instance meet in one
  partition task; events that overtake their process's start event are parked until it comes.
  It advances instances (store `instances`, key `<correlation id>/<process>`),
  turns deadlines into durable timers, sends compensation and retry commands, publishes incidents
  to `choreograph.alerts` and a trace to `choreograph.traces` whenever an instance's status
  changes after its start. Operator actions arrive on the same topic, keyed by the instance
  they act on, and are audited to `choreograph.audit`. Malformed or unrelated records are
  counted and skipped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import ContractViolation, Event
from choreograph.contracts.serde import MislabelledRecord, SerdeError
from choreograph.governance.approvals import DECIDED, REQUESTED
from choreograph.governance.contracts_bound import DECISIONS_TOPIC, model
from choreograph.governance.decisions import Kind, record_decision
from choreograph.process.definition import ProcessDefinition, render_template
from choreograph.runtime.context import REPARTITIONED_FROM, Context, RawEvent
from choreograph.runtime.service import Service
from saga_tracker.batches import BATCH_ITEM_DONE, BATCHES
from saga_tracker.codec import decode, stored, timeline_entry
from saga_tracker.definitions import Definitions
from saga_tracker.flow import FLOW_STORE, Outbox, limits_of
from saga_tracker.flow import TIMER_PREFIX as OUTBOX_TIMERS
from saga_tracker.instance import (
    ENDED,
    ActionRefused,
    Effect,
    Instance,
    ProcessRules,
    RaiseIncident,
    ResolveIncident,
    SendCommand,
    step_latency_ms,
)
from saga_tracker.metrics import STATS, Snapshot, TrackerMetrics, contribution
from saga_tracker.migration import check_migration, record_move

REPARTITION = "saga-tracker.repartition"
INCIDENT = "dev.choreograph.Incident"
TRACE = "dev.choreograph.ProcessTrace"
AUDIT = "dev.choreograph.AuditEntry"
ACTION = "dev.choreograph.OperatorAction"
DECISION = "dev.choreograph.DecisionRecord"
DECISIONS_STORE = "decisions"  # the services' decisions per correlation id, for traces
APPROVALS_STORE = "approvals"  # approval requests by id, with their answers
MAX_DECISIONS_SHOWN = 200
MAX_BATCHES_KEPT = 20  # ids of batch actions an instance remembers, so none applies twice
STEP_UNDER_WAY = frozenset({"pending", "running", "settling"})  # a step that has not ended
log = logging.getLogger("saga_tracker")
PARKING_TIME = timedelta(hours=1)
# The router copies a body only where the tracker reads it (a start event's value at risk), and
# only up to this size: a larger one is tracked from its envelope, without a value.
MAX_FORWARDED_BODY = 256 * 1024


def envelope_to_json(envelope: Envelope, origin: str = "") -> dict[str, Any]:
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in envelope.to_headers()}
    return {**headers, REPARTITIONED_FROM: origin} if origin else headers


def envelope_from_json(raw: dict[str, Any]) -> tuple[Envelope, str]:
    """The envelope and where its record was read ("" when unknown)."""
    origin = str(raw.get(REPARTITIONED_FROM) or "")
    headers = [(k, v) for k, v in raw.items() if k != REPARTITIONED_FROM]
    return Envelope.from_headers(headers), origin


def origin_of(raw: RawEvent) -> str:
    """Where the router read this event (its `repartitioned_from` header), "" when unknown."""
    for name, value in raw.headers:
        if name == REPARTITIONED_FROM and value is not None:
            return value.decode() if isinstance(value, bytes) else value
    return ""


def build_router(
    definitions: Definitions,
    inputs: list[str],
    *,
    name: str = "saga-tracker-router",
    repartition: str = REPARTITION,
    metrics: TrackerMetrics | None = None,
    models: dict[str, type[Event]] | None = None,
) -> Service:
    """`models`: contracts to check JSON data of structured-mode events against (Avro bodies
    are checked against their writer schema)."""
    router = Service(name, inputs, outputs=[repartition], malformed="skip")
    governance = {DECISION, REQUESTED, DECIDED}  # shown on traces and the approvals page
    followed = definitions.event_types() | governance
    bodies = definitions.bodies_read() | governance  # read by the tracker
    counts = metrics or TrackerMetrics()
    contracts = models or {}

    @router.handle_envelopes()
    def route(ctx: Context, raw: RawEvent) -> None:
        if raw.envelope.type not in followed:
            return
        try:  # the same check every service makes before acting on a record
            ctx.decode(raw, contracts.get(raw.envelope.type) if raw.data is not None else None)
        except (SerdeError, ContractViolation) as err:
            reason = "mislabelled" if isinstance(err, MislabelledRecord) else "unreadable"
            counts.rejected.labels(raw.envelope.type, reason).inc()
            raise  # a bad record: dead-lettered at once, never tracked
        keep = raw.envelope.type in bodies and len(raw.value or b"") <= MAX_FORWARDED_BODY
        ctx.forward(
            raw,
            repartition,
            key=raw.envelope.correlation_id,
            with_body=keep,
            resolved=True,
            origin=True,  # the tracker keeps it on the timeline: captures read it, not scan
        )

    return router


class EndedInstances(Protocol):
    """Told of each step as it ends and each instance as it ends (the OpenTelemetry export,
    `saga_tracker.otel`)."""

    def step_ended(self, inst: Instance, name: str) -> None: ...

    def ended(self, inst: Instance) -> None: ...


class Tracker:
    """The tracker's handlers, over the definitions and the command, incident and trace models."""

    def __init__(
        self,
        definitions: Definitions,
        models: dict[str, type[Event]],
        metrics: TrackerMetrics | None = None,
        alerts_topic: str | None = None,
        spans: EndedInstances | None = None,
        batches_topic: str | None = None,
        retention: timedelta | None = None,
    ) -> None:
        self.definitions = definitions
        self.models = models
        self.metrics = metrics or TrackerMetrics()
        self.alerts_topic = alerts_topic  # None: the Incident contract's topic
        self.spans = spans
        self.batches_topic = batches_topic  # where batch actions' outcomes are reported
        self.retention = retention  # how long ended instances are kept, unless defined
        self.outbox = Outbox(
            limits_of(r.definition for r in definitions.rules.values()),
            envelope_to_json,
            lambda raw: envelope_from_json(raw)[0],
        )

    def on_event(self, ctx: Context, raw: RawEvent) -> None:
        envelope = raw.envelope
        if envelope.type == ACTION:
            self._operator_action(ctx, raw)
            return
        if envelope.type == DECISION:
            self._services_decision(ctx, raw)
            return
        if envelope.type in (REQUESTED, DECIDED):
            self._approval(ctx, raw)
            return
        origin = origin_of(raw)
        found = self._instances(ctx)
        if found:
            self._advance(ctx, envelope, found, origin, raw)
            return
        starting = self.definitions.starting(envelope.type)
        if not starting:
            self._park(ctx, envelope, origin)  # came before the event that starts its process
            return
        for rules in starting:
            value_field = rules.definition.value_at_risk
            fields = self._fields(ctx, raw, (value_field or "", *rules.fields_read(envelope.type)))
            inst, effects = rules.start(envelope, ctx.now, origin, fields)
            value = fields.get(value_field) if value_field else None
            inst.value = float(value) if isinstance(value, int | float | Decimal) else None
            self._settle(ctx, rules, None, inst, effects)
        self._replay_parked(ctx)

    def starter(self, definition: ProcessDefinition) -> Callable[[Context, datetime], None]:
        """What a process on a schedule does at each occurrence: publish its start event, built
        from the schedule's payload, keyed by the process and the occurrence (its business key).
        The tracker then starts the instance from it as from any start event."""
        schedule = definition.schedule
        assert schedule is not None
        start = self.models[definition.start]

        def occurred(ctx: Context, occurrence: datetime) -> None:
            key = f"{definition.name}@{occurrence.isoformat()}"
            values = {"occurrence": occurrence.isoformat(), "date": occurrence.date().isoformat(),
                      "process": definition.name, "business_key": key}  # fmt: skip
            body = {name: render_template(template, values, {})
                    for name, template in schedule.payload.items()}  # fmt: skip
            ctx.emit(start.model_validate(body), key=key, topic=start.__avro_topic__)

        return occurred

    def _services_decision(self, ctx: Context, raw: RawEvent) -> None:
        """A decision record of a team's service: kept beside the instance (by correlation id,
        whether or not its start has come yet) for its trace. The tracker's own are on the
        timeline already."""
        if raw.envelope.source == ctx.service:
            return
        decision = _framework_record(ctx, raw)
        if decision is None:
            return
        store = ctx.store(DECISIONS_STORE)
        kept = store.get(ctx.key) or []
        summary = {
            "at": decision["at"].isoformat(),
            "kind": decision["kind"],
            "by": f"{decision['subject']} {decision['name']} v{decision['version']}",
            "from": decision["from_state"],
            "to": decision["to_state"],
            "rules": [f"{r['rule']} v{r['version']} = {r['result']}" for r in decision["rules"]],
            "actor": decision["actor"],
            "reason": decision["reason"],
        }
        store.put(ctx.key, [*kept, summary][-MAX_DECISIONS_SHOWN:])

    def _approval(self, ctx: Context, raw: RawEvent) -> None:
        """Keep approval requests (pending until their decision comes by) for approvers."""
        event = _framework_record(ctx, raw)
        if event is None:
            return
        store = ctx.store(APPROVALS_STORE)
        known = store.get(event["approval_id"])
        if raw.envelope.type == REQUESTED:
            if known is None:  # a decision that overtook its request keeps its answer
                store.put(event["approval_id"], {**_plain(event), "status": "pending"})
            return
        answer = {
            "status": "granted" if event["granted"] else "denied",
            "approver": event["approver"],
            "reason": event["reason"],
            "decided_at": event["decided_at"].isoformat(),
        }
        base = known or {
            k: event[k] for k in ("approval_id", "instance", "machine", "correlation_id")
        }
        if (known or {}).get("status", "pending") == "pending":  # the first answer stands
            store.put(event["approval_id"], {**base, **answer})

    def _fields(self, ctx: Context, raw: RawEvent | None, names: tuple[str, ...]) -> dict[str, Any]:
        """The body fields the definitions read of this event (a value at risk, search
        attributes): those alone are decoded. Empty without a body (the router left a large
        one behind, or it was parked) or when it cannot be read."""
        wanted = tuple(dict.fromkeys(n for n in names if n))
        if not wanted or raw is None or (raw.value is None and raw.data is None):
            return {}
        try:
            return ctx.read_fields(raw, *wanted)
        except SerdeError as err:
            log.warning("fields of %s unreadable: %s", raw.envelope.correlation_id, err)
            return {}

    def _instances(self, ctx: Context) -> list[Instance]:
        """Instances of this correlation id: one lookup per process followed (no scan)."""
        store = ctx.store("instances")
        found = (store.get(f"{ctx.key}/{name}") for name in self.definitions.processes)
        return [decode(raw) for raw in found if raw is not None]

    def _advance(
        self,
        ctx: Context,
        envelope: Envelope,
        instances: list[Instance],
        origin: str = "",
        raw: RawEvent | None = None,
    ) -> None:
        """Apply an event to every instance of this correlation id, each on its own version, late
        or not: what a step reports after a timeout or after the end still counts."""
        for inst in instances:
            pinned = self.definitions.pinned(inst.process, inst.version)
            if pinned is not None:
                before = Snapshot.of(inst)
                fields = self._fields(ctx, raw, pinned.fields_read(envelope.type))
                effects = pinned.apply(inst, envelope, ctx.now, origin, fields)
                self._settle(ctx, pinned, before, inst, effects)

    def _park(self, ctx: Context, envelope: Envelope, origin: str) -> None:
        """Events of one process come from several topics and can overtake its start event:
        keep them until the start arrives or the parking time is up. One entry per correlation
        id, so that a start event costs one lookup to find out there is nothing parked."""
        parked = ctx.store("parked")
        waiting = parked.get(ctx.key) or []
        parked.put(ctx.key, [*waiting, envelope_to_json(envelope, origin)])
        ctx.schedule("parked:expire", ctx.now + PARKING_TIME)

    def _replay_parked(self, ctx: Context) -> None:
        parked = ctx.store("parked")
        waiting = [envelope_from_json(raw) for raw in parked.get(ctx.key) or []]
        if not waiting:
            return
        parked.delete(ctx.key)
        ctx.cancel("parked:expire")
        for envelope, origin in sorted(waiting, key=lambda e: (e[0].time, e[0].id)):  # event time
            self._advance(ctx, envelope, self._instances(ctx), origin)

    def on_outbox(self, ctx: Context, payload: dict[str, Any]) -> None:
        """A command held back by flow control: its slot has come."""
        self.outbox.due(ctx, payload, self.models)

    def on_parked_expired(self, ctx: Context, payload: dict[str, Any]) -> None:
        ctx.store("parked").delete(ctx.key)

    def on_deadline(self, ctx: Context, payload: dict[str, Any]) -> None:
        """The instance's timer: every armed deadline now due passes, earliest first (one timer
        per instance, at its earliest deadline; `_settle` sets it again at the next). A timer
        that names its deadline was set before, one per deadline: it passes that one, unless
        the instance has armed it again for later since."""
        raw_inst = ctx.store("instances").get(payload["instance"])
        if raw_inst is None:
            return
        inst = decode(raw_inst)
        rules = self.definitions.pinned(inst.process, inst.version)
        if rules is None:
            return
        before = Snapshot.of(inst)
        named = payload.get("name")
        if named is not None:
            armed = inst.timers.get(named)
            due = [named] if armed is None or armed <= ctx.now else []
        else:
            # Earliest first; deadlines of one moment by name, as their timers used to fire.
            due = [n for n, at in sorted(inst.timers.items(), key=lambda t: (t[1], t[0]))
                   if at <= ctx.now]  # fmt: skip
        effects: list[Effect] = []
        for name in due:
            if inst.paused or (named is None and name not in inst.timers):
                break  # paused meanwhile, or settled by an earlier one of these
            timeouts = sum(e.kind == "timeout" for e in inst.timeline)
            effects += rules.deadline_passed(inst, name, ctx.now)
            if sum(e.kind == "timeout" for e in inst.timeline) > timeouts:
                timer = f"timer:deadline:{inst.process}:{name}"
                self._decided(
                    ctx, inst, before, "timeout", f"deadline {name} passed", trigger=timer
                )
        self._settle(ctx, rules, before, inst, effects)

    def _operator_action(self, ctx: Context, raw: RawEvent) -> None:
        try:
            action = ctx.decode(raw, self.models[ACTION])
        except SerdeError as err:
            log.warning("unreadable operator action skipped: %s", err)
            self.metrics.actions.labels("unknown", "invalid").inc()
            return
        kind, step = str(action.action).lower(), action.step
        batch_id = getattr(action, "batch_id", None)
        raw_inst = ctx.store("instances").get(f"{action.correlation_id}/{action.process}")
        inst = decode(raw_inst) if raw_inst is not None else None
        rules = self.definitions.pinned(inst.process, inst.version) if inst else None
        if inst is None or rules is None:
            refused = f"no instance {action.correlation_id} of {action.process}"
        elif batch_id and action.action_id in inst.batched:
            return  # this action of the batch was applied already: once is enough
        elif kind == "migrate":
            refused = self._migrate(ctx, inst, rules, action)
        else:
            before = Snapshot.of(inst)
            try:
                effects = rules.act(inst, kind, step, action.actor, action.reason, ctx.now)
                what = f"{kind}{f' {step}' if step else ''}: {action.reason}"
                if batch_id:
                    what += f" (batch {batch_id})"
                    inst.batched = [*inst.batched[-(MAX_BATCHES_KEPT - 1) :], action.action_id]
                decision = self._decided(
                    ctx, inst, before, "operator-action", what, actor=action.actor
                )
                self._settle(ctx, rules, before, inst, effects, decision)
                refused = ""
            except ActionRefused as err:
                refused = str(err)
        outcome = "REFUSED" if refused else "APPLIED"
        self.metrics.actions.labels(kind, outcome.lower()).inc()
        audit_entry(
            ctx,
            self.models,
            action_id=action.action_id,
            action=kind,
            target=action.correlation_id,
            step=step,
            actor=action.actor,
            role="operator",
            outcome=outcome,
            detail=refused or action.reason,
            batch_id=batch_id,
        )
        if batch_id and self.batches_topic:
            done = self.models[BATCH_ITEM_DONE].from_avro(
                {
                    "batch_id": batch_id,
                    "action_id": action.action_id,
                    "correlation_id": action.correlation_id,
                    "process": action.process,
                    "applied": not refused,
                    "detail": refused or action.reason,
                    "at": ctx.now,
                }
            )
            ctx.emit(done, key=batch_id, topic=self.batches_topic)

    def _migrate(self, ctx: Context, inst: Instance, rules: ProcessRules, action: Any) -> str:
        """Move `inst` to the version the action names, if the check (`saga_tracker.migration`)
        finds it safe now: the move and its decision record (who, from, to, the evidence) in
        one transaction. Returns why not ("" when moved)."""
        to = getattr(action, "to_version", None)
        target = self.definitions.pinned(inst.process, to) if to is not None else None
        if target is None or to is None:
            return f"v{to} of {inst.process} is not loaded here: release it to the tracker first"
        check = check_migration(inst, rules, target, ctx.now)
        if not check.safe or check.moved is None:
            return f"not safe to move to v{to}: {check.reason}"
        before = Snapshot.of(inst)
        moved = check.moved
        why = action.reason + (f" (batch {action.batch_id})" if action.batch_id else "")
        record_move(moved, check, action.actor, why, ctx.now)
        if action.batch_id:
            moved.batched = [*moved.batched[-(MAX_BATCHES_KEPT - 1) :], action.action_id]
        record_decision(
            ctx,
            subject="process",
            name=inst.process,
            version=to,
            kind="migration",
            from_state=inst.status,
            to_state=moved.status,
            instance=inst.correlation_id,
            actor=action.actor,
            actor_kind="operator",
            reason=f"migrated v{inst.version} -> v{to}: {why}",
            rules=[check.evidence()],
        )
        self._settle(ctx, target, before, moved, [])
        return ""

    def _settle(
        self,
        ctx: Context,
        rules: ProcessRules,
        before: Snapshot | None,
        inst: Instance,
        effects: list[Effect],
        decision: Envelope | None = None,
    ) -> None:
        """Carry out `effects` and keep `inst`. `decision`: the operator's decision record that
        caused them, which the commands they send are caused by."""
        key = f"{inst.correlation_id}/{inst.process}"
        for effect in effects:
            if isinstance(effect, SendCommand):
                what = f"sent {effect.command} for step {effect.step}: {effect.reason}"
                self._decided(ctx, inst, before, effect.purpose, what)
            elif isinstance(effect, RaiseIncident):
                self._decided(ctx, inst, before, "escalation", effect.summary)
        for effect in effects:
            if isinstance(effect, SendCommand):
                self._command(ctx, rules, inst, effect, decision if effect.by_operator else None)
            elif isinstance(effect, (RaiseIncident, ResolveIncident)):
                self._incident(ctx, rules, inst, effect)
        self._wake(ctx, before, inst, key)
        self._retain(ctx, rules, before, inst, key)
        ctx.store("instances").put_raw(key.encode(), stored(inst))
        self.metrics.observe(rules, before, inst, effects)
        self._count(ctx, inst, before)
        if before is not None and before.status != inst.status:  # not at start: on change
            ctx.emit(self.models[TRACE].from_avro(trace_record(inst)), key=inst.correlation_id)
            if self.spans is not None and inst.ended and before.status not in ENDED:
                self.spans.ended(inst)
        if self.spans is not None:
            was = before.steps if before is not None else {}
            for name, state in inst.steps.items():
                if was.get(name, "pending") in STEP_UNDER_WAY and state.status not in (
                    STEP_UNDER_WAY
                ):
                    self.spans.step_ended(inst, name)

    def _decided(
        self,
        ctx: Context,
        inst: Instance,
        before: Snapshot | None,
        kind: Kind,
        reason: str,
        *,
        actor: str | None = None,
        trigger: str | None = None,
    ) -> Envelope:
        """A decision record of the tracker's, in the transaction that carries its effect."""
        return record_decision(
            ctx,
            subject="process",
            name=inst.process,
            version=inst.version,
            kind=kind,
            from_state=before.status if before is not None else None,
            to_state=inst.status,
            trigger=trigger,
            instance=inst.correlation_id,
            actor=actor,
            actor_kind="operator" if actor else "service",
            reason=reason,
        )

    def _count(self, ctx: Context, inst: Instance, before: Snapshot | None) -> None:
        """Keep the partition's open-instance and value totals (the gauges) in step."""
        after = contribution(inst)
        was = before.open if before else (0, 0.0, 0.0, 0)
        if after == was:
            return
        stats = ctx.store(STATS)
        row = stats.get(inst.process) or {"open": 0, "in_flight": 0.0, "at_risk": 0.0}
        row["open"] += after[0] - was[0]
        row["in_flight"] += after[1] - was[1]
        row["at_risk"] += after[2] - was[2]
        row["paused"] = row.get("paused", 0) + after[3] - was[3]
        stats.put(inst.process, row)

    def _command(
        self,
        ctx: Context,
        rules: ProcessRules,
        inst: Instance,
        effect: SendCommand,
        decision: Envelope | None = None,
    ) -> None:
        step = rules.steps[effect.step]
        templates = {
            "compensation": step.compensation,
            "retry": step.retry,
            "settle": step.settle,
            "redrive": step.redrive,
        }
        template = templates[effect.purpose]
        assert template is not None
        values = {
            "business_key": inst.business_key,
            "reason": effect.reason,
            "correlation_id": inst.correlation_id,
            "process": inst.process,
            "step": step.name,
        }
        payload = {
            k: render_template(v, values, inst.attributes) for k, v in template.payload.items()
        }
        model = self.models[effect.command]
        empty = unfilled(model, payload)
        if empty or not effect.key:
            # A command about nothing (a refund for order '') would do harm or nothing: withhold
            # it and page, saying why; a person sends the right one.
            fields = ", ".join(empty) or "its key"
            name = f"{step.name}.{effect.purpose}"
            summary = (
                f"{effect.command} for step {step.name} not sent: {fields} would be empty "
                f"(business key {inst.business_key!r}); manual resolution needed"
            )
            log.warning("%s: %s", inst.correlation_id, summary)
            inst.open_incidents[name] = "critical"
            self.metrics.incidents.labels(inst.process, "critical").inc()
            self._incident(ctx, rules, inst, RaiseIncident(name, step.name, "critical", summary))
            return
        if self.outbox.send(ctx, model, payload, effect.key, decision):
            self.metrics.commands_queued.labels(model.__avro_topic__).inc()

    def _wake(self, ctx: Context, before: Snapshot | None, inst: Instance, key: str) -> None:
        """One timer per instance, at its earliest armed deadline (the rules keep them in
        `inst.timers`; a paused instance's wait): set when that moment changed, cancelled when
        nothing is armed any more."""
        wake = inst.next_wake()
        if before is not None and wake == before.wake:
            return
        timer = f"deadline:{inst.process}"
        if wake is not None:
            ctx.schedule(timer, wake, {"instance": key})
        elif before is not None and before.wake is not None:
            ctx.cancel(timer)

    def _retain(
        self,
        ctx: Context,
        rules: ProcessRules,
        before: Snapshot | None,
        inst: Instance,
        key: str,
    ) -> None:
        """An ended instance is deleted once its retention has passed, unless it is on hold: a
        timer set when it ends (or leaves a hold), cancelled when it comes back to life."""
        keep = rules.definition.retention or self.retention
        if keep is None:
            return
        ended_now = inst.ended and not inst.held
        ended_before = before is not None and before.status in ENDED and not before.held
        if ended_now == ended_before:
            return
        timer = f"retention:{inst.process}"
        if ended_now and inst.ended_at is not None:
            ctx.schedule(timer, max(inst.ended_at + keep, ctx.now), {"instance": key})
        else:
            ctx.cancel(timer)

    def on_retention(self, ctx: Context, payload: dict[str, Any]) -> None:
        """Delete an ended instance whose retention passed (a tombstone on its changelog, so
        the visibility store drops it too), and its services' decisions once no instance of
        its correlation id is left."""
        instances = ctx.store("instances")
        raw_inst = instances.get(payload["instance"])
        if raw_inst is None:
            return
        inst = decode(raw_inst)
        if not inst.ended or inst.held:
            return  # it came back to life, or was put on hold, after the timer was set
        instances.delete(payload["instance"])
        self.metrics.deleted.labels(inst.process).inc()
        if not self._instances(ctx):
            ctx.store(DECISIONS_STORE).delete(ctx.key)

    def _incident(
        self,
        ctx: Context,
        rules: ProcessRules,
        inst: Instance,
        effect: RaiseIncident | ResolveIncident,
    ) -> None:
        raised = isinstance(effect, RaiseIncident)
        incident = {
            "incident_id": f"{inst.correlation_id}/{inst.process}/{effect.name}",
            "status": "RAISED" if raised else "RESOLVED",
            "severity": effect.severity,
            "process": inst.process,
            "version": inst.version,
            "step": effect.step,
            "correlation_id": inst.correlation_id,
            "business_key": inst.business_key,
            "owner": rules.definition.owners.on_call,
            "summary": effect.summary
            if isinstance(effect, RaiseIncident)
            else f"{effect.name} recovered",
            "at": ctx.now,
        }
        event = self.models[INCIDENT].from_avro(incident)
        ctx.emit(event, key=inst.correlation_id, topic=self.alerts_topic)


def unfilled(model: type[Event], payload: dict[str, Any]) -> list[str]:
    """Required text fields of the command that the rendered payload leaves missing or blank."""
    empty = []
    for name, field in model.model_fields.items():
        wire = field.alias or name
        value = payload.get(wire, payload.get(name))
        if field.is_required() and (
            value is None or (isinstance(value, str) and not value.strip())
        ):
            empty.append(wire)
    return empty


def trace_record(inst: Instance) -> dict[str, Any]:
    """An instance as a `dev.choreograph.ProcessTrace` record."""
    latencies = step_latency_ms(inst)
    return {
        "correlation_id": inst.correlation_id,
        "process": inst.process,
        "version": inst.version,
        "business_key": inst.business_key,
        "status": inst.status,
        "started_at": inst.started_at,
        "ended_at": inst.ended_at,
        "failure_reason": inst.failure_reason,
        "value": inst.value,
        "open_incidents": sorted(inst.open_incidents),
        "steps": [
            {
                "step": name,
                "status": s.status,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "latency_ms": latencies.get(name),
            }
            for name, s in inst.steps.items()
        ],
        "timeline": [timeline_entry(e) for e in inst.timeline],
    }


def audit_entry(ctx: Context, models: dict[str, type[Event]], **fields: Any) -> None:
    """Record what became of an operator action on `choreograph.audit`."""
    entry = {"audit_id": str(uuid.uuid4()), "recorded_by": ctx.service, "at": ctx.now, **fields}
    ctx.emit(models[AUDIT].from_avro(entry), key=fields["target"])


def build_tracker(
    definitions: Definitions,
    models: dict[str, type[Event]],
    *,
    name: str = "saga-tracker",
    repartition: str = REPARTITION,
    metrics: TrackerMetrics | None = None,
    alerts_topic: str | None = None,
    spans: EndedInstances | None = None,
    batches: str | None = BATCHES,
    retention: timedelta | None = None,
) -> Service:
    """`batches`: the topic batch actions' outcomes go back to (None: no batches);
    `retention`: how long ended instances are kept where a definition does not say (None:
    for ever)."""
    commands = {
        models[c.command].__avro_topic__
        for rules in definitions.rules.values()
        for step in rules.definition.steps
        for c in (step.compensation, step.retry, step.settle, step.redrive)
        if c is not None
    }
    scheduled = [r.definition for r in definitions.latest.values() if r.definition.schedule]
    commands |= {models[d.start].__avro_topic__ for d in scheduled}  # their start events
    written = {models[m].__avro_topic__ for m in (TRACE, AUDIT, INCIDENT)} | commands
    written.add(DECISIONS_TOPIC)  # timeouts, compensations, escalations, operator actions
    if batches:
        written.add(batches)
    tracker = Service(
        name,
        [repartition],
        outputs=sorted(written | ({alerts_topic} if alerts_topic else set())),
        stores=["parked", DECISIONS_STORE],
        malformed="skip",
    )
    # Instances are filed under "<correlation id>/<process>" and stats per process: keys of this
    # partition's own making, not business keys.
    tracker.store("instances", keyed=False)
    tracker.store(APPROVALS_STORE, keyed=False)  # by approval id
    tracker.store(STATS, keyed=False)
    tracker.store(FLOW_STORE, keyed=False)  # flow control: slots and queue sizes per topic
    logic = Tracker(definitions, models, metrics, alerts_topic, spans, batches, retention)
    tracker.handle_envelopes()(logic.on_event)
    tracker.timer("deadline:*")(logic.on_deadline)
    tracker.timer("retention:*")(logic.on_retention)
    tracker.timer("parked:expire")(logic.on_parked_expired)
    tracker.timer(f"{OUTBOX_TIMERS}*")(logic.on_outbox)
    for definition in scheduled:
        when = definition.schedule
        assert when is not None
        tracker.schedule(f"process.{definition.name}", cron=when.cron, tz=when.tz,
                         missed=when.missed)(logic.starter(definition))  # fmt: skip
    return tracker


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values (times as RFC 3339 text) for the tracker's stores."""
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in record.items()}


def _framework_record(ctx: Context, raw: RawEvent) -> dict[str, Any] | None:
    """A decision or approval record's fields, by the framework's own model of its type; None
    (logged) when it came without a body or cannot be read."""
    if raw.value is None:
        return None
    try:
        fields: dict[str, Any] = ctx.decode(raw, model(raw.envelope.type)).to_avro()
    except (SerdeError, ContractViolation) as err:
        log.warning("unreadable %s skipped: %s", raw.envelope.type, err)
        return None
    return fields
