"""Open instances move to a newer definition version on the real stack, the safe ones only.

Orders run on v1 of order-fulfilment, whose reservation deadline is ten minutes. v2 is released
with a deadline of a few seconds. Orders whose reservation has run longer than that are not
safe to move (v2's deadline has passed for them already); orders still waiting for their payment
are. `choreograph processes migrate --dry-run` says which is which and why; the run moves the
safe ones as one batch, each with its audit entry and decision record. The moved orders then run
as v2 says (their reservation times out after v2's deadline and is undone); the others stay on v1,
untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.reliability.test_batch_operations import TOKEN, answers, audited, get, tracker_env
from tests.reliability.test_tracker_replicas import tracker_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
V2_DEADLINE_S = 6
SAFE, NOT_SAFE = 4, 3


def v2_text() -> str:
    v1 = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    reservation = "    deadline: 10m\n    on_timeout: compensate\n    compensation:\n" \
        "      command: com.acme.inventory.ReleaseStock"  # fmt: skip
    assert reservation in v1
    return v1.replace("version: 1", "version: 2").replace(
        reservation, reservation.replace("10m", f"{V2_DEADLINE_S}s")
    )


def test_safe_instances_move_to_the_new_version_and_end_as_it_says(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"migrations-{run}"
    env, topics = tracker_env(bootstrap_servers, registry_url, new_topic, tmp_path)
    args = ["run", "--auto-register-schemas"]
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )
    waiting = [f"W{run}-{i}" for i in range(SAFE)]  # payment running: safe to move
    reserving = [f"R{run}-{i}" for i in range(NOT_SAFE)]  # reservation running: past v2's
    placed: dict[str, Any] = {}

    def pay(order: str) -> None:
        paid = PaymentAuthorized(order_id=order, payment_id=f"p-{order}", amount=Decimal("10.00"))
        publisher.publish(paid, order, topic=topics["payments"], parent=placed[order])

    with tracker_process(name, "a", tmp_path, env, args) as (_, api, _log):
        wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API", 120)
        for order in waiting + reserving:
            placed[order] = publisher.publish(
                order_placed(order, "10.00"), order, topic=topics["orders"]
            )
        for order in reserving:
            pay(order)
        publisher.flush()

        def running_on(version: int) -> set[str]:
            found = answers(api, f"/api/instances?limit=100&version={version}&status=running")
            return {i["business_key"] for i in found or []}

        wait_for(lambda: running_on(1) == set(waiting + reserving), "every order on v1", 60)

    # v2 released: the tracker restarts with both versions (new orders would start on v2).
    (tmp_path / "processes/order-fulfilment.v2.yaml").write_text(v2_text())
    time.sleep(V2_DEADLINE_S + 1)  # the reserving orders are past v2's deadline by now
    with tracker_process(name, "a", tmp_path, env, args) as (tracker, api, log):
        wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API again", 120)
        cli = [sys.executable, "-m", "choreograph.cli.main", "processes", "migrate",
               "order-fulfilment", "--to", "2", "--tracker", api, "--token", TOKEN,
               "--reason", "reservations must answer in seconds"]  # fmt: skip
        dry = subprocess.run([*cli, "--dry-run", "--format", "json"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)
        assert (plan["chosen"], plan["safe"], plan["not_safe"]) == (
            SAFE + NOT_SAFE, SAFE, NOT_SAFE
        ), plan  # fmt: skip
        verdicts = {v["correlation_id"]: v for v in plan["instances"]}
        by_order = {order: verdicts[placed[order].correlation_id] for order in placed}
        for order in waiting:
            assert by_order[order]["safe"], by_order[order]
        for order in reserving:
            verdict = by_order[order]
            assert not verdict["safe"]
            assert verdict["reason"].startswith(
                "deadline already passed under the new rules: reservation"
            ), verdict
        moved = subprocess.run([*cli, "--yes", "--wait"], env=env, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
        assert moved.returncode == 0, moved.stderr + log.read_text()[-3000:]
        assert f"done: {SAFE} dispatched, {SAFE} applied, 0 refused of {SAFE}" in moved.stdout
        assert f"{NOT_SAFE} not safe: left on their version" in moved.stderr
        batch_id = next(b["batch_id"] for b in get(api, "/api/batches") if b["action"] == "migrate")
        entries = audited(bootstrap_servers, registry_url, batch_id, SAFE)
        assert Counter(e["outcome"] for e in entries) == Counter({"APPLIED": SAFE})

        def instance(order: str) -> dict[str, Any]:
            return dict(get(api, f"/api/instances/{placed[order].correlation_id}"))

        wait_for(lambda: all(instance(o)["version"] == 2 for o in waiting), "the moves", 60)
        for order in waiting:
            [note] = [e["note"] for e in instance(order)["timeline"] if e["kind"] == "migration"]
            assert note.startswith("migrated v1 -> v2 by nora: reservations must answer")
        # The moved orders now run as v2 says: their reservation times out after v2's deadline
        # and is undone; the orders left on v1 keep its ten minutes.
        paid_at = time.monotonic()
        for order in waiting:
            pay(order)
        publisher.flush()
        wait_for(
            lambda: all(instance(o)["status"] == "compensating" for o in waiting),
            "the moved orders' reservations to time out under v2",
            60,
        )
        took = time.monotonic() - paid_at
        assert took >= V2_DEADLINE_S - 1, took
        for order in waiting:
            reservation = instance(order)["steps"]["reservation"]
            assert reservation["status"] == "compensating", reservation
        for order in reserving:
            left = instance(order)
            assert (left["version"], left["status"]) == (1, "running"), left
        assert tracker.poll() is None, log.read_text()[-3000:]
