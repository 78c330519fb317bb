"""Rollouts under load on the real stack. A producer moves to a new compatible version of a
contract mid-run and the consumers regenerate and restart one by one; a new process definition
is released while instances of the old one are open. Every order ends once and as planned."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from confluent_kafka.schema_registry import Schema

from choreograph.testing.servers import Servers
from choreograph_examples.demo import ENDED, list_instances, write_accelerated
from tests.kafka_helpers import registry_client
from tests.reliability.choreography import (
    SPEED,
    env_of,
    log_lines,
    reference_choreography,
    require_local_stack,
    stop,
)
from tests.reliability.order_placed_v2 import OrderPlacedV2, schema


def test_a_contract_rollout_under_load_ends_every_order_once_and_as_planned(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=60) as run:
        first, rest = run.orders[:20], run.orders[20:]
        run.place(first, rate=15).join(60)
        # The shop moves to v2 of OrderPlaced (the registry checks it is compatible).
        registry = registry_client(servers.registry_url)
        registry.register_schema("orders.events-com.acme.orders.OrderPlaced",
                                 Schema(json.dumps(schema()), "AVRO"))  # fmt: skip
        moved = [
            replace(o, order=OrderPlacedV2(**o.order.model_dump(), gift_note=f"for {o.order_id}"))
            for o in rest
        ]
        loader = run.place(moved, rate=8)
        # The consumers regenerate and restart one by one, while v2 orders arrive.
        for team in ("payments", "inventory", "orders"):
            stop(run.fleet, team)
            run.fleet.start(team, [sys.executable, "-m", "tests.reliability.regenerated", team],
                            env_of(servers, tmp_path / team))  # fmt: skip
            time.sleep(2)
        loader.join(120)
        statuses = run.outcomes(seconds=240)
        run.assert_as_planned(statuses)
        run.assert_exactly_once()
        run.fleet.check()
        for team in ("payments", "inventory", "orders"):
            assert log_lines(run.fleet, team, "regenerated: OrderPlaced fields"), team
            assert not log_lines(run.fleet, team, "dead-lettered"), team


def test_a_definition_released_while_instances_are_open_leaves_them_on_theirs(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=40, versions=(1,)) as run:
        payments = stop(run.fleet, "payments")  # instances wait at the payment step
        before, after = run.orders[:20], run.orders[20:]
        run.place(before, rate=15).join(60)

        def listed() -> dict[str, dict[str, object]]:
            mine = {
                s["correlation_id"]: s for s in list_instances(run.api, "process=order-fulfilment")
            }
            return {run.placed[c]: s for c, s in mine.items() if c in run.placed}

        deadline = time.monotonic() + 60
        while len(listed()) < len(before):
            assert time.monotonic() < deadline, "the tracker did not start every instance"
            time.sleep(1)
        open_at_release = [o for o, s in listed().items() if s["status"] not in ENDED]
        # Release v2: the definition beside v1, and the tracker restarted on both.
        write_accelerated(tmp_path / "processes", SPEED, (1, 2))
        tracker = stop(run.fleet, "saga-tracker")
        run.fleet.start("saga-tracker", tracker, env_of(servers, tmp_path / "tracker"))
        run.place(after, rate=15).join(60)
        run.fleet.start("payments", payments, env_of(servers, tmp_path / "payments"))
        statuses = run.outcomes(seconds=240)
        run.assert_as_planned(statuses)
        run.assert_exactly_once()
        versions = {order: s["version"] for order, s in listed().items()}
        assert len(open_at_release) >= 15  # most were open when v2 was released
        assert {versions[o.order_id] for o in before} == {1}  # they ended on theirs
        assert {versions[o.order_id] for o in after} == {2}  # new ones started on v2
        for version, orders in ((1, before), (2, after)):  # and the console lists both
            url = f"{run.api}/traces?process=order-fulfilment&version={version}"
            with urllib.request.urlopen(url, timeout=10) as reply:
                page = reply.read().decode()
            assert f"order-fulfilment v{version}" in page
            assert all(o.order_id in page for o in orders), version
