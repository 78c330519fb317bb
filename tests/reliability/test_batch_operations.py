"""A batch operation over 10,000 instances on the real stack, chosen by a query and run from the
command line, survives a kill -9 of the tracker mid-way: after the restart the batch goes on
where its last commit stood, and in the end every chosen instance was acted on exactly once (one
APPLIED audit entry naming the batch, none refused, one pause on its timeline) and none was
skipped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from saga_tracker.access import digest
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.kafka_helpers import committed_consumer
from tests.reliability.test_tracker_replicas import tracker_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
INSTANCES = 10_000
RATE = 400  # actions a second: the batch takes 25 s, the kill comes a few seconds in
TOKEN = "batch-operator-token"


def get(api: str, path: str) -> Any:
    request = urllib.request.Request(f"{api}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def answers(api: str, path: str) -> Any:
    try:
        return get(api, path)
    except OSError:
        return None


def audited(bootstrap: str, registry: str, batch_id: str, expected: int) -> list[dict[str, Any]]:
    """The tracker's audit entries of the batch's actions (read_committed): read until
    `expected` came, and a few seconds more for a doubled one."""
    consumer = committed_consumer(bootstrap, "choreograph.audit")
    serde = AvroSerde(registry)
    found: list[dict[str, Any]] = []
    ends = time.monotonic() + 120
    while time.monotonic() < ends:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        if batch_id.encode() not in msg.value():
            continue  # another batch's, or no batch's: not decoded
        entry = serde.deserialize(msg.value()).event
        fields = entry if isinstance(entry, dict) else entry.to_avro()
        if fields.get("batch_id") == batch_id and fields["recorded_by"] != "saga-tracker-api":
            found.append(fields)
            if len(found) == expected:
                ends = min(ends, time.monotonic() + 5)
    consumer.close()
    return found


def tracker_env(
    bootstrap: str, registry: str, new_topic: Callable[..., str], tmp_path: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a tracker of its own (topics, definitions, an operator's token), and
    the domain topics it follows."""
    domains = ("orders", "payments", "inventory", "shipping")
    topics = {d: new_topic(f"{d}.events", 2) for d in domains}
    repartition = new_topic("saga-tracker.repartition", 4)
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes/order-fulfilment.v1.yaml").write_text(
        (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    )
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{name: nora, role: operator, sha256: {digest(TOKEN)}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "CHOREOGRAPH_ALERTMANAGER_URL"}
    env.update(
        CHOREOGRAPH_BOOTSTRAP=bootstrap,
        CHOREOGRAPH_REGISTRY_URL=registry,
        SAGA_TRACKER_REPARTITION=repartition,
        SAGA_TRACKER_DEFINITIONS=str(tmp_path / "processes"),
        SAGA_TRACKER_SCHEMAS=str(REPO / "schemas/avro"),
        SAGA_TRACKER_INPUTS=",".join(topics.values()),
        SAGA_TRACKER_TOKENS=str(tokens),
        PYTHONPATH=f"{REPO}:{REPO / 'framework'}:{REPO / 'services'}",
    )
    return env, topics


