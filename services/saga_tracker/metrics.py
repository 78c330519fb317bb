"""What on-call and the business watch about processes (not about Kafka).

Counters and histograms follow transitions of instances as the tracker makes them. Open instances,
value in flight and value at risk are gauges read at scrape time from the committed `stats` store
of each partition task, so they stay exact across restarts and rebalances.

SLA adherence in PromQL:
    sum by (process) (rate(choreograph_saga_sla_total{met="true"}[1h]))
      / sum by (process) (rate(choreograph_saga_sla_total[1h]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from saga_tracker.instance import (
    ENDED,
    UNDO_UNCONFIRMED,
    Effect,
    Instance,
    ProcessRules,
    RaiseIncident,
)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)
STATS = "stats"


@dataclass(frozen=True)
class Snapshot:
    """What an instance looked like before a change: enough to tell what the change did."""

    status: str
    steps: dict[str, str]
    timeline: int
    open: tuple[int, float, float, int]
    held: bool = False
    wake: datetime | None = None  # its earliest armed deadline (its timer), None if none

    @classmethod
    def of(cls, inst: Instance) -> Snapshot:
        steps: dict[str, str] = {name: s.status for name, s in inst.steps.items()}
        return cls(inst.status, steps, len(inst.timeline), contribution(inst), bool(inst.held),
                   inst.next_wake())  # fmt: skip


def contribution(inst: Instance) -> tuple[int, float, float, int]:
    """What one instance adds to its process's gauges: open, value in flight, value at risk,
    paused."""
    value = inst.value or 0.0
    return (
        0 if inst.ended else 1,
        0.0 if inst.ended else value,
        value if inst.at_risk else 0.0,
        1 if inst.paused else 0,
    )


class TrackerMetrics:
    """Created unregistered; `register` adds them to the registry the engine serves."""

    def __init__(self) -> None:
        self.durations = Histogram(
            "choreograph_saga_duration_seconds",
            "Time from start to end of process instances, by how they ended.",
            ["process", "status"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.step_seconds = Histogram(
            "choreograph_saga_step_seconds",
            "Time from start to completion of a step.",
            ["process", "step"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.timeouts = Counter(
            "choreograph_saga_timeouts",
            "Deadlines that passed (step name, or 'process').",
            ["process", "step"],
            registry=None,
        )
        self.compensations = Counter(
            "choreograph_saga_compensations",
            "Compensation commands sent, confirmed and failed.",
            ["process", "step", "outcome"],
            registry=None,
        )
        self.sla = Counter(
            "choreograph_saga_sla",
            "Ended instances, by whether they completed within the process SLA.",
            ["process", "met"],
            registry=None,
        )
        self.incidents = Counter(
            "choreograph_saga_incidents",
            "Incidents raised.",
            ["process", "severity"],
            registry=None,
        )
        self.commands_queued = Counter(
            "choreograph_saga_commands_held",
            "Commands held back by flow control for a later slot (see the queued gauge).",
            ["topic"],
            registry=None,
        )
        self.rejected = Counter(
            "choreograph_saga_rejected_events",
            "Records of followed event types the tracker refused to act on (their body cannot "
            "be read, or is not the type its envelope claims); they are in the router's DLQ.",
            ["event_type", "reason"],
            registry=None,
        )
        self.deleted = Counter(
            "choreograph_saga_instances_deleted",
            "Ended instances deleted once their retention passed.",
            ["process"],
            registry=None,
        )
        self.actions = Counter(
            "choreograph_saga_operator_actions",
            "Operator actions the tracker carried out or refused.",
            ["action", "outcome"],
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        for metric in (
            self.durations,
            self.step_seconds,
            self.timeouts,
            self.compensations,
            self.sla,
            self.incidents,
            self.commands_queued,
            self.rejected,
            self.actions,
            self.deleted,
        ):
            registry.register(metric)

    def observe(
        self, rules: ProcessRules, before: Snapshot | None, inst: Instance, effects: list[Effect]
    ) -> None:
        process = inst.process
        for entry in inst.timeline[before.timeline if before else 0 :]:
            if entry.kind == "timeout":
                self.timeouts.labels(process, entry.step or "process").inc()
            elif entry.kind == "compensation" and entry.step:
                self.compensations.labels(process, entry.step, "sent").inc()
        was = before.steps if before else {}
        for name, state in inst.steps.items():
            if state.status == was.get(name):
                continue
            if state.status == "completed" and state.started_at and state.ended_at:
                seconds = (state.ended_at - state.started_at).total_seconds()
                self.step_seconds.labels(process, name).observe(seconds)
            elif state.status == "compensated" and was.get(name) in UNDO_UNCONFIRMED:
                self.compensations.labels(process, name, "completed").inc()
            elif state.status == "compensation_failed":
                self.compensations.labels(process, name, "failed").inc()
        for effect in effects:
            if isinstance(effect, RaiseIncident):
                self.incidents.labels(process, effect.severity).inc()
        ended_now = inst.ended and (before is None or before.status not in ENDED)
        if ended_now and inst.ended_at is not None:
            took = inst.ended_at - inst.started_at
            self.durations.labels(process, inst.status).observe(took.total_seconds())
            target = rules.definition.sla or rules.definition.deadline
            on_clock = inst.sla_seconds()  # a pause stops the SLA clock
            if target is not None and on_clock is not None:
                met = inst.status == "completed" and on_clock <= target.total_seconds()
                self.sla.labels(process, "true" if met else "false").inc()


class OpenInstances(Collector):
    """Gauges summed over the committed `stats` stores of the tracker's partition tasks."""

    def __init__(self, tasks: Callable[[], Iterable[Any]]) -> None:
        self.tasks = tasks

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, list[float]] = {}
        for task in list(self.tasks()):
            view = task.committed_view(STATS)
            for key, row in view.items() if view is not None else ():
                total = totals.setdefault(key, [0, 0.0, 0.0, 0])
                total[0] += row["open"]
                total[1] += row["in_flight"]
                total[2] += row["at_risk"]
                total[3] += row.get("paused", 0)
        families = (
            GaugeMetricFamily(
                "choreograph_saga_active_instances",
                "Process instances not yet ended.",
                labels=["process"],
            ),
            GaugeMetricFamily(
                "choreograph_saga_value_in_flight",
                "Sum of the value-at-risk field over instances not yet ended.",
                labels=["process"],
            ),
            GaugeMetricFamily(
                "choreograph_saga_value_at_risk",
                "Sum of the value-at-risk field over instances alerting, compensating or "
                "waiting for manual resolution.",
                labels=["process"],
            ),
            GaugeMetricFamily(
                "choreograph_saga_paused_instances",
                "Process instances an operator paused: their deadlines and SLA clock stand still.",
                labels=["process"],
            ),
        )
        for process, values in sorted(totals.items()):
            for family, value in zip(families, values, strict=True):
                family.add_metric([process], value)
        yield from families
