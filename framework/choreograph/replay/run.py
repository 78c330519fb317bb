"""Replay a capture against a service's code, in the TestKit, and compare with production.

The capture's records that the service consumes are delivered in the order they happened
(broker timestamps, then topic, partition and offset), with virtual time following the recorded
timestamps, so timers fire as they would have. What the service emits is compared with what it
emitted in production (its records in the capture, matched by causation id: the id of the event
that caused them). Fresh on every run, and so never compared: event ids (`ce_id`), trace span
ids, and body fields that hold a time (a handler filling them from the clock).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema

from choreograph.contracts.envelope import Envelope, EnvelopeError
from choreograph.replay.capture import Capture, CapturedRecord
from choreograph.runtime.service import Service
from choreograph.testing.testkit import TestKit

_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class Difference:
    kind: str  # missing (production emitted it, the replay did not), extra, or changed
    causation_id: str
    topic: str
    event_type: str
    key: str
    production: dict[str, Any] | None = None
    replay: dict[str, Any] | None = None


@dataclass
class InstanceReport:
    correlation_id: str
    records: int = 0
    emitted: list[str] = field(default_factory=list)  # "topic type key"
    transitions: list[str] = field(default_factory=list)  # "machine key: from -> to"
    timers: list[str] = field(default_factory=list)  # "name key at"
    dead_letters: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)


@dataclass
class ReplayReport:
    service: str
    instances: dict[str, InstanceReport]
    fed: int
    outputs: list[tuple[str, str, bytes | None, Envelope]] = field(default_factory=list)

    @property
    def differences(self) -> list[Difference]:
        return [d for inst in self.instances.values() for d in inst.differences]

    @property
    def dead_letters(self) -> list[str]:
        return [d for inst in self.instances.values() for d in inst.dead_letters]

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "fed": self.fed,
            "instances": {cid: asdict(inst) for cid, inst in sorted(self.instances.items())},
        }

    def text(self) -> str:
        lines = [f"replayed {self.fed} record(s) into {self.service}"]
        for cid, inst in sorted(self.instances.items()):
            lines.append(f"instance {cid}: {inst.records} record(s) in")
            lines += [f"  emitted {e}" for e in inst.emitted]
            lines += [f"  state {t}" for t in inst.transitions]
            lines += [f"  timer {t}" for t in inst.timers]
            lines += [f"  dead letter: {d}" for d in inst.dead_letters]
            for d in inst.differences:
                lines.append(f"  {d.kind}: {d.event_type} to {d.topic} key {d.key} "
                             f"(caused by {d.causation_id})")  # fmt: skip
                if d.kind == "changed":
                    lines.append(f"    production: {d.production}")
                    lines.append(f"    replay:     {d.replay}")
        lines.append(
            "no difference from production"
            if not self.differences
            else f"{len(self.differences)} difference(s) from production"
        )
        return "\n".join(lines)


# Fields that differ between production and a replay besides ids and times: never compared
# (which running copy decided).
FRESH_FIELDS = {"dev.choreograph.DecisionRecord": ("actor_instance",)}


def _comparable(value: Any) -> Any:
    """A body as compared: times dropped (fresh), decimals as text."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if not isinstance(v, (datetime, date))}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode(value: bytes | None, schema_text: str | None) -> dict[str, Any]:
    if value is None or schema_text is None:
        return {}
    parsed = fastavro.parse_schema(json.loads(schema_text), named_schemas={})
    decoded: Any = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)
    return dict(_comparable(decoded))


def _ordered(records: Iterable[CapturedRecord]) -> list[CapturedRecord]:
    return sorted(records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))


