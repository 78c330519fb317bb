"""Feeds the visibility store from the tracker's committed changelogs.

The changelogs of the tracker's `instances`, `decisions` and `approvals` stores carry every
committed change of an instance (its start included, with the whole timeline), so the read side
sees what a restore would see. They are read `read_committed`, by assignment (no consumer group:
the store's own positions say where to go on), and applied in batches, one SQL transaction each.

A broker or database that is away is a pause: the batch in hand is applied again until the
store takes it, and nothing is skipped. Several indexers may feed one shared database (one per
replica): rows only ever move forward, so they agree.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from choreograph import Service
from choreograph.state.store import decode_value
from saga_tracker.visibility.store import ChangelogRecord, VisibilityStore, VisibilityUnavailable

log = logging.getLogger("saga_tracker.visibility")
FED_STORES = ("instances", "decisions", "approvals")
BATCH_STORE = "batches"  # the batch runner's, for the batches' progress
BATCH = 2000
POLL_S = 0.1  # the most a change waits in the broker before the indexer asks for it
REDISCOVER_S = 30.0  # look for new changelog partitions this often


def changelog_kinds(tracker: Service | str) -> dict[str, str]:
    """Changelog topic -> what its records are, from the tracker's service (or its name: the
    UI does not build the tracker), named as the service names its stores' changelogs; and
    the batch runner's (`<tracker>-batches`)."""
    service = tracker if isinstance(tracker, Service) else Service(tracker, ["-"])
    runner = Service(f"{service.name}-batches", ["-"])
    kinds = {service.changelog_topic(store): store for store in FED_STORES}
    return {**kinds, runner.changelog_topic(BATCH_STORE): BATCH_STORE}


class Indexer:
    def __init__(
        self,
        store: VisibilityStore,
        client_conf: dict[str, Any],
        kinds: dict[str, str],
        *,
        name: str = "saga-tracker-visibility",
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.batch = batch
        self.client_conf = client_conf
        self.name = name
        self.stopping = threading.Event()
        self.indexed = 0  # records applied since start
        self.assigned: set[tuple[str, int]] = set()
        self._consumer: Consumer | None = None
        self._last_discovery = 0.0
        # Set when a read found nothing new on any changelog: every committed change is indexed.
        self.at_end = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        self._consumer = Consumer(
            {
                **self.client_conf,
                "group.id": self.name,  # never joined or committed: assignment only
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
            }
        )
        try:
            while not self.stopping.is_set():
                self.step()
        finally:
            self._consumer.close()

    def step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        if time.monotonic() - self._last_discovery > REDISCOVER_S or not self.assigned:
            self._discover(consumer)
            if not self.assigned:
                self.stopping.wait(1.0)
                return
        messages = consumer.consume(self.batch, POLL_S)
        records: list[ChangelogRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.info("changelog read waits", extra={"error": str(err)})
                continue
            raw = msg.value()
            key = msg.key()
            records.append(
                ChangelogRecord(
                    msg.topic() or "",
                    msg.partition() or 0,
                    msg.offset() or 0,
                    key.decode() if isinstance(key, bytes) else str(key),
                    decode_value(raw) if raw is not None else None,
                    raw,
                )
            )
        if records:
            self.at_end.clear()
            self._apply(records)
        elif not messages:
            self._check_end(consumer)

    def _apply(self, records: list[ChangelogRecord]) -> None:
        delay = 0.2
        while True:
            try:
                self.store.apply(self.kinds, records)
                self.indexed += len(records)
                return
            except VisibilityUnavailable as err:
                if self.stopping.is_set():  # not applied: the next start reads it again
                    return
                log.warning("visibility store away; batch kept", extra={"error": str(err)})
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _discover(self, consumer: Consumer) -> None:
        """Assign every partition of the fed changelogs, from where the store stands."""
        self._last_discovery = time.monotonic()
        try:
            metadata = AdminClient(self.client_conf).list_topics(timeout=5)
            positions = self.store.positions()
        except (KafkaException, VisibilityUnavailable) as err:
            log.info("changelog discovery waits", extra={"error": str(err)})
            return
        new: list[TopicPartition] = []
        for topic in self.kinds:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                continue  # the tracker has not created it yet
            for partition in found.partitions:
                if (topic, partition) in self.assigned:
                    continue
                offset = positions.get((topic, partition), OFFSET_BEGINNING)
                new.append(TopicPartition(topic, partition, offset))
                self.assigned.add((topic, partition))
        if new:
            consumer.incremental_assign(new)

    def _check_end(self, consumer: Consumer) -> None:
        """Nothing came: is every assigned changelog read to its end (markers included)?"""
        try:
            positions = consumer.position([TopicPartition(t, p) for t, p in self.assigned])
            for tp in positions:
                _, high = consumer.get_watermark_offsets(tp, timeout=5)
                if tp.offset < 0 or tp.offset < high:
                    # A partition with nothing to read since its start position has no position:
                    # it is at its end when the store's own position is.
                    stored = self.store.positions().get((tp.topic, tp.partition), 0)
                    if tp.offset >= 0 or stored < high - 1:
                        return
        except (KafkaException, VisibilityUnavailable):
            return
        self.at_end.set()
