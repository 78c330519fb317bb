"""Flow control of the commands the tracker sends: at most a declared rate per target topic (and
a least interval per business key), the rest held in a durable queue.

A definition declares `flow_control: {payments.commands: {per_second: 5}}`. When a partner
comes back after an outage, the deadlines that passed meanwhile would send every overdue
compensation at once; with a limit each goes out at its slot instead. Slots are handed out per
partition task of the tracker, each getting an equal share of the rate (`per_second` divided by
the partitions), so all replicas together stay within it without talking to each other. Two
definitions that limit one topic share the stricter limit: it protects the partner, whoever
sends.

A command that cannot go now becomes a timer of its instance (`outbox:<topic>:<n>`) at its slot,
carrying the command and what caused it. Timers are changelog-backed and fire inside the
transaction with what they emit, so the queue survives restarts and rebalances and each command
goes out exactly once. How many wait, per topic, is in the `flow` store (committed, as the
`choreograph_saga_commands_queued` gauge reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import Event
from choreograph.runtime.context import Context
from choreograph.runtime.timers import deadline_ms

FLOW_STORE = "flow"  # per topic: next free slot, a sequence, how many wait; per topic/key: last
TIMER_PREFIX = "outbox:"


@dataclass(frozen=True)
class Limit:
    topic: str
    per_second: float
    per_key_interval: timedelta | None = None


def limits_of(definitions: Iterable[Any]) -> dict[str, Limit]:
    """The limit of each topic any definition limits: the stricter where two do."""
    found: dict[str, Limit] = {}
    for definition in definitions:
        for topic, declared in definition.flow_control.items():
            known = found.get(topic)
            rate = min(declared.per_second, known.per_second if known else declared.per_second)
            intervals = [i for i in (declared.per_key_interval,
                                     known.per_key_interval if known else None) if i]  # fmt: skip
            found[topic] = Limit(topic, rate, max(intervals) if intervals else None)
    return found


class Outbox:
    def __init__(self, limits: dict[str, Limit], to_envelope: Callable[[Envelope], Any],
                 from_envelope: Callable[[Any], Envelope]) -> None:  # fmt: skip
        self.limits = limits
        self._to = to_envelope
        self._from = from_envelope

    def send(
        self,
        ctx: Context,
        model: type[Event],
        payload: dict[str, Any],
        key: str,
        caused_by: Envelope | None,
    ) -> bool:
        """Send the command `model(payload)` now if its topic's slot allows, else queue it for
        its slot. Returns whether it was queued."""
        topic = model.__avro_topic__
        limit = self.limits.get(topic)
        if limit is None:
            ctx.emit(model.from_avro(payload), key=key, topic=topic, caused_by=caused_by)
            return False
        flow = ctx.store(FLOW_STORE)
        row = flow.get(topic) or {"next_ms": 0, "seq": 0, "queued": 0}
        now_ms = deadline_ms(ctx.now)
        slot = max(now_ms, int(row["next_ms"]))
        per_key = f"{topic}/{key}"
        if limit.per_key_interval is not None:
            last = flow.get(per_key)
            if last is not None:
                slot = max(slot, int(last) + int(limit.per_key_interval.total_seconds() * 1000))
            flow.put(per_key, slot)
        row["next_ms"] = max(int(row["next_ms"]), slot + self._spacing(ctx, limit))
        if slot <= now_ms:
            flow.put(topic, row)
            ctx.emit(model.from_avro(payload), key=key, topic=topic, caused_by=caused_by)
            return False
        row["seq"] += 1
        row["queued"] += 1
        flow.put(topic, row)
        parent = caused_by or ctx.envelope
        self._wait(ctx, f"{TIMER_PREFIX}{topic}:{row['seq']}", slot,
                   {"type": model.__avro_name__, "payload": payload, "key": key, "topic": topic,
                    "parent": self._to(parent) if parent is not None else None})  # fmt: skip
        return True

    @staticmethod
    def _spacing(ctx: Context, limit: Limit) -> int:
        """Milliseconds between two commands of this partition task to the topic."""
        return max(1, round(1000 * max(ctx.partitions, 1) / limit.per_second))

    @staticmethod
    def _wait(ctx: Context, name: str, slot: int, held: dict[str, Any]) -> None:
        ctx.schedule(
            name,
            datetime.fromtimestamp(slot / 1000, ctx.now.tzinfo),
            {**held, "slot": slot, "name": name},
        )

    def due(self, ctx: Context, payload: dict[str, Any], models: dict[str, type[Event]]) -> None:
        """A queued command's slot has come: send it."""
        topic, key = str(payload["topic"]), str(payload["key"])
        flow = ctx.store(FLOW_STORE)
        row = flow.get(topic)
        limit = self.limits.get(topic)
        now_ms = deadline_ms(ctx.now)
        if row is not None and limit is not None:
            spacing = self._spacing(ctx, limit)
            if now_ms - int(payload.get("slot", now_ms)) > spacing:
                # Late by more than a slot (the tracker was down or stalled): every held command
                # is due at once now, so each takes a fresh slot, keeping the rate.
                slot = max(now_ms, int(row["next_ms"]))
                row["next_ms"] = slot + spacing
                if slot > now_ms:
                    flow.put(topic, row)
                    held = {k: v for k, v in payload.items() if k not in ("slot", "name")}
                    self._wait(ctx, str(payload["name"]), slot, held)
                    return
        if row is not None:
            row["queued"] = max(0, int(row["queued"]) - 1)
            flow.put(topic, row)
        per_key = flow.get(f"{topic}/{key}")
        if per_key is not None and int(per_key) <= now_ms:
            flow.delete(f"{topic}/{key}")  # nothing later waits for this key
        model = models[str(payload["type"])]
        parent = self._from(payload["parent"]) if payload.get("parent") else None
        ctx.emit(model.from_avro(payload["payload"]), key=key, topic=topic, caused_by=parent)


class QueuedCommands(Collector):
    """`choreograph_saga_commands_queued{topic}`: commands waiting for their slot, summed over
    the committed `flow` stores of the tracker's partition tasks."""

    def __init__(self, tasks: Callable[[], Iterable[Any]]) -> None:
        self.tasks = tasks

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, float] = {}
        for task in list(self.tasks()):
            view = task.committed_view(FLOW_STORE)
            for key, row in view.items() if view is not None else ():
                if isinstance(row, dict):
                    totals[key] = totals.get(key, 0) + float(row.get("queued", 0))
        family = GaugeMetricFamily(
            "choreograph_saga_commands_queued",
            "Commands the tracker holds back for their topic's flow-control slot.",
            labels=["topic"],
        )
        for topic, queued in sorted(totals.items()):
            family.add_metric([topic], queued)
        yield family
