"""PartitionTask: processing of one input partition, independent of Kafka I/O.

Owns the partition's stores and timers; turns a record (or a due timer) into outputs and store
writes by running the service's handlers and state machines. The engine feeds it from Kafka and
commits; the TestKit feeds it from memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from choreograph.contracts.envelope import (
    AVRO_CONTENT_TYPE,
    Envelope,
    EnvelopeError,
    Headers,
    _handling,
    read_headers,
    record_key,
)
from choreograph.contracts.event import ContractViolation
from choreograph.contracts.header_shapes import known_shape
from choreograph.contracts.serde import AvroSerde, SerdeError
from choreograph.contracts.structured import is_structured_type, others, read_structured
from choreograph.runtime.context import Context, Origin, Output, RawEvent
from choreograph.runtime.errors import ForeignKey, InvalidEventBuilt, UndeclaredStore
from choreograph.runtime.partitioning import partition_for
from choreograph.runtime.partners import Pacer, undeclared
from choreograph.runtime.records import header
from choreograph.runtime.schedules import first_timer
from choreograph.runtime.timers import TIMER_INDEX_STORE, TIMERS_STORE, Timer, Timers
from choreograph.state.backends import Backend
from choreograph.state.partition_state import PartitionState
from choreograph.state.store import CommittedView, Store, decode_value, encode_value

if TYPE_CHECKING:
    from choreograph.machines.machine import StateMachine
    from choreograph.runtime.service import Service

BackendFactory = Callable[[str, int], Backend]


class PartitionTask:
    def __init__(
        self,
        service: Service,
        partition: int,
        open_backend: BackendFactory,
        serde: AvroSerde,
        partitions: int | None = None,
        instance_id: str = "testkit",
        pacing: tuple[Callable[[], float], Callable[[float], None]] | None = None,
    ) -> None:
        """`partitions`: how many the inputs have; keyed stores then check key ownership.
        `instance_id`: which running copy of the service this is, named in decision records."""
        self.service = service
        self.instance_id = instance_id
        self.partition = partition
        self.partitions = partitions
        self.serde = serde
        self.state = PartitionState(
            partition,
            {name: service.changelog_topic(name) for name in service.store_names()},
            lambda name: open_backend(name, partition),
        )
        self.stores = self.state.stores
        self.timers = Timers(self.stores[TIMERS_STORE], self.stores[TIMER_INDEX_STORE])
        self._owned: dict[str, OwnedStore] = {}
        self._pacing = pacing  # clock and sleep of partner pacing (the TestKit's are virtual)
        self._pacers: dict[str, Pacer] = {}

    def pace(self, partner: str) -> float:
        """Wait for this task's next turn to call `partner`; the seconds waited."""
        pacer = self._pacers.get(partner)
        if pacer is None:
            declared = self.service.partners.get(partner)
            if declared is None:
                raise undeclared(self.service.name, partner, sorted(self.service.partners))
            clock, sleep = self._pacing or (time.monotonic, time.sleep)
            pacer = self._pacers[partner] = Pacer(declared, self.partitions or 1, clock, sleep)
        return pacer.turn()

    def seed_schedules(self, now: datetime) -> int:
        """Set the first timer of each schedule this partition owns that has none pending (or one
        set by an expression since changed), as one unit of work that commits with the next
        commit. Returns how many were set."""
        owned = [
            s for s in self.service.schedules.values()
            if s.owner(self.partitions or 1) == self.partition
        ]  # fmt: skip
        seeded = 0
        for schedule in owned:
            pending = self.timers.pending(schedule.name, schedule.timer_name)
            if pending is not None and schedule.armed_for(pending.payload):
                continue
            self.timers.schedule(*first_timer(schedule, now))
            seeded += 1
        if seeded:
            self.end_message(ok=True)
        return seeded

    def user_store(self, name: str) -> Store:
        try:
            return self.stores[name]
        except KeyError:
            if name.startswith("machine."):
                machine = name.removeprefix("machine.")
                raise UndeclaredStore(
                    f"state machine {machine!r} is not part of {self.service.name}; add it "
                    f"with service.add_machine(...) rather than calling it from a handler"
                ) from None
            raise UndeclaredStore(
                f"store {name!r} is not declared; add it with Service(..., stores=[{name!r}])"
            ) from None

    def committed_view(self, name: str) -> CommittedView | None:
        """Read-only view of store `name` as last committed (None if the service has none),
        for readers in other threads."""
        store = self.stores.get(name)
        return store.committed_view() if store is not None else None

    def keyed_store(self, name: str, record_key: str) -> Store:
        """What a handler gets from `ctx.store(name)`: keyed stores refuse keys that belong to
        another partition (their state would be split across partitions in production)."""
        owned = self._owned.get(name)
        if owned is None:
            store = self.user_store(name)
            if name in self.service.unkeyed or not self.partitions or self.partitions == 1:
                return store
            owned = self._owned[name] = OwnedStore(store, self.partitions, self.service.name)
        owned._record_key = record_key
        return owned

    # -- processing ----------------------------------------------------------------------------

    def process(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        now: datetime,
        topic: str | None = None,
        offset: int | None = None,
    ) -> tuple[str, str, list[Output]]:
        """Run handlers for one record; return (event type, outcome, outputs).

        Outcome is "ok", "ignored" (nothing handles the type) or, for services that skip
        malformed records, "malformed". Otherwise contract and decode errors raise: a record
        whose body is not the type its envelope claims, or whose key is not text, is never
        handed to a handler.
        """
        service = self.service
        structured = None
        values: dict[str, str] | None = None
        envelope = known_shape(headers)  # headers shaped as before: only what varies is read
        if envelope is not None:
            event_type: str | None = envelope.type
        else:
            try:
                values = read_headers(headers)
            except EnvelopeError:
                values = None  # a CloudEvents header is not text: refused below, if it is for us
            event_type = values.get("ce_type") if values is not None else header(headers, "ce_type")
        if event_type is not None and not service.interested(event_type):
            return event_type, "ignored", []
        try:
            text_key = record_key(key)
            content_type = values.get("content-type") if values is not None else None
            if (
                content_type is not None
                and content_type != AVRO_CONTENT_TYPE
                and (is_structured_type(content_type))
            ):
                # Read as if it came in binary mode: body, CloudEvents headers, others as sent.
                structured = read_structured(value, text_key)
                envelope, value = structured.envelope, structured.body
                headers = [*others(headers), *envelope.to_headers()]
            elif envelope is not None:
                pass  # read above, from a known shape
            elif values is None:
                envelope = Envelope.from_headers(headers, text_key)  # raises what is wrong
            else:
                envelope = Envelope.from_attributes(values, text_key)
            event_type = envelope.type
            event: Any = None
            if service.decodes(event_type):
                if structured is not None and structured.body is None:
                    event = service.models[event_type].from_avro(structured.data)
                else:
                    event = self.serde.event_of(value, event_type)
            elif not service.envelope_handlers:
                return event_type, "ignored", []
        except (EnvelopeError, SerdeError, ContractViolation):
            if service.malformed == "skip":
                return event_type or "unknown", "malformed", []
            raise
        ctx = Context(self, text_key, envelope, now)
        with building(envelope, "{}, handling {},", service.name, event_type):
            if self.service.envelope_handlers:
                data = structured.data if structured is not None and value is None else None
                at = (
                    None
                    if topic is None or offset is None
                    else Origin(topic, self.partition, offset)
                )
                raw = RawEvent(key, value, list(headers or ()), envelope, data, at)
                for envelope_handler in self.service.envelope_handlers:
                    envelope_handler(ctx, raw)
            acted = bool(self.service.envelope_handlers)
            rekeyed = self.service.rekeyed.get(topic) if topic else None
            if rekeyed is not None and event is not None:  # back from a group_by, re-keyed
                for rekeyed_handler in rekeyed.handlers:
                    rekeyed_handler(ctx, event)
                return event_type, "ok", ctx.outputs
            if event is not None:
                for handler in self.service.handlers.get(event_type, ()):
                    returned = handler(ctx, event)
                    if returned is not None:
                        returned_nothing(handler, returned)
                    acted = True
                for machine in self.service.machines_for(event_type):
                    acted = machine.handle(ctx, event) is not None or acted
                for rekeying in self.service.rekeyings(event_type):
                    raw_record = RawEvent(key, value, list(headers or ()), envelope)
                    ctx.forward(raw_record, rekeying.topic, key=rekeying.new_key(event))
                    acted = True
        # A type only machines follow, that moved none of them, was not acted on.
        return event_type, "ok" if acted else "ignored", ctx.outputs

    def fire(self, timer: Timer, now: datetime) -> list[Output]:
        """Run what a due timer triggers; its emits follow the event that scheduled it."""
        payload = dict(timer.payload)
        parent = None
        if payload.get("_causation_id"):
            parent = Envelope(
                id=payload.pop("_causation_id"),
                source=self.service.name,
                type="choreograph.timer",
                subject=timer.key,
                correlation_id=payload.pop("_correlation_id", "") or timer.key,
                traceparent=payload.pop("_traceparent", None),
            )
        ctx = Context(self, timer.key, parent, now)
        self.timers.fired(timer)
        machine = next((m for m in self.service.machines if m.timer_name == timer.name), None)
        handler = self.service.timer_handler(timer.name)
        with building(parent, "{}, firing timer {!r},", self.service.name, timer.name):
            if machine is not None:
                machine.timer_fired(ctx, payload)
            elif handler is not None:
                returned_nothing(handler, handler(ctx, payload))
        return ctx.outputs

    def stored_machines(self) -> Iterator[tuple[StateMachine, Iterator[dict[str, Any]]]]:
        """Each machine of the service, with the instances this partition stores for it."""
        for machine in self.service.machines:
            yield machine, (value for _, value in self.stores[machine.store_name].items())

    def due_timers(self, now: datetime, limit: int = 1000) -> list[Timer]:
        return list(self.timers.due(int(now.timestamp() * 1000), limit))

    # -- transaction boundaries (the partition's state owns them) -------------------------------

    def end_message(self, ok: bool) -> None:
        self.state.end_message(ok)
        if not ok:
            self.timers.reset_floor()

    def changelog_writes(self) -> list[tuple[Store, dict[bytes, bytes | None]]]:
        return self.state.changelog_writes()

    def committed(self) -> None:
        self.state.committed()

    def aborted(self) -> None:
        self.state.aborted()
        self.timers.reset_floor()

    def close(self, clean: bool = True) -> None:
        self.state.close(clean)


