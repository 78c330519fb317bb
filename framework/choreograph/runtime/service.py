"""Service: what a team declares. Handlers per event type, state machines, stores, timers.

Declaration only; `run()` hands the service to the engine, and the TestKit drives the same
declaration in memory.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from choreograph.contracts.event import Event
from choreograph.governance.contracts_bound import APPROVALS_TOPIC, DECISIONS_TOPIC
from choreograph.governance.policies import BoundPolicy, PolicyBook, PolicyError
from choreograph.observability.logs import configure_logging
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine, end_if_abandoned
from choreograph.runtime.errors import ConfigurationError, TopologyError
from choreograph.runtime.partners import Partner, checked_partner
from choreograph.runtime.schedules import Schedule, ScheduleHandler
from choreograph.runtime.settlement import Settlement
from choreograph.runtime.timers import TIMER_INDEX_STORE, TIMERS_STORE

if TYPE_CHECKING:
    from choreograph.machines.machine import StateMachine
    from choreograph.runtime.context import Context, RawEvent

E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=Event)
Handler = Callable[["Context", Any], None]
TimerHandler = Callable[["Context", dict[str, Any]], None]
EnvelopeHandler = Callable[["Context", "RawEvent"], None]


class Rekeyed(Generic[E]):
    """Handlers of an event type re-keyed by `Service.group_by`."""

    def __init__(self, event_type: type[E], key: Callable[[E], str], topic: str) -> None:
        self.event_type = event_type
        self.key = key
        self.topic = topic
        self.handlers: list[Callable[[Context, E], None]] = []

    def new_key(self, event: E) -> str:
        found = self.key(event)
        if not isinstance(found, str) or not found:
            raise TopologyError(
                f"group_by({self.event_type.__name__}) key function returned {found!r}; it must "
                "return the new business key as non-empty text"
            )
        return found

    def handle(self, fn: Callable[[Context, E], None]) -> Callable[[Context, E], None]:
        self.handlers.append(fn)
        return fn


class Service:
    def __init__(
        self,
        name: str,
        inputs: Sequence[str],
        *,
        outputs: Sequence[str] = (),
        stores: Sequence[str] = (),
        malformed: Literal["dlq", "skip"] = "dlq",
        policies: PolicyBook | str | Path | None = None,
    ) -> None:
        """`inputs`: the topics it consumes; `outputs`: the topics it writes (emits and forwards
        anywhere else fail at once, in tests as in production). `malformed="skip"` counts and
        skips records without a valid envelope or body instead of dead-lettering them: for
        observers of other teams' topics, such as the saga tracker. `policies`: the folder of
        policy files (or a PolicyBook) its machine guards and handlers may name.

        A service with state machines or policies also writes `choreograph.decisions`: the
        decision records of its transitions and policy evaluations."""
        if not inputs:
            raise TopologyError("a service needs at least one input topic")
        if isinstance(inputs, str) or isinstance(outputs, str):
            raise TopologyError("inputs and outputs are lists of topics, e.g. ['orders.events']")
        self.name = name
        self.malformed = malformed
        self.envelope_handlers: list[EnvelopeHandler] = []
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.unkeyed: set[str] = set()
        self.rekeyed: dict[str, Rekeyed[Any]] = {}
        # Where outputs are published when not under their own names (a shadow run's
        # `<topic>.shadow`, see choreograph.shadow); handlers always name the declared topic.
        self.published_as: dict[str, str] = {}
        self.models: dict[str, type[Event]] = {}
        self.handlers: dict[str, list[Handler]] = {}
        self.timer_handlers: dict[str, TimerHandler] = {}
        self.schedules: dict[str, Schedule] = {}
        self.partners: dict[str, Partner] = {}
        self._timer_served: dict[str, TimerHandler | None] = {}  # name -> handler, as found
        self.machines: list[StateMachine] = []
        self._machines_by_type: dict[str, list[StateMachine]] = {}
        self._stores: list[str] = []
        for store in stores:
            self.store(store)
        self.policies: PolicyBook | None = None
        if policies is not None:
            self.policies = policies if isinstance(policies, PolicyBook) else _load(policies)
            self._writes_decisions()

    def _writes_decisions(self) -> None:
        if DECISIONS_TOPIC not in self.outputs:
            self.outputs.append(DECISIONS_TOPIC)

    def policy(self, policy_id: str, model: type[Event], where: str) -> BoundPolicy:
        """Policy `policy_id` checked against `model`'s contract; TopologyError (a mistake in the
        service, loud in its tests and at start-up) when it is missing or does not fit."""
        if self.policies is None:
            raise TopologyError(
                f"{where} names policy {policy_id!r}, but service {self.name} has no policies; "
                f"pass Service({self.name!r}, ..., policies='policies/')"
            )
        try:
            return self.policies.bind(policy_id, model, where)
        except PolicyError as err:
            raise TopologyError(str(err)) from None

    def store(self, name: str, *, keyed: bool = True) -> str:
        """Declare a key-value store; its changelog topic is `<service>.<store>.changelog`.

        A keyed store (the default) holds state per business key, so a handler may only touch
        keys its partition owns: the record's key, or any key the production partitioner puts
        in the same partition. Touching another raises ForeignKey (re-key first, with
        `group_by`). `keyed=False` declares a per-partition store (counters, indexes) whose
        keys are not business keys."""
        if name.startswith("__"):
            raise ValueError(f"store names starting with __ are reserved: {name}")
        if name not in self._stores:
            self._stores.append(name)
        if not keyed:
            self.unkeyed.add(name)
        return name

    def group_by(
        self,
        event_type: type[E],
        key: Callable[[E], str],
        *,
        name: str | None = None,
        topic: str | None = None,
    ) -> Rekeyed[E]:
        """Handle `event_type` under another key than the one it was published with (orders by
        customer, say). Each event is forwarded, unchanged with its envelope (correlation,
        causation, trace), to an internal topic `<service>.<name>.repartition` keyed by
        `key(event)`, in the transaction that consumed it; the service reads that topic too, so
        the re-keyed handlers run in the partition that owns the new key:

            by_customer = service.group_by(OrderPlaced, key=lambda e: e.customer_id)

            @by_customer.handle
            def add_points(ctx: Context, event: OrderPlaced) -> None:
                ...  # ctx.key is the customer id

        The internal topic is created with the service's other topics, with as many partitions
        as its inputs. `topic`: the input `event_type` arrives on, as for `handle`."""
        self._check_received(event_type, f"group_by({event_type.__name__})", topic)
        label = name or f"{event_type.__name__.lower()}-by-key"
        internal = f"{self.name}.{label}.repartition"
        if internal in self.rekeyed:
            raise TopologyError(
                f"{self.name}: group_by named {label!r} twice; give each its own name="
            )
        rekeyed: Rekeyed[E] = Rekeyed(event_type, key, internal)
        self.rekeyed[internal] = rekeyed
        self.inputs.append(internal)
        self.outputs.append(internal)
        self.models[event_type.__avro_name__] = event_type
        return rekeyed

    def rekeyings(self, event_type: str) -> list[Rekeyed[Any]]:
        if not self.rekeyed:  # the common case, on the hot path
            return []
        return [r for r in self.rekeyed.values() if r.event_type.__avro_name__ == event_type]

    @property
    def external_inputs(self) -> list[str]:
        """Inputs written by others (not the service's own repartition topics)."""
        return [t for t in self.inputs if t not in self.rekeyed]

    def settles(
        self,
        step: str,
        command: type[C],
        *,
        voided: Callable[[Context, C], Event],
        refused: Callable[[Context, C, dict[str, Any]], Event],
        topic: str | None = None,
    ) -> Settlement[C]:
        """Answer the saga tracker's settle command for `step`, a step of this service that may
        time out before it reports (see `choreograph.runtime.settlement`): `voided` builds the
        answer when it was not done (it is then never done), `refused` when it was, from what
        `done(ctx, **details)` recorded. Declares the store `settle.<step>`."""
        return Settlement(self, step, command, voided, refused, topic)

    def handle(
        self, event_type: type[E], *, topic: str | None = None, policies: Sequence[str] = ()
    ) -> Callable[[Callable[[Context, E], None]], Callable[[Context, E], None]]:
        """Register a handler for `event_type`, keyed by the record key (business key).
        `topic`: the input it arrives on, when that is not the contract's own topic (a
        renamed or prefixed copy). `policies`: those it evaluates with `ctx.policy`, checked
        against the event's contract here, at start-up, rather than on the first record."""

        self._check_received(event_type, "a handler", topic)
        for policy_id in policies:
            self.policy(policy_id, event_type, f"{self.name}'s handler of {event_type.__name__}")

        def register(fn: Callable[[Context, E], None]) -> Callable[[Context, E], None]:
            refuse_async(fn, f"the handler of {event_type.__name__}")
            self.models[event_type.__avro_name__] = event_type
            self.handlers.setdefault(event_type.__avro_name__, []).append(fn)
            return fn

        return register

    def handle_envelopes(self) -> Callable[[EnvelopeHandler], EnvelopeHandler]:
        """Register a handler for every record, from its envelope alone: the body is not
        decoded (`RawEvent` carries the bytes), so any event type on the inputs is seen."""

        def register(fn: EnvelopeHandler) -> EnvelopeHandler:
            refuse_async(fn, "an envelope handler")
            self.envelope_handlers.append(fn)
            return fn

        return register

    def timer(self, name: str) -> Callable[[TimerHandler], TimerHandler]:
        """Register what runs when timer `name` (set with ctx.schedule) fires for a key.
        A name ending in `*` serves every timer starting with what precedes it."""

        def register(fn: TimerHandler) -> TimerHandler:
            refuse_async(fn, f"the handler of timer {name!r}")
            self.timer_handlers[name] = fn
            self._timer_served.clear()
            return fn

        return register

    def partner(self, name: str, *, per_second: float) -> Partner:
        """Declare a partner the handlers call (an external API) and the rate the whole service
        may call it at: a handler paces each call with `ctx.pace(name)` (see
        `choreograph.runtime.partners`)."""
        self.partners[name] = checked_partner(self.name, name, per_second)
        return self.partners[name]

    def schedule(
        self,
        name: str,
        *,
        cron: str,
        tz: str = "UTC",
        missed: str = "latest",
        grace: timedelta = timedelta(minutes=1),
    ) -> Callable[[ScheduleHandler], ScheduleHandler]:
        """Register what runs at each occurrence of `cron` (five fields, in zone `tz`), once per
        occurrence across every instance of the service: `fn(ctx, occurrence)`, with `ctx.key`
        the schedule's name. `missed`: what happens to occurrences that passed while nothing
        could fire them ("latest", "all" or "skip"; see `choreograph.runtime.schedules`)."""

        def register(fn: ScheduleHandler) -> ScheduleHandler:
            refuse_async(fn, f"the handler of schedule {name!r}")
            if name in self.schedules:
                raise TopologyError(f"{self.name}: schedule {name!r} is registered twice")
            schedule = Schedule.checked(self.name, name, cron, tz, missed, grace, fn)
            self.schedules[name] = schedule
            self.timer(schedule.timer_name)(schedule.fire)
            return fn

        return register

    def timer_handler(self, name: str) -> TimerHandler | None:
        """What serves timer `name`: its handler, else one whose name ends in `*` and starts
        what `name` starts with. Looked up once per name (timer names carry keys of their
        own, such as a tracker's deadlines, so the patterns are not walked per timer)."""
        served = self._timer_served
        if name in served:
            return served[name]
        found = self.timer_handlers.get(name)
        if found is None:
            found = next(
                (
                    h
                    for pattern, h in self.timer_handlers.items()
                    if pattern.endswith("*") and name.startswith(pattern[:-1])
                ),
                None,
            )
        if len(served) > 10_000:
            served.clear()
        served[name] = found
        return found

    def check_timer(self, name: str) -> None:
        """Timer `name` has something to run when it fires: a `@service.timer` handler or a
        machine's deadline. Else it would fire into nothing, so scheduling it is refused."""
        if self.timer_handler(name) is not None:
            return
        if any(m.timer_name == name for m in self.machines):
            return
        known = sorted([*self.timer_handlers, *(m.timer_name for m in self.machines)])
        raise TopologyError(
            f"{self.name}: timer {name!r} is scheduled but no handler serves it: register "
            f"@service.timer({name!r}) or schedule one of the names served "
            f"({', '.join(known) or 'none yet'})"
        )

    def _check_received(self, event_type: Any, what: str, topic: str | None = None) -> None:
        """`event_type` is a contract this service can receive: on one of its inputs."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TopologyError(
                f"{self.name}: {what} is registered for {event_type!r}, which is not a contract "
                "event; pass a generated model class, e.g. service.handle(OrderPlaced)"
            )
        topic = topic or event_type.__avro_topic__
        if topic and topic not in self.inputs:
            raise TopologyError(
                f"{self.name}: {what} for {event_type.__avro_name__} would never run: it is "
                f"published on {topic}, which is not an input; add {topic!r} to "
                f"Service({self.name!r}, inputs=[...])"
            )

    def check_output(self, topic: str, what: str) -> None:
        if topic not in self.outputs:
            raise TopologyError(
                f"{self.name} writes {what} to {topic}, which is not among its outputs; "
                f"declare it: Service({self.name!r}, ..., outputs=[..., {topic!r}])"
            )

    def add_machine(
        self, machine: StateMachine, *, topics: dict[str, str] | None = None
    ) -> StateMachine:
        """Run `machine`. Another version of a machine already added (same name, another
        `version`) is kept beside it: stored instances run under the version they started on
        until they end, new ones start under the newest. `topics`: where this service reads
        the machine's events when not on their contracts' topics (contract topic -> input)."""
        same = next((m for m in self.machines if m.name == machine.name), None)
        if same is not None and (same.version == machine.version or machine.version in same.older):
            raise TopologyError(
                f"{self.name}: two state machines are named {machine.name!r} with version "
                f"{machine.version}; they would share one store. Give each its own name, or "
                "raise the new one's version"
            )
        machine.validate()
        if same is not None:
            self.machines.remove(same)
            self._stores.remove(same.store_name)
            newest, older = (machine, same) if machine.version > same.version else (same, machine)
            newest.keep(older)
            machine = newest
        if machine.approvals:  # asks on choreograph.approvals, and hears the answers there
            for declared in (self.inputs, self.outputs):
                if APPROVALS_TOPIC not in declared:
                    declared.append(APPROVALS_TOPIC)
        for model in machine.event_types():
            topic = (topics or {}).get(model.__avro_topic__)
            try:
                self._check_received(model, f"state machine {machine.name}", topic)
            except TopologyError as err:
                if topic is not None or not model.__avro_topic__:
                    raise
                raise TopologyError(
                    f"{err}, or say which input carries it: service.add_machine({machine.name}, "
                    f"topics={{{model.__avro_topic__!r}: '<input topic>'}})"
                ) from None
        machine.bind_policies(self.policy)
        self._writes_decisions()
        self.machines.append(machine)
        self._machines_by_type.clear()
        for model in machine.event_types():
            self.models[model.__avro_name__] = model
        self._stores.append(machine.store_name)
        return machine

    def interested(self, event_type: str) -> bool:
        return bool(self.envelope_handlers) or event_type in self.models

    def decodes(self, event_type: str) -> bool:
        """Whether records of this type are decoded (typed handlers or machines want them)."""
        return event_type in self.models

    def machines_for(self, event_type: str) -> list[StateMachine]:
        found = self._machines_by_type.get(event_type)
        if found is None:
            model = self.models.get(event_type)
            found = self._machines_by_type[event_type] = [
                m for m in self.machines if model in m.event_types()
            ]
        return found

    def store_names(self) -> list[str]:
        """Every store of a partition task, including the runtime's own timer stores."""
        return [*self._stores, TIMERS_STORE, TIMER_INDEX_STORE]

    def changelog_topic(self, store: str) -> str:
        return f"{self.name}.{store}.changelog"

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    def run(self, config: ServiceConfig | None = None) -> None:
        """Run until SIGTERM/SIGINT: consume, process, produce, commit. Logging is set up from
        the config (`log_level`, `log_format`) unless the application set it up itself."""
        try:
            config = config or ServiceConfig.from_env()
        except ConfigurationError as err:
            logging.basicConfig()
            logging.getLogger("choreograph").error(str(err), extra={"service": self.name})
            raise SystemExit(2) from None
        if not logging.getLogger().handlers:
            configure_logging(config.log_level, config.log_format)
        engine = Engine(self, config)
        try:
            engine.run()
        except ConfigurationError as err:
            # A mistake in how the service is set up: one line that says what to change.
            logging.getLogger("choreograph").error(str(err), extra={"service": self.name})
            raise SystemExit(2) from None
        end_if_abandoned(engine.abandoned, 0)


def refuse_async(fn: Callable[..., Any], what: str) -> None:
    """Handlers run inside the record's transaction and are called, not awaited: an `async def`
    one would never run, in a test or in production."""
    if inspect.iscoroutinefunction(fn):
        raise TopologyError(
            f"{what}, {fn.__qualname__}, is `async def`: handlers are called inside the "
            "record's transaction, not awaited; make it a plain `def` (for slow I/O, emit a "
            "command another service carries out)"
        )


def _load(root: str | Path) -> PolicyBook:
    try:
        return PolicyBook.load(root)
    except PolicyError as err:
        raise TopologyError(str(err)) from None
