"""What a handler sees: the key and envelope in hand, stores, emit, timers, the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import ContractViolation, Event
from choreograph.contracts.publisher import topic_of
from choreograph.contracts.serde import AvroSerde
from choreograph.contracts.structured import others
from choreograph.runtime.timers import deadline_ms
from choreograph.state.store import Store

if TYPE_CHECKING:
    from choreograph.governance.decisions import RuleEvaluation
    from choreograph.governance.policies import BoundPolicy


class ServiceView(Protocol):
    """What a handler's context needs of its service."""

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> dict[str, type[Event]]: ...

    def check_output(self, topic: str, what: str) -> None: ...

    def check_timer(self, name: str) -> None: ...

    def policy(self, policy_id: str, model: type[Event], where: str) -> BoundPolicy: ...


class TimersView(Protocol):
    def schedule(self, key: str, name: str, deadline_ms: int, payload: dict[str, Any]) -> None: ...

    def cancel(self, key: str, name: str) -> bool: ...


class TaskView(Protocol):
    """What a handler's context needs of the partition task running it (a PartitionTask): the
    context depends on this, not on the task or the engine."""

    @property
    def partition(self) -> int: ...

    @property
    def partitions(self) -> int | None: ...

    def pace(self, partner: str) -> float: ...

    @property
    def instance_id(self) -> str: ...

    @property
    def serde(self) -> AvroSerde: ...

    @property
    def timers(self) -> TimersView: ...

    @property
    def service(self) -> ServiceView: ...

    def keyed_store(self, name: str, record_key: str) -> Store: ...


class Output(NamedTuple):
    """A record to produce in the current transaction (a tuple: one is built per emit)."""

    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    event: Event | None  # None when forwarded as it came
    envelope: Envelope


# Set by `forward(..., origin=True)`: where the forwarded record was read, "topic/partition/offset",
# so that a reader of the new topic can go back to the original record without a scan.
REPARTITIONED_FROM = "repartitioned_from"


@dataclass(frozen=True)
class Origin:
    """Where a record was read: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Origin:
        """The inverse of str(); raises ValueError for anything else."""
        topic, partition, offset = text.rsplit("/", 2)
        if not topic:
            raise ValueError(f"not topic/partition/offset: {text!r}")
        return cls(topic, int(partition), int(offset))


@dataclass(frozen=True)
class RawEvent:
    """A record as consumed, for envelope handlers: the body stays encoded."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    envelope: Envelope
    data: Any = None  # JSON data of a structured-mode event (then `value` is None)
    origin: Origin | None = None  # where it was read (None where nothing was read: a test)


