"""Running a shadow: the new build's engine in its own group and state, and beside it a reader
of the live service's outputs and the shadow's, comparing them key by key as they settle.

The shadow starts on the live inputs from their ends (`start="latest"`, the default: it sees
the traffic from now on) or from their beginnings (`"earliest"`: it rebuilds its state from the
whole history, and its outputs are compared with the live outputs of that history). Differences
are counted as metrics on the shadow's metrics port, logged, and kept for the report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter, Gauge

from choreograph.contracts.serde import AvroSerde, SerdeError
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph.runtime.service import Service
from choreograph.runtime.topics import create_missing, partition_counts_if_exist
from choreograph.shadow.build import shadowed
from choreograph.shadow.compare import Comparison, Difference

log = logging.getLogger("choreograph.shadow")
SETTLE_EVERY_S = 1.0


class ShadowRun:
    def __init__(
        self,
        service: Service,
        config: ServiceConfig,
        *,
        ignore: set[str] | None = None,
        settle_s: float = 10.0,
        start: str = "latest",
    ) -> None:
        """`service`: a fresh build of the new code (it becomes the shadow); `config`: the
        settings the live service runs with (the shadow takes its own state folder under it)."""
        if start not in ("latest", "earliest"):
            raise ValueError("start is 'latest' or 'earliest'")
        self.live_name = service.name
        self.start = start
        self.service = shadowed(service)
        self.config = config.model_copy(
            update={
                "state_dir": config.state_dir / "shadow",
                "consumer": {**config.consumer, "auto.offset.reset": start},
            }
        )
        self.engine = Engine(self.service, self.config)
        self.comparison = Comparison(ignore, settle_s)
        self.stopping = threading.Event()
        self.started_ms = 0
        registry = self.engine.metrics.registry
        labels = ["service"]
        self._compared = Counter("choreograph_shadow_keys_compared", "Keys compared.", labels,
                                 registry=registry).labels(self.live_name)  # fmt: skip
        self._differing = Counter(
            "choreograph_shadow_keys_differing",
            "Keys whose outputs differ between the shadow and the live service.",
            labels, registry=registry,
        ).labels(self.live_name)  # fmt: skip
        self._pending = Gauge("choreograph_shadow_keys_pending", "Keys not settled yet.", labels,
                              registry=registry).labels(self.live_name)  # fmt: skip
        self._differing_counted = 0
        self.on_difference: Callable[[Difference], None] = lambda d: log.warning(
            "shadow differs", extra=d.to_json()
        )

    @property
    def outputs(self) -> dict[str, str]:
        """Live output topic -> the shadow's."""
        return dict(self.service.published_as)

    def prepare(self) -> None:
        """Create the shadow's output topics, each with its live topic's partitions."""
        admin = AdminClient(self.config.client_conf())
        live = partition_counts_if_exist(admin, list(self.outputs))
        create_missing(admin, {self.outputs[topic]: n for topic, n in live.items()})

    def run(self, duration_s: float | None = None) -> Comparison:
        """Run until `stop()` (or for `duration_s`), comparing as outputs come; the comparison
        of every key that settled."""
        self.prepare()
        self.started_ms = int(time.time() * 1000)
        failure: list[BaseException] = []

        def engine() -> None:
            try:
                self.engine.run()
            except BaseException as err:
                failure.append(err)
                self.stopping.set()

        thread = threading.Thread(target=engine, name="shadow-engine", daemon=True)
        thread.start()
        try:
            self._compare(time.monotonic() + duration_s if duration_s else None)
        finally:
            self.engine.stop()
            thread.join(60)
        if failure:
            raise failure[0]
        return self.comparison

    def stop(self) -> None:
        self.stopping.set()

    def _compare(self, until: float | None) -> None:
        registry = SchemaRegistryClient(self.config.registry_conf())
        serde = AvroSerde(registry)
        consumer = Consumer(
            {
                **self.config.client_conf(),
                "group.id": f"{self.service.name}-compare",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        sides = {topic: ("live", topic) for topic in self.outputs}
        sides.update({shadow: ("shadow", live) for live, shadow in self.outputs.items()})
        metadata = consumer.list_topics(timeout=30).topics
        # The live outputs to compare with: those of the inputs the shadow reads, all of them
        # when it starts from the beginning, else those written from its start on.
        since = OFFSET_BEGINNING if self.start == "earliest" else self.started_ms
        wanted = [
            TopicPartition(topic, p, since)
            for topic in sides
            if topic in metadata
            for p in metadata[topic].partitions
        ]
        consumer.assign(wanted if since == OFFSET_BEGINNING else
                        consumer.offsets_for_times(wanted, timeout=30))  # fmt: skip
        last_settle = time.monotonic()
        drain_until: float | None = None  # after the run: what is pending may still settle
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if drain_until is None and until is not None and now >= until:
                    drain_until = now + self.comparison.settle_s
                if drain_until is not None and (now >= drain_until or not self.comparison.pending):
                    break
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        self._seen(serde, sides, msg)
                if now - last_settle >= SETTLE_EVERY_S:
                    last_settle = now
                    self._settle(now)
        finally:
            consumer.close()
        self.finish()

    def _seen(self, serde: AvroSerde, sides: dict[str, tuple[str, str]], msg: Any) -> None:
        side, live_topic = sides[msg.topic()]
        headers = dict(msg.headers() or [])
        event_type = (headers.get("ce_type") or b"").decode(errors="replace")
        try:
            decoded = serde.deserialize(msg.value()).event if msg.value() else {}
        except SerdeError as err:
            decoded = {"undecodable": str(err)}
        values = decoded if isinstance(decoded, dict) else decoded.to_avro()
        key = (msg.key() or b"").decode(errors="replace")
        self.comparison.seen(side, live_topic, key, event_type, values, time.monotonic())

    def _settle(self, now: float) -> None:
        before = self.comparison.compared
        for difference in self.comparison.settle(now):
            self.on_difference(difference)
        self._compared.inc(self.comparison.compared - before)
        self._differing.inc(len(self.comparison.differing) - self._differing_counted)
        self._differing_counted = len(self.comparison.differing)
        self._pending.set(len(self.comparison.pending))

    def finish(self) -> Comparison:
        """Settle every key still pending (at the end of a run)."""
        self._settle(float("inf"))
        return self.comparison
