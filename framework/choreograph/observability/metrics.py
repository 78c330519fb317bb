"""Prometheus metrics of a running service, in a registry of its own (one per Service run)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        r, labels = self.registry, {"service": service}
        self.events = Counter(
            "choreograph_events",
            "Records handled, by event type and outcome (ok, ignored, retried, dlq).",
            ["service", "type", "outcome"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "choreograph_handler_seconds",
            "Time to decode and handle one record (one record in 16 is timed).",
            ["service", "type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "choreograph_consumer_lag",
            "Records between the committed position and the end of the partition.",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.retries = Counter(
            "choreograph_retries",
            "Handler attempts that failed and will be retried.",
            ["service"],
            registry=r,
        )
        self.dlq = Counter(
            "choreograph_dlq",
            "Records sent to the dead-letter topic, by reason.",
            ["service", "reason"],
            registry=r,
        )
        self.restored = Counter(
            "choreograph_restore_records",
            "Changelog records restored into local state.",
            ["service", "store"],
            registry=r,
        )
        self.restore_remaining = Gauge(
            "choreograph_restore_remaining",
            "Changelog records left to restore.",
            ["service", "store", "partition"],
            registry=r,
        )
        self.timer_lateness = Histogram(
            "choreograph_timer_lateness_seconds",
            "How long after its deadline a timer fired.",
            ["service"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.timers_fired = Counter(
            "choreograph_timers_fired", "Timers fired.", ["service"], registry=r
        )
        self.commits = Counter(
            "choreograph_commits",
            "Transactions (or offset commits) completed.",
            ["service"],
            registry=r,
        )
        self.aborts = Counter(
            "choreograph_aborts", "Transactions aborted.", ["service"], registry=r
        )
        self.commit_seconds = Histogram(
            "choreograph_commit_seconds",
            "Time to commit.",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.partitions = Gauge(
            "choreograph_assigned_partitions",
            "Input partitions owned by this instance.",
            ["service"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "choreograph_dependency_up",
            "1 while a dependency (broker, registry) answers; 0 while partitions pause for it.",
            ["service", "dependency"],
            registry=r,
        )
        self.producer_rebuilds = Counter(
            "choreograph_producer_rebuilds",
            "Producers dropped (fenced, fatal error, stalled call) and replaced by a fresh one.",
            ["service"],
            registry=r,
        )
        self.consumer_rebuilds = Counter(
            "choreograph_consumer_rebuilds",
            "Consumers that failed fatally (a fenced static member) and were replaced.",
            ["service"],
            registry=r,
        )
        self.input_wait_seconds = Counter(
            "choreograph_input_wait_seconds",
            "Time a task held fetched records back, waiting for an input partition that may "
            "still hold an earlier record.",
            ["service"],
            registry=r,
        )
        self.input_order_enforced = Counter(
            "choreograph_input_order_enforced",
            "Records handled after the wait for an input partition that was behind ran out "
            "(possibly out of timestamp order).",
            ["service"],
            registry=r,
        )
        self.input_order_late = Counter(
            "choreograph_input_order_late",
            "Records handled with a timestamp below one already handled from another input "
            "of the same task.",
            ["service"],
            registry=r,
        )
        self.labels = labels