def test_a_batch_over_ten_thousand_instances_survives_a_kill_of_the_tracker(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"batches-{run}"
    env, topics = tracker_env(bootstrap_servers, registry_url, new_topic, tmp_path)
    args = ["run", "--auto-register-schemas"]
    with tracker_process(name, "a", tmp_path, env, args) as (first, api, log):
        wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API", 120)
        publisher = EventPublisher(
            {"bootstrap.servers": bootstrap_servers, "linger.ms": 20},
            AvroSerde(registry_url, auto_register=True),
            "shop",
        )
        started = time.monotonic()
        for i in range(INSTANCES):
            order = f"B{run}-{i}"
            publisher.publish(order_placed(order, "10.00"), order, topic=topics["orders"])
        publisher.flush()
        published_s = time.monotonic() - started

        def open_instances() -> int:
            totals = answers(api, "/api/instances/totals?process=order-fulfilment")
            return sum(r["count"] for r in totals["by_status"]) if totals else 0

        wait_for(lambda: open_instances() == INSTANCES, "every instance indexed", 180)
        tracked_s = time.monotonic() - started

        # The batch, from the command line as on-call runs it: dry run, then the run.
        cli = [sys.executable, "-m", "choreograph.cli.main", "instances", "pause",
               "--process", "order-fulfilment", "--status", "running", "--tracker", api,
               "--token", TOKEN, "--reason", "payments deploy", "--rate", str(RATE)]  # fmt: skip
        dry = subprocess.run([*cli, "--dry-run", "--format", "json"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["count"] == INSTANCES
        asked = subprocess.run([*cli, "--yes", "--format", "json"], env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        batch_id = json.loads(asked.stdout.strip().splitlines()[-1])["batch_id"]

        def batch() -> dict[str, Any] | None:
            found = answers(api, f"/api/batches/{batch_id}")
            return found if isinstance(found, dict) and "status" in found else None

        wait_for(
            lambda: (b := batch()) is not None and b["dispatched"] >= INSTANCES // 4,
            "a quarter of the batch dispatched",
            60,
        )
        at_kill = batch()  # as last indexed: the runner has gone on a little since
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert at_kill is not None and at_kill["status"] == "running", at_kill

    with tracker_process(name, "a", tmp_path, env, args) as (second, api, log):
        wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API again", 120)
        wait_for(
            lambda: (b := batch()) is not None and b["status"] == "done",
            "the batch to end after the restart",
            180,
        )
        done = batch()
        assert done is not None
        assert (done["total"], done["dispatched"], done["applied"], done["refused"]) == (
            INSTANCES, INSTANCES, INSTANCES, 0
        ), done  # fmt: skip
        paused = get(api, "/api/instances/totals?process=order-fulfilment&paused=true")
        assert sum(r["count"] for r in paused["by_status"]) == INSTANCES
        entries = audited(bootstrap_servers, registry_url, batch_id, INSTANCES)
        outcomes = Counter(e["outcome"] for e in entries)
        assert outcomes == Counter({"APPLIED": INSTANCES}), outcomes
        per_instance = Counter(e["target"] for e in entries)
        assert len(per_instance) == INSTANCES and set(per_instance.values()) == {1}
        assert {e["actor"] for e in entries} == {"nora"}
        for summary in random.sample(get(api, "/api/instances?limit=500"), 20):
            trace = get(api, f"/api/instances/{summary['correlation_id']}")
            pauses = [e for e in trace["timeline"] if e["kind"] == "operator"]
            assert len(pauses) == 1 and pauses[0]["note"].startswith("pause by nora")
        assert second.poll() is None, log.read_text()[-3000:]
        print(
            f"{INSTANCES} instances published in {published_s:.1f} s, tracked and indexed in "
            f"{tracked_s:.1f} s; tracker killed with {at_kill['dispatched']} of {INSTANCES} "
            f"dispatched; after the restart the batch ended with each instance paused once"
        )


def test_ended_instances_leave_the_store_its_changelog_and_the_api_after_their_retention(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"retention-{run}"
    env, topics = tracker_env(bootstrap_servers, registry_url, new_topic, tmp_path)
    args = ["run", "--auto-register-schemas", "--retention", "3s"]
    with tracker_process(name, "a", tmp_path, env, args) as (tracker, api, log):
        wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API", 120)
        publisher = EventPublisher(
            {"bootstrap.servers": bootstrap_servers},
            AvroSerde(registry_url, auto_register=True),
            "shop",
        )
        orders = [f"T{run}-{i}" for i in range(30)]
        for order in orders:
            publisher.publish(order_placed(order, "5.00"), order, topic=topics["orders"])
        publisher.flush()
        wait_for(lambda: len(answers(api, "/api/instances?limit=100") or []) == 30, "tracking")
        kept = get(api, "/api/instances?limit=100")[0]["correlation_id"]
        hold = urllib.request.Request(
            f"{api}/api/instances/{kept}/actions",
            data=json.dumps({"action": "hold", "reason": "case 7"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(hold, timeout=10).status == 202
        cli = [sys.executable, "-m", "choreograph.cli.main", "instances", "cancel", "--all",
               "--reason", "test orders", "--yes", "--wait", "--tracker", api,
               "--token", TOKEN, "--rate", "100"]  # fmt: skip
        cancelled = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        assert cancelled.returncode == 0, cancelled.stderr
        assert "done: 30 dispatched, 30 applied, 0 refused of 30" in cancelled.stdout
        wait_for(
            lambda: [s["correlation_id"] for s in get(api, "/api/instances?limit=100")] == [kept],
            "every ended instance but the one on hold to leave the API",
            60,
        )
        tombstones = 0
        consumer = committed_consumer(bootstrap_servers, f"{name}.instances.changelog")
        ends = time.monotonic() + 15
        while time.monotonic() < ends and tombstones < 29:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.value() is None:
                tombstones += 1
        consumer.close()
        assert tombstones == 29  # deleted from the tracker's store: its changelog says so
        assert tracker.poll() is None, log.read_text()[-3000:]