class Context:
    def __init__(self, task: TaskView, key: str, envelope: Envelope | None, now: datetime) -> None:
        self._task = task
        self.key = key
        self.envelope = envelope
        self.now = now
        self.outputs: list[Output] = []
        self._evaluations: list[RuleEvaluation] = []  # rules evaluated, for the next decision
        self.decisions = 0  # decision records written in this handling

    @property
    def partition(self) -> int:
        return self._task.partition

    @property
    def partitions(self) -> int:
        """How many partitions the service's inputs have: how many tasks share its work."""
        return self._task.partitions or 1

    def pace(self, partner: str) -> float:
        """Wait for this call's turn to call `partner` (declared with `service.partner`), so
        the service stays within the partner's rate; the seconds waited."""
        return self._task.pace(partner)

    @property
    def service(self) -> str:
        return self._task.service.name

    @property
    def instance_id(self) -> str:
        """Which running copy of the service handles this ("testkit" in the TestKit)."""
        return self._task.instance_id

    def evaluated(self, evaluation: RuleEvaluation) -> None:
        """Note a rule evaluated while handling this record: the next decision record lists it."""
        self._evaluations.append(evaluation)

    def take_evaluations(self) -> list[RuleEvaluation]:
        taken, self._evaluations = self._evaluations, []
        return taken

    def policy(self, policy_id: str, event: Event) -> bool:
        """Evaluate one of the service's policies on `event` and record the evaluation as a
        decision (on `choreograph.decisions`, with this handling's outputs). True when it
        allows."""
        from choreograph.governance.decisions import record_decision

        bound = self._task.service.policy(policy_id, type(event), f"a handler of {self.service}")
        allowed, evaluation = bound.allows(event)
        self.evaluated(evaluation)
        record_decision(
            self, subject="handler", name=self.service, version=bound.source.version, kind="policy"
        )
        return allowed

    def store(self, name: str) -> Store:
        """Store `name` of this partition. Keyed stores check that each key belongs here."""
        return self._task.keyed_store(name, self.key)

    def emit(
        self,
        event: Event,
        key: str | None = None,
        topic: str | None = None,
        *,
        caused_by: Envelope | None = None,
    ) -> Envelope:
        """Publish `event` in this transaction; its envelope follows the event in hand, or
        `caused_by` (an envelope emitted in this handling, such as a decision record's)."""
        key = key or self.key
        task = self._task
        service = task.service
        target = topic or topic_of(type(event))
        service.check_output(target, event.__avro_name__)
        value = task.serde.serialize(event, target)
        envelope, headers = Envelope.emitted(
            event.__avro_name__, service.name, key, caused_by or self.envelope, self.now
        )
        self.outputs.append(Output(target, key.encode(), value, headers, event, envelope))
        return envelope

    def forward(
        self,
        raw: RawEvent,
        topic: str,
        key: str,
        *,
        with_body: bool = True,
        resolved: bool = False,
        origin: bool = False,
    ) -> None:
        """Send a record on unchanged (value and headers) under a new key: a repartition.
        `with_body=False` sends the envelope alone, for readers that need no more.
        `resolved=True` writes the CloudEvents headers as this service read them (with the
        correlation id and subject it worked out from a minimal event and its key), so that a
        reader of the new key sees the same; other headers go on as they came.
        `origin=True` adds a `repartitioned_from` header naming where the record was read."""
        self._task.service.check_output(topic, f"a forwarded {raw.envelope.type}")
        value = raw.value if with_body else None
        headers = [*others(raw.headers), *raw.envelope.to_headers()] if resolved else raw.headers
        if origin and raw.origin is not None:
            kept = [(k, v) for k, v in headers if k != REPARTITIONED_FROM]
            headers = [*kept, (REPARTITIONED_FROM, str(raw.origin).encode())]
        self.outputs.append(Output(topic, key.encode(), value, headers, None, raw.envelope))

    def decode(self, raw: RawEvent, reader: type[Event] | None = None) -> Any:
        """Decode a raw record's body when an envelope handler needs it after all: into `reader`,
        else the model known for its writer, else a plain dict. Raises SerdeError, and
        MislabelledRecord when the body is not the type its envelope claims. JSON data (from a
        structured-mode event) is validated by `reader` or the service's model of its type, and
        raises ContractViolation; without either it is returned as it came."""
        try:
            if raw.value is None and raw.data is not None:
                model = reader or self._task.service.models.get(raw.envelope.type)
                return model.from_avro(raw.data) if model is not None else raw.data
            return self._task.serde.deserialize(raw.value, reader, claimed=raw.envelope.type).event
        except ContractViolation as violation:
            violation.read = True  # the record's fault: dead-lettered as it is
            raise

    def read_fields(self, raw: RawEvent, *fields: str) -> dict[str, Any]:
        """Only `fields` of a raw record's body, as a plain dict (those it lacks are left out),
        for an envelope handler that needs a field or two: much cheaper than `decode`. Raises
        SerdeError, and MislabelledRecord when the body is not the type its envelope claims."""
        if raw.value is None and isinstance(raw.data, dict):
            return {f: raw.data[f] for f in fields if f in raw.data}
        return self._task.serde.read_fields(raw.value, fields, claimed=raw.envelope.type)

    def schedule(
        self, name: str, at: datetime | timedelta, payload: dict[str, Any] | None = None
    ) -> None:
        """Fire timer `name` for this key at `at` (or after a delay); replaces a pending one."""
        if isinstance(at, datetime) and at.utcoffset() is None:
            raise TypeError(
                f"timer {name!r} scheduled at {at.isoformat()}, a datetime without a time "
                "zone: its instant depends on the machine's zone; pass an aware one "
                "(datetime(..., tzinfo=UTC), or ctx.now + timedelta(...))"
            )
        self._task.service.check_timer(name)
        when = self.now + at if isinstance(at, timedelta) else at
        lineage = {}
        if self.envelope is not None:
            lineage = {
                "_correlation_id": self.envelope.correlation_id,
                "_causation_id": self.envelope.id,
                "_traceparent": self.envelope.traceparent,
            }
        self._task.timers.schedule(
            self.key, name, deadline_ms(when), {**(payload or {}), **lineage}
        )

    def cancel(self, name: str) -> bool:
        return self._task.timers.cancel(self.key, name)
