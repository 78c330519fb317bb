"""The saga tracker as one deployable process: router, tracker, notifier, trace and action API,
and one /metrics for all of them.

Each part is a choreograph Engine in its own thread (the router and tracker exactly-once, the
notifier at-least-once because it calls Alertmanager). The HTTP API reads the visibility store,
which an indexer thread feeds from the tracker's committed changelogs: every replica answers for
every instance, not only for the partitions it owns. Stopping stops them all; one failing stops
the rest, so the orchestrator restarts the pod.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from choreograph.contracts.serde import AvroSerde
from choreograph.observability.endpoint import serve_endpoint
from choreograph.runtime.config import Guarantee, ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph.runtime.errors import ConfigurationError
from saga_tracker.access import Access
from saga_tracker.actions import ActionDesk
from saga_tracker.batches import batches_topic, build_batch_runner, ensure_batches_topic
from saga_tracker.definitions import Definitions, command_and_incident_models, tracked_inputs
from saga_tracker.flow import QueuedCommands
from saga_tracker.metrics import OpenInstances, TrackerMetrics
from saga_tracker.notifier import ALERTS_TOPIC, build_notifier
from saga_tracker.service import INCIDENT, REPARTITION, build_router, build_tracker
from saga_tracker.signin import OidcSettings
from saga_tracker.throttle import ClientKeys, FailedAttempts
from saga_tracker.traces import TraceServer
from saga_tracker.visibility.indexer import Indexer, changelog_kinds
from saga_tracker.visibility.store import VisibilityStore

if TYPE_CHECKING:
    from saga_tracker.otel import InstanceSpans

log = logging.getLogger("saga_tracker")


@dataclass
class TrackerSettings:
    definitions: Path
    schemas: Path
    inputs: list[str] | None  # None: derived from the definitions and contracts
    config: ServiceConfig
    name: str = "saga-tracker"
    repartition: str = REPARTITION
    http_host: str = "127.0.0.1"
    http_port: int = 8088
    public_url: str = ""  # how on-call reaches the trace pages; defaults to the bound address
    tokens: Path | None = None
    open_reads: bool = False
    alertmanager_url: str | None = None
    metrics_port: int | None = None
    alerts_topic: str = ALERTS_TOPIC
    failed_attempts_limit: int = 10  # per client and window, then 429
    failed_attempts_window_s: float = 60.0
    # Proxies (addresses or CIDR networks) whose X-Forwarded-For names the client.
    trusted_proxies: list[str] = field(default_factory=list)
    signin: OidcSettings | None = None  # people sign in to the pages (see signin)
    jaeger_url: str | None = None  # each trace page links its instance's trace there
    # Where the API reads instances: "" is SQLite in the state folder (each replica indexes its
    # own copy); a postgresql:// URL shares one database between replicas and the UI.
    visibility_url: str = ""
    # OTLP/HTTP endpoint (e.g. http://collector:4318) to export ended instances to; off if "".
    otlp_endpoint: str = ""
    scoped_reads: bool = False  # a principal reads only the processes its teams own
    retention: timedelta | None = None  # ended instances kept this long, unless defined; None: ever


def visibility_url(settings: TrackerSettings) -> str:
    if settings.visibility_url:
        return settings.visibility_url
    return f"sqlite:///{settings.config.state_dir / 'visibility' / settings.name}.db"


class MergedMetrics(Collector):
    """Several engines' registries as one scrape: families of the same name are joined."""

    def __init__(self, registries: list[CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        joined: dict[str, Metric] = {}
        for registry in self.registries:
            for family in registry.collect():
                if family.name not in joined:
                    joined[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                joined[family.name].samples.extend(family.samples)
        yield from joined.values()


class TrackerApp:
    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = s = settings
        definitions = Definitions.load(s.definitions)
        models = command_and_incident_models(s.schemas)
        self.inputs = tracked_inputs(definitions, s.schemas, s.inputs)
        access = (
            Access.load(s.tokens, open_reads=s.open_reads, scoped_reads=s.scoped_reads)
            if s.tokens
            else Access({}, open_reads=s.open_reads, scoped_reads=s.scoped_reads)
        )
        self.batches_topic = batches_topic(s.name)
        self.metrics = TrackerMetrics()
        self.spans: InstanceSpans | None = None
        if s.otlp_endpoint:
            from saga_tracker.otel import InstanceSpans  # the otel extra, only when asked for

            self.spans = InstanceSpans.otlp(s.otlp_endpoint, s.name)
        self.router = Engine(
            build_router(
                definitions,
                self.inputs,
                name=f"{s.name}-router",
                repartition=s.repartition,
                metrics=self.metrics,
                models=models,
            ),
            self._config("router"),
        )
        self.tracker = Engine(
            build_tracker(
                definitions,
                models,
                name=s.name,
                repartition=s.repartition,
                metrics=self.metrics,
                alerts_topic=s.alerts_topic,
                spans=self.spans,
                batches=self.batches_topic,
                retention=s.retention,
            ),
            self._config("tracker"),
        )
        self.batch_runner = Engine(
            build_batch_runner(
                models,
                name=f"{s.name}-batches",
                topic=self.batches_topic,
                repartition=s.repartition,
            ),
            self._config("batches"),
        )
        self.metrics.register(self.tracker.metrics.registry)
        self.tracker.metrics.registry.register(OpenInstances(lambda: self.tracker.tasks.values()))
        self.tracker.metrics.registry.register(QueuedCommands(lambda: self.tracker.tasks.values()))
        self.visibility = VisibilityStore(visibility_url(s), s.name)
        self.indexer = Indexer(
            self.visibility,
            s.config.client_conf(),
            changelog_kinds(self.tracker.service),
            name=f"{s.name}-visibility-{s.config.instance_id}",
        )
        self.engines = [self.router, self.tracker, self.batch_runner]
        self.desk = ActionDesk(
            s.config.client_conf(),
            AvroSerde(
                SchemaRegistryClient(s.config.registry_conf()),
                auto_register=s.config.auto_register_schemas,
            ),
            definitions,
            models,
            repartition=s.repartition,
            transactional_id=f"{s.name}-api-{s.config.instance_id}",
            batches=self.batches_topic,
        )
        self.server = TraceServer(
            self.visibility,
            decisions=self.visibility.decisions,
            approvals=self.visibility.approvals,
            approvals_of=self.visibility.approvals_of,
            access=access,
            desk=self.desk,
            host=s.http_host,
            port=s.http_port,
            failures=FailedAttempts(s.failed_attempts_limit, s.failed_attempts_window_s),
            clients=ClientKeys(s.trusted_proxies),
            signin=s.signin,
            jaeger_url=s.jaeger_url,
            facts=definitions.facts(),
            batches=self.visibility.batches,
        )
        if s.alertmanager_url:
            notifier = build_notifier(
                models[INCIDENT],
                s.alertmanager_url,
                trace_url=f"{self.public_url}/traces",
                name=f"{s.name}-notifier",
                topic=s.alerts_topic,
            )
            config = self._config("notifier").model_copy(
                update={"guarantee": Guarantee.AT_LEAST_ONCE}
            )
            self.engines.append(Engine(notifier, config))
        self.threads: list[threading.Thread] = []
        self.failed = threading.Event()
        self.misconfigured = False
        self.stopped = threading.Event()

    @property
    def public_url(self) -> str:
        return self.settings.public_url.rstrip("/") or self.server.url

    def _config(self, part: str) -> ServiceConfig:
        base = self.settings.config
        update: dict[str, object] = {"state_dir": base.state_dir / part, "metrics_port": None}
        if part == "router":
            # The tracker's outcomes do not depend on arrival order (its rules see to that), so
            # the router does not wait for inputs: a team's producer frozen inside an open
            # transaction would hold every other team's events back by the whole wait.
            update["input_idle_ms"] = -1
        return base.model_copy(update=update)

    def start(self) -> TrackerApp:
        ensure_batches_topic(
            self.settings.config.client_conf(), self.batches_topic, self.settings.repartition
        )
        for engine in self.engines:
            thread = threading.Thread(
                target=self._run, args=(engine,), name=engine.service.name, daemon=True
            )
            thread.start()
            self.threads.append(thread)
        indexer = threading.Thread(target=self._index, name="visibility-indexer", daemon=True)
        indexer.start()
        self.threads.append(indexer)
        self.server.start()
        if self.settings.metrics_port is not None:
            scrape = CollectorRegistry()
            scrape.register(MergedMetrics([e.metrics.registry for e in self.engines]))
            serve_endpoint(self.settings.metrics_port, self.settings.config.metrics_host, scrape,
                           [engine.health for engine in self.engines])  # fmt: skip
        log.info("saga tracker up", extra={"traces": f"{self.public_url}/traces"})
        return self

    def _run(self, engine: Engine) -> None:
        try:
            engine.run()
        except ConfigurationError as err:  # set up wrong: one line that says what to change
            log.error(str(err), extra={"part": engine.service.name})
            self.misconfigured = True
            self.failed.set()
            self.stop()
        except BaseException:
            log.exception("%s failed; stopping the tracker", engine.service.name)
            self.failed.set()
            self.stop()

    def _index(self) -> None:
        try:
            self.indexer.run()
        except ConfigurationError as err:  # the visibility URL is wrong: one line, exit 2
            log.error(str(err), extra={"part": "visibility"})
            self.misconfigured = True
            self.failed.set()
            self.stop()
        except BaseException:  # never silently: the API would go stale while the pod looks up
            log.exception("the visibility indexer failed; stopping the tracker")
            self.failed.set()
            self.stop()

    @property
    def abandoned(self) -> bool:
        """A part left a client call blocked, or did not stop in time: see `end_if_abandoned`."""
        return any(e.abandoned for e in self.engines) or any(t.is_alive() for t in self.threads)

    def stop(self, timeout: float = 60) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        for engine in self.engines:
            engine.stop()
        self.indexer.stop()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self.server.stop()
        self.desk.close()
        self.visibility.close()
        if self.spans is not None:
            self.spans.close()  # exports what is still batched