class OwnedStore(Store):
    """A keyed store as a handler sees it: keys must belong to this partition. One per store
    and task, pointed at the record in hand before each handling; it reads and writes the
    store's own layers."""

    def __init__(self, store: Store, partitions: int, service: str) -> None:
        # Not Store.__init__: no layers of its own. Every read and write goes to `store`.
        self.name, self.partition, self.backend = store.name, store.partition, store.backend
        self.changelog = store.changelog
        self._store = store
        self._record_key = ""
        self._partitions = partitions
        self._service = service

    def _check(self, key: str) -> None:
        if key == self._record_key:
            return
        owner = partition_for(key, self._partitions)
        if owner != self.partition:
            raise ForeignKey(
                f"{self._service}: store {self.name!r} touched key {key!r} while handling "
                f"{self._record_key!r}; {key!r} belongs to partition {owner}, this is partition "
                f"{self.partition}, so its state would be split across partitions. Re-key "
                f"first: service.group_by(EventType, key=lambda e: ...) and keep this state in "
                "its handlers, where ctx.key is the new key (or declare the store keyed=False "
                "if its keys are not business keys)"
            )

    def get_raw(self, key: bytes) -> bytes | None:
        return self._store.get_raw(key)

    def put_raw(self, key: bytes, value: bytes | None) -> None:
        self._store.put_raw(key, value)

    def scan_raw(
        self, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._store.scan_raw(start, stop)

    def get(self, key: str, default: Any = None) -> Any:
        if key != self._record_key:
            self._check(key)
        raw = self._store.get_raw(key.encode())
        return default if raw is None else decode_value(raw)

    def put(self, key: str, value: Any) -> None:
        if key != self._record_key:
            self._check(key)
        self._store.put_raw(key.encode(), encode_value(value))

    def delete(self, key: str) -> None:
        self._check(key)
        super().delete(key)


class building:
    """The handling of one record or timer: marks `envelope` as the event in hand (events
    emitted inside follow it, see `handling`), and turns a contract violation past decoding,
    which is in what the service's code built and not in the record, into that programming
    error (see `InvalidEventBuilt`), saying which handling (formatted only then). One object per
    record: it wraps every one."""

    __slots__ = ("args", "envelope", "template", "token")

    def __init__(self, envelope: Envelope | None, template: str, *args: object) -> None:
        self.envelope = envelope
        self.template = template
        self.args = args
        self.token: Any = None

    def __enter__(self) -> None:
        if self.envelope is not None:
            self.token = _handling.set(self.envelope)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: object) -> None:  # fmt: skip
        if self.token is not None:
            _handling.reset(self.token)
        if isinstance(error, ContractViolation) and not error.read:
            raise InvalidEventBuilt(error, self.template.format(*self.args)) from None


def returned_nothing(handler: Any, returned: object) -> None:
    """A handler's value is dropped: one that returns the event it meant to emit would lose it
    in production as silently as in a test, so it fails here, naming the call to make."""
    if returned is None:
        return
    what = type(returned).__name__
    hint = "emit it with ctx.emit(event)" if hasattr(returned, "__avro_name__") else "return None"
    raise TypeError(
        f"handler {getattr(handler, '__qualname__', handler)} returned a {what}; what a handler "
        f"returns is not sent: {hint}"
    )


def refuse_stranded(tasks: Iterable[PartitionTask]) -> None:
    """At start-up (after a restore, or a TestKit's deploy): stored machine instances that no
    registered version can run stop the service, counted over `tasks`, naming the states and
    what to change (StrandedInstances)."""
    from choreograph.machines.machine import StrandedInstances  # machines build on the runtime

    found: dict[str, tuple[StateMachine, dict[tuple[int, str], int]]] = {}
    for task in tasks:
        for machine, instances in task.stored_machines():
            counts = found.setdefault(machine.name, (machine, {}))[1]
            for where, n in machine.stranded(instances).items():
                counts[where] = counts.get(where, 0) + n
    for machine, counts in found.values():
        if counts:
            raise StrandedInstances(machine, counts)
