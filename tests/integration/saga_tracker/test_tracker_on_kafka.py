"""The saga tracker on the real broker: correlation through the repartition topic, a saga that
completes, one that times out and is compensated, and a deadline that passes while the tracker is
down and still fires when it is back."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.event import Event
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.process.definition import parse_definition
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph_examples.contracts.inventory import StockReleased, StockReserved
from choreograph_examples.contracts.orders import OrderCompleted, OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentRefunded
from choreograph_examples.contracts.shipping import ShipmentDispatched
from saga_tracker.definitions import Definitions, command_and_incident_models
from saga_tracker.service import build_router, build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.integration.saga_tracker.helpers import collect, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 5, 1, tzinfo=UTC)
REFERENCE = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
# The reference definition with the reservation deadline cut to 2 s.
DEFINITION = REFERENCE.replace("deadline: 10m\n    on_timeout", "deadline: 2s\n    on_timeout")


def placed(key: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=key,
        customer_id="c",
        customer_email="e@x",
        total=Decimal("9.99"),
        lines=[OrderLine(sku="s", quantity=1)],
        placed_at=T0,
    )


def test_tracker_correlates_completes_compensates_and_survives_a_restart(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = {
        d: new_topic(f"{d}.events", 3) for d in ("orders", "payments", "inventory", "shipping")
    }
    repartition = new_topic("saga-tracker.repartition", 3)
    run = uuid.uuid4().hex[:6]
    definitions = Definitions([parse_definition(DEFINITION, "d.yaml").definition])
    models = command_and_incident_models(REPO / "schemas/avro")

    def engine(service: Any, instance: str) -> Engine:
        config = ServiceConfig(
            bootstrap_servers=bootstrap_servers,
            registry_url=registry_url,
            instance_id=instance,
            state_dir=tmp_path / instance,
            auto_register_schemas=True,
        )
        return Engine(service, config)

    router = engine(
        build_router(
            definitions, list(topic.values()), name=f"router-{run}", repartition=repartition
        ),
        "r",
    )

    def tracker() -> Engine:
        service = build_tracker(definitions, models, name=f"tracker-{run}", repartition=repartition)
        return engine(service, "t")

    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )

    def saga(key: str, *events: tuple[str, Event]) -> str:
        first = publisher.publish(placed(key), key, topic=topic["orders"])
        for domain, event in events:
            publisher.publish(event, key, topic=topic[domain], parent=first)
        publisher.flush()
        return first.correlation_id

    def paid(key: str) -> tuple[str, Event]:
        return "payments", PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal(1))

    with engine_thread(router):
        with engine_thread(tracker()):
            done = saga(
                f"A{run}",
                paid(f"A{run}"),
                ("inventory", StockReserved(order_id=f"A{run}", warehouse="w")),
                (
                    "shipping",
                    ShipmentDispatched(order_id=f"A{run}", tracking_code="t", delivery_address="x"),
                ),
                ("orders", OrderCompleted(order_id=f"A{run}", completed_at=T0)),
            )
            stuck = saga(f"B{run}", paid(f"B{run}"))
            late = saga(f"C{run}", paid(f"C{run}"))
            time.sleep(1.0)  # C's reservation deadline is set; then the tracker goes down
        time.sleep(3.0)  # C's deadline passes while the tracker is down
        with engine_thread(tracker()) as back:
            refunds = collect(
                bootstrap_servers,
                registry_url,
                "payments.commands",
                {done, stuck, late},
                seconds=12,
            )
            releases = collect(  # the timed-out reservations were in doubt: released too
                bootstrap_servers,
                registry_url,
                "inventory.commands",
                {done, stuck, late},
                seconds=3,
                until=lambda found: len(found) >= 2,
            )
            alerts = collect(
                bootstrap_servers,
                registry_url,
                "choreograph.alerts",
                {done, stuck, late},
                seconds=3,
            )
            for env, _ in refunds:  # payments confirms each refund, as its team would
                key = env.subject
                publisher.publish(
                    PaymentRefunded(order_id=key, reason="refunded"),
                    key,
                    topic=topic["payments"],
                    correlation_id=env.correlation_id,
                )
            for env, _ in releases:  # and inventory each release
                key = env.subject
                publisher.publish(
                    StockReleased(order_id=key),
                    key,
                    topic=topic["inventory"],
                    correlation_id=env.correlation_id,
                )
            publisher.flush()
            server = TraceServer(committed_instances(lambda: back.tasks.values())).start()
            statuses: dict[str, str] = {}

            def read_statuses() -> bool:
                url = f"{server.url}/api/instances?process=order-fulfilment"
                with urllib.request.urlopen(url) as r:
                    statuses.update({i["correlation_id"]: i["status"] for i in json.load(r)})
                return all(statuses.get(c) == "compensated" for c in (stuck, late))

            try:
                wait_for(read_statuses, "both refunds to be confirmed", seconds=20)
            finally:
                server.stop()

    refunded = {env.correlation_id: event for env, event in refunds}
    assert set(refunded) == {stuck, late}  # A completed: nothing to compensate
    assert {env.correlation_id for env, _ in releases} == {stuck, late}
    assert refunded[stuck]["order_id"] == f"B{run}"
    assert "reservation timed out" in refunded[stuck]["reason"]
    raised = {(env.correlation_id, ev["status"], ev["step"]) for env, ev in alerts}
    assert raised == {(stuck, "RAISED", "reservation"), (late, "RAISED", "reservation")}
    assert all(ev["owner"] == "orders-oncall" and ev["severity"] == "critical" for _, ev in alerts)
    # The trace API reads the tracker's committed state after the restart.
    assert {c: statuses.get(c) for c in (done, stuck, late)} == {
        done: "completed",
        stuck: "compensated",
        late: "compensated",
    }
