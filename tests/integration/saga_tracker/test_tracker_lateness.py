"""Deadlines fire on time while the tracker is busy: a cohort of paid orders whose reservation
deadlines come due while thousands of other instances are still being loaded and stay open."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.tracker import lateness_buckets, load, quantile

from choreograph.process.definition import parse_definition
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from saga_tracker.definitions import Definitions, command_and_incident_models
from saga_tracker.service import build_tracker
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
COHORT, OPEN, DEADLINE_S = 500, 30_000, 3


def test_deadlines_fire_within_a_second_with_many_open_instances(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("saga-tracker.repartition", 2)
    load(bootstrap_servers, registry_url, topic, COHORT, OPEN)
    text = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    text = text.replace("deadline: 10m\n    on_timeout", f"deadline: {DEADLINE_S}s\n    on_timeout")
    service = build_tracker(
        Definitions([parse_definition(text, "d.yaml").definition]),
        command_and_incident_models(REPO / "schemas/avro"),
        name=f"tracker-{uuid.uuid4().hex[:6]}",
        repartition=topic,
    )
    config = ServiceConfig(
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        instance_id="t",
        state_dir=tmp_path,
        auto_register_schemas=True,
    )
    with engine_thread(Engine(service, config)) as engine:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            buckets = lateness_buckets(engine)
            if buckets and buckets[-1][1] >= COHORT:
                break
            time.sleep(0.2)
        tracked = sum(
            1
            for task in list(engine.tasks.values())
            for _ in task.stores["instances"].backend.scan()
        )
    assert buckets[-1][1] == COHORT, "every cohort deadline fires once"
    assert quantile(buckets, 0.99) <= 1.0, f"p99 lateness over 1 s: {buckets}"
    assert tracked >= 10_000  # many instances were open when the deadlines came due
