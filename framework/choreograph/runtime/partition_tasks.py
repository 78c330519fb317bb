"""The partition tasks an instance owns: opened with their stores, restored from their
changelogs in one restore, closed on revoke. Opening a partition also reads the poison markers
a crashed process left for it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from choreograph.contracts.serde import AvroSerde
from choreograph.observability.health import Health
from choreograph.observability.metrics import ServiceMetrics
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.poisoned import PoisonedRecords
from choreograph.runtime.task import PartitionTask, refuse_stranded
from choreograph.state.backends import RocksBackend, StateMemory
from choreograph.state.restore import RestoreJob, restore

if TYPE_CHECKING:
    from choreograph.runtime.service import Service

log = logging.getLogger("choreograph.engine")


class PartitionTasks:
    def __init__(
        self,
        service: Service,
        config: ServiceConfig,
        serde: AvroSerde,
        metrics: ServiceMetrics,
        health: Health | None = None,
    ) -> None:
        self.health = health or Health(service.name, config.liveness_bound_s)
        self.service = service
        self.config = config
        self.serde = serde
        self.metrics = metrics
        self.partition_count: int | None = None  # of the inputs, once checked
        self.poisoned = PoisonedRecords(self.directory)
        self.by_partition: dict[int, PartitionTask] = {}
        self.memory = StateMemory.shared(config.state_memory_mb)
        self._gauge = metrics.partitions.labels(service.name)

    def directory(self, partition: int) -> Path:
        return self.config.state_dir / self.service.name / str(partition)

    def get(self, partition: int) -> PartitionTask | None:
        return self.by_partition.get(partition)

    def __iter__(self) -> Iterator[PartitionTask]:
        return iter(list(self.by_partition.values()))

    def __len__(self) -> int:
        return len(self.by_partition)

    def open(self, partitions: set[int]) -> dict[int, PartitionTask]:
        """Open tasks for `partitions` (not yet owned) and restore their stores, all in one
        restore. They are not owned until `own`: a recovery opens before it knows it can seek."""
        opened: dict[int, PartitionTask] = {}
        jobs: list[RestoreJob] = []
        for partition in sorted(partitions - set(self.by_partition)):
            opened[partition], task_jobs = self._open_one(partition)
            jobs += task_jobs
        try:
            self._restore(opened, jobs)
            refuse_stranded(opened.values())  # before any record or timer touches them
        except BaseException:
            for task in opened.values():
                task.close()
            raise
        return opened

    def own(self, opened: dict[int, PartitionTask]) -> None:
        self.by_partition.update(opened)
        self._gauge.set(len(self.by_partition))

    def close(self, partition: int, clean: bool = True) -> None:
        """Its stores hold exactly what was committed, with the changelog offset it covers; a
        clean close also makes that durable."""
        task = self.by_partition.pop(partition, None)
        if task is None:
            return
        task.close(clean)
        self._gauge.set(len(self.by_partition))

    def close_all(self, clean: bool) -> None:
        for partition in list(self.by_partition):
            self.close(partition, clean)

    def _open_one(self, partition: int) -> tuple[PartitionTask, list[RestoreJob]]:
        directory = self.directory(partition)
        self.poisoned.load(partition)
        task = PartitionTask(
            self.service,
            partition,
            lambda store, _p: RocksBackend(directory / store, self.memory),
            self.serde,
            partitions=self.partition_count,
            instance_id=f"{self.config.instance_id}/{os.getpid()}",
        )

        def progress(store: str) -> Callable[[int, int], None]:
            gauge = self.metrics.restore_remaining.labels(self.service.name, store, str(partition))
            return lambda _done, left: gauge.set(left)

        return task, task.state.restore_jobs(progress)

    def _restore(self, tasks: dict[int, PartitionTask], jobs: list[RestoreJob]) -> None:
        started = time.monotonic()
        self.health.restoring = (
            f"the state of partition(s) {', '.join(map(str, sorted(tasks)))} (progress in the "
            "log and choreograph_restore_remaining)"
        )
        try:
            restore(self.config.client_conf(), jobs, tick=self.health.beat)
        finally:
            self.health.restoring = ""
        for task in tasks.values():  # the restore wrote the backends directly
            for store in task.stores.values():
                store.forget_cache()
        for job in jobs:
            name = self.service.name
            self.metrics.restore_remaining.labels(name, job.store, str(job.partition)).set(0)
            self.metrics.restored.labels(name, job.store).inc(job.restored)
        log.info(
            "restored",
            extra={
                "partitions": sorted(tasks),
                "records": sum(j.restored for j in jobs),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
