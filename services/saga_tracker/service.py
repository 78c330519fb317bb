"""The saga tracker as two choreograph services.

- The router reads the domain topics and repartitions every event a process definition mentions
  by its correlation id (`saga-tracker.repartition`), from the envelope alone.
- The tracker reads the repartition topic, so all events of one process instance meet in one
  partition task; events that overtake their process's start event are parked until it comes.
  It advances instances (store `instances`, key `<correlation id>/<process>`),
  turns deadlines into durable timers, sends compensation commands and publishes incidents to
  `choreograph.alerts`. Malformed or unrelated records are counted and skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import Event
from choreograph.runtime.context import Context, RawEvent
from choreograph.runtime.service import Service
from saga_tracker.codec import decode, encode
from saga_tracker.definitions import Definitions
from saga_tracker.instance import (
    CancelDeadline,
    Effect,
    Instance,
    ProcessRules,
    RaiseIncident,
    ResolveIncident,
    SendCompensation,
    SetDeadline,
)

REPARTITION = "saga-tracker.repartition"
INCIDENT = "dev.choreograph.Incident"
PARKING_TIME = timedelta(hours=1)


def envelope_to_json(envelope: Envelope) -> dict[str, Any]:
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in envelope.to_headers()}


def envelope_from_json(raw: dict[str, Any]) -> Envelope:
    return Envelope.from_headers(list(raw.items()))


def build_router(
    definitions: Definitions,
    inputs: list[str],
    *,
    name: str = "saga-tracker-router",
    repartition: str = REPARTITION,
) -> Service:
    router = Service(name, inputs, malformed="skip")
    followed = definitions.event_types()

    @router.handle_envelopes()
    def route(ctx: Context, raw: RawEvent) -> None:
        if raw.envelope.type in followed:
            ctx.forward(raw, repartition, key=raw.envelope.correlation_id)

    return router


class Tracker:
    """The tracker's handlers, over the definitions and the command and incident models."""

    def __init__(self, definitions: Definitions, models: dict[str, type[Event]]) -> None:
        self.definitions = definitions
        self.models = models

    def on_event(self, ctx: Context, raw: RawEvent) -> None:
        envelope = raw.envelope
        if any(True for _ in ctx.store("instances").items(prefix=f"{ctx.key}/")):
            self._advance(ctx, envelope)
            return
        starting = self.definitions.starting(envelope.type)
        if not starting:
            self._park(ctx, envelope)  # came before the event that starts its process
            return
        for rules in starting:
            inst, effects = rules.start(envelope, ctx.now)
            self._settle(ctx, rules, inst, effects)
        self._replay_parked(ctx)

    def _advance(self, ctx: Context, envelope: Envelope) -> None:
        """Apply an event to every instance of this correlation id, each on its own version."""
        for _, raw_inst in list(ctx.store("instances").items(prefix=f"{ctx.key}/")):
            inst = decode(raw_inst)
            pinned = self.definitions.pinned(inst.process, inst.version)
            if pinned is not None and not inst.ended:
                self._settle(ctx, pinned, inst, pinned.apply(inst, envelope, ctx.now))

    def _park(self, ctx: Context, envelope: Envelope) -> None:
        """Events of one process come from several topics and can overtake its start event:
        keep them, in event time order, until the start arrives or the parking time is up."""
        key = f"{ctx.key}/{envelope.time.isoformat()}/{envelope.id}"
        ctx.store("parked").put(key, envelope_to_json(envelope))
        ctx.schedule("parked:expire", ctx.now + PARKING_TIME)

    def _replay_parked(self, ctx: Context) -> None:
        parked = ctx.store("parked")
        waiting = list(parked.items(prefix=f"{ctx.key}/"))  # keys sort by event time
        for key, raw in waiting:
            parked.delete(key)
            self._advance(ctx, envelope_from_json(raw))
        if waiting:
            ctx.cancel("parked:expire")

    def on_parked_expired(self, ctx: Context, payload: dict[str, Any]) -> None:
        parked = ctx.store("parked")
        for key, _ in list(parked.items(prefix=f"{ctx.key}/")):
            parked.delete(key)

    def on_deadline(self, ctx: Context, payload: dict[str, Any]) -> None:
        raw_inst = ctx.store("instances").get(payload["instance"])
        if raw_inst is None:
            return
        inst = decode(raw_inst)
        rules = self.definitions.pinned(inst.process, inst.version)
        if rules is not None:
            self._settle(ctx, rules, inst, rules.deadline_passed(inst, payload["name"], ctx.now))

    def _settle(
        self, ctx: Context, rules: ProcessRules, inst: Instance, effects: list[Effect]
    ) -> None:
        key = f"{inst.correlation_id}/{inst.process}"
        for effect in effects:
            timer = f"deadline:{inst.process}:{getattr(effect, 'name', '')}"
            if isinstance(effect, SetDeadline):
                ctx.schedule(timer, effect.at, {"instance": key, "name": effect.name})
            elif isinstance(effect, CancelDeadline):
                ctx.cancel(timer)
            elif isinstance(effect, SendCompensation):
                self._compensate(ctx, rules, inst, effect)
            elif isinstance(effect, (RaiseIncident, ResolveIncident)):
                self._incident(ctx, rules, inst, effect)
        ctx.store("instances").put(key, encode(inst))

    def _compensate(
        self, ctx: Context, rules: ProcessRules, inst: Instance, effect: SendCompensation
    ) -> None:
        step = rules.steps[effect.step]
        assert step.compensation is not None
        values = {
            "business_key": inst.business_key,
            "reason": effect.reason,
            "correlation_id": inst.correlation_id,
            "process": inst.process,
            "step": step.name,
        }
        payload = {k: v.format(**values) for k, v in step.compensation.payload.items()}
        ctx.emit(self.models[effect.command].from_avro(payload), key=effect.key)

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
        ctx.emit(self.models[INCIDENT].from_avro(incident), key=inst.correlation_id)


def build_tracker(
    definitions: Definitions,
    models: dict[str, type[Event]],
    *,
    name: str = "saga-tracker",
    repartition: str = REPARTITION,
) -> Service:
    tracker = Service(name, [repartition], stores=["instances", "parked"], malformed="skip")
    logic = Tracker(definitions, models)
    tracker.handle_envelopes()(logic.on_event)
    tracker.timer("deadline:*")(logic.on_deadline)
    tracker.timer("parked:expire")(logic.on_parked_expired)
    return tracker