def replay(capture: Capture, service: Service, *, partitions: int = 4) -> ReplayReport:
    """Feed the capture to `service` in the TestKit; report what it did and how that differs
    from what it did in production."""
    records = _ordered(capture.records)
    start = datetime.fromtimestamp(records[0].timestamp / 1000, UTC) if records else None
    kit = TestKit(service, start=start, partitions=partitions, on_error="dead-letter")
    ids = _register(kit, capture)
    inputs = set(service.external_inputs)
    produced = set(service.outputs) - set(service.rekeyed)
    instances: dict[str, InstanceReport] = {}

    def instance(record: CapturedRecord) -> InstanceReport:
        cid = record.header("ce_correlationid") or record.header("ce_subject") or "?"
        return instances.setdefault(cid, InstanceReport(cid))

    by_cause: dict[str, str] = {}  # replayed output's causation id -> instance
    by_key: dict[str, str] = {}  # entity key -> the instance it last took part in
    states: dict[tuple[str, str], str] = {}

    def observe() -> None:
        """Machine states that moved, and timers that ran, since the last look."""
        for key, cid in by_key.items():
            for machine in service.machines:
                found = kit.state(machine, key)
                now = found.state if found else ""
                was = states.get((machine.name, key), machine.initial)
                if found and now != was:
                    instances[cid].transitions.append(f"{machine.name} {key}: {was} -> {now}")
                    states[(machine.name, key)] = now
        for key, name, when in kit.fired[seen_timers[0] :]:
            owner = by_key.get(key)
            if owner is not None:
                instances[owner].timers.append(f"{name} {key} {when.isoformat()}")
        seen_timers[0] = len(kit.fired)

    seen_timers = [0]
    fed = 0
    for record in records:
        if record.topic not in inputs:
            continue
        moment = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        if moment > kit.now:
            kit.advance(moment - kit.now)
            observe()
        report = instance(record)
        by_key[(record.key or b"").decode(errors="replace")] = report.correlation_id
        report.records += 1
        letters = len(kit.dead_letters)
        kit.deliver(record.topic, record.key, _reframe(record.value, ids), record.headers)
        fed += 1
        for letter in kit.dead_letters[letters:]:
            report.dead_letters.append(f"{record.topic}@{record.offset}: {letter.error}")
        event_id = record.header("ce_id")
        if event_id:
            by_cause[event_id] = report.correlation_id
        observe()
    replayed = [e for e in kit.outputs if e.topic in produced]
    captured_topics = {r.topic for r in capture.records}
    production = [
        r for r in records if r.topic in produced and r.header("ce_source") == service.name
    ]
    for emitted in replayed:
        cid = by_cause.get(emitted.envelope.causation_id or "", emitted.envelope.correlation_id)
        report = instances.setdefault(cid, InstanceReport(cid))
        report.emitted.append(f"{emitted.topic} {emitted.envelope.type} {emitted.key}")
    # Outputs to a topic the capture holds nothing of are listed, not compared: there is no
    # production record to compare them with (a capture without choreograph.decisions, say).
    compared = [e for e in replayed if e.topic in captured_topics]
    _compare(capture, production, compared, instances, by_cause)
    outputs = [(e.topic, e.key, e.value, e.envelope) for e in replayed]
    return ReplayReport(service.name, instances, fed, outputs)


def _register(kit: TestKit, capture: Capture) -> dict[int, int]:
    """The capture's writer schemas, registered in the TestKit's registry: production ids are
    mapped to its own, so the two never collide."""
    ids: dict[int, int] = {}
    for schema_id, text in sorted(capture.schemas.items()):
        raw = json.loads(text)
        name = raw["name"] if "." in raw["name"] else f"{raw.get('namespace', '')}.{raw['name']}"
        registered = kit.serde.registry.register_schema(f"capture-{name}", Schema(text, "AVRO"))
        ids[schema_id] = int(registered)
    return ids


def _reframe(value: bytes | None, ids: dict[int, int]) -> bytes | None:
    if value is None or len(value) < 5 or value[0] != 0:
        return value
    old = _HEADER.unpack_from(value)[1]
    new = ids.get(old)
    return value if new is None else _HEADER.pack(0, new) + value[5:]


def _compare(
    capture: Capture,
    production: list[CapturedRecord],
    replayed: list[Any],
    instances: dict[str, InstanceReport],
    by_cause: dict[str, str],
) -> None:
    def signature(topic: str, kind: str, key: str, body: dict[str, Any]) -> str:
        fresh = FRESH_FIELDS.get(kind, ())
        kept = {k: v for k, v in body.items() if k not in fresh}
        return json.dumps([topic, kind, key, kept], sort_keys=True, default=str)

    expected: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {}
    for record in production:
        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError:
            continue
        body = _decode(record.value, capture.schemas.get(record.schema_id or -1))
        key = (record.key or b"").decode(errors="replace")
        expected.setdefault(envelope.causation_id or "", []).append(
            (record.topic, envelope.type, key, body)
        )
    actual: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {}
    for emitted in replayed:
        body = (
            dict(_comparable(emitted.event.to_avro())) if hasattr(emitted.event, "to_avro") else {}
        )
        actual.setdefault(emitted.envelope.causation_id or "", []).append(
            (emitted.topic, emitted.envelope.type, emitted.key, body)
        )
    for cause in sorted(set(expected) | set(actual)):
        cid = by_cause.get(cause)
        if cid is None:
            continue  # caused by nothing this replay fed: outside the capture's reach
        report = instances.setdefault(cid, InstanceReport(cid))
        left = list(expected.get(cause, []))
        for topic, kind, key, body in actual.get(cause, []):
            same = next(
                (p for p in left if signature(*p) == signature(topic, kind, key, body)), None
            )
            if same is not None:
                left.remove(same)
                continue
            near = next((p for p in left if p[:3] == (topic, kind, key)), None)
            if near is not None:
                left.remove(near)
                report.differences.append(
                    Difference("changed", cause, topic, kind, key, near[3], body)
                )
            else:
                report.differences.append(Difference("extra", cause, topic, kind, key, None, body))
        for topic, kind, key, body in left:
            report.differences.append(Difference("missing", cause, topic, kind, key, body, None))
