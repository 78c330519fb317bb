"""The reference choreography with a Java producer and a Java consumer, on the real stack.

A Java shop (the official Kafka client with its default partitioner, the CloudEvents Java SDK in
binary mode with only the required attributes, Apache Avro with the registry's schema) places
orders, and they end as planned. Then a Java consumer reads every record the services and the
tracker wrote for them and checks each with the CloudEvents SDK's Kafka deserializer and Apache
Avro against the registry. The Java module lives in tests/interop/java and is built by
deploy/local/interop.sh with Maven."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from choreograph.runtime.partitioning import partition_for
from choreograph.testing.servers import Servers
from tests.reliability.choreography import reference_choreography, require_local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "deploy/local/interop.sh"
WRITTEN = [  # every topic the services and the tracker write domain events, commands or traces to
    "orders.events",
    "payments.events",
    "inventory.events",
    "shipping.events",
    "payments.commands",
    "inventory.commands",
    "choreograph.traces",
    "choreograph.alerts",
]


def java(program: str, *args: str) -> str:
    done = subprocess.run(
        ["bash", str(INTEROP), "run", program, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_orders_from_java_complete_and_every_record_reads_in_java(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=40, seed=21) as run:
        kinds = {"ok": 8, "declined": 3, "out_of_stock": 3}  # at most, of each
        chosen = []
        for kind, n in kinds.items():
            chosen += [o for o in run.orders if o.kind == kind][:n]
        assert {o.kind for o in chosen} == set(kinds), "the plan has every kind of order"
        run.orders = chosen
        orders = tmp_path / "orders.json"
        orders.write_text(
            json.dumps(
                [
                    {
                        **o.order.model_dump(mode="json", include={"order_id", "customer_id",
                                                                   "customer_email", "lines"}),
                        "total": str(o.order.total),
                        "placed_at_ms": int(o.order.placed_at.timestamp() * 1000),
                    }
                    for o in chosen
                ]
            )
        )  # fmt: skip
        placed = [
            json.loads(line)
            for line in java(
                "ProduceOrders", servers.bootstrap, servers.registry_url, "orders.events",
                str(orders),
            ).splitlines()
        ]  # fmt: skip
        assert len(placed) == len(chosen)
        # The Java client's default partitioner and choreograph's agree on every key.
        assert [p["partition"] for p in placed] == [partition_for(p["order_id"], 3) for p in placed]
        # Only the required attributes: each order is its own process instance, by its key.
        run.placed.update({p["order_id"]: p["order_id"] for p in placed})
        statuses = run.outcomes(seconds=180)
        run.assert_as_planned(statuses)
        run.fleet.check()

    report = json.loads(
        java("CheckRecords", servers.bootstrap, servers.registry_url, f"-{run.run}-", *WRITTEN)
    )
    print(json.dumps(report, indent=1))
    for topic in WRITTEN:
        assert report[topic]["failed"] == 0, (topic, report[topic]["failures"])
    checked = {topic: report[topic]["records"] for topic in WRITTEN}
    for topic in ("orders.events", "payments.events", "inventory.events", "shipping.events",
                  "payments.commands", "choreograph.traces"):  # fmt: skip
        assert checked[topic] > 0, (topic, checked)
