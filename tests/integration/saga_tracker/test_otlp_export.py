"""The tracker's OpenTelemetry export against a real OTLP receiver (Jaeger, from the local stack):
a completed order arrives as one trace, in the trace of the event that placed it, with a span per
step under the instance's span."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.config import ServiceConfig
from choreograph_examples.contracts.inventory import StockReserved
from choreograph_examples.contracts.orders import OrderCompleted
from choreograph_examples.contracts.payments import PaymentAuthorized
from choreograph_examples.contracts.shipping import ShipmentDispatched
from saga_tracker.app import TrackerApp, TrackerSettings
from tests.integration.saga_tracker.helpers import order_placed, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
JAEGER = os.environ.get("CHOREOGRAPH_JAEGER_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("CHOREOGRAPH_OTLP_ENDPOINT", "http://127.0.0.1:4318")


@pytest.fixture(scope="module")
def jaeger() -> str:
    try:
        with urllib.request.urlopen(f"{JAEGER}/api/services", timeout=5):
            return JAEGER
    except OSError as err:
        pytest.fail(f"no Jaeger at {JAEGER} ({err}): run deploy/local/stack.sh start jaeger")


def jaeger_trace(jaeger: str, trace_id: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{jaeger}/api/traces/{trace_id}", timeout=5) as reply:
            found: list[dict[str, Any]] = json.load(reply)["data"]
            return found[0] if found else None
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def test_a_completed_order_is_one_trace_in_the_receiver(
    bootstrap_servers: str,
    registry_url: str,
    jaeger: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = {d: new_topic(f"{d}.events", 2) for d in ("orders", "payments", "inventory")}
    topic["shipping"] = new_topic("shipping.events", 2)
    run = uuid.uuid4().hex[:6]
    settings = TrackerSettings(
        definitions=REPO / "processes",
        schemas=REPO / "schemas/avro",
        inputs=list(topic.values()),
        config=ServiceConfig(
            bootstrap_servers=bootstrap_servers,
            registry_url=registry_url,
            instance_id="t",
            state_dir=tmp_path / "state",
            auto_register_schemas=True,
        ),
        name=f"otel-tracker-{run}",
        repartition=new_topic("saga-tracker.repartition", 2),
        http_port=0,
        open_reads=True,
        otlp_endpoint=OTLP,
    )
    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "shop",
    )
    key = f"T{run}"
    app = TrackerApp(settings).start()
    try:
        placed = publisher.publish(
            order_placed(key, "42.00"),
            key,
            topic=topic["orders"],
        )
        paid = publisher.publish(
            PaymentAuthorized(order_id=key, payment_id="p", amount=Decimal("42.00")),
            key, topic=topic["payments"], parent=placed,
        )  # fmt: skip
        reserved = publisher.publish(
            StockReserved(order_id=key, warehouse="dc"), key, topic=topic["inventory"], parent=paid
        )
        shipped = publisher.publish(
            ShipmentDispatched(order_id=key, tracking_code="t", delivery_address="a"),
            key, topic=topic["shipping"], parent=reserved,
        )  # fmt: skip
        publisher.flush()

        def trace() -> dict[str, Any]:
            url = f"{app.public_url}/api/instances/{placed.correlation_id}"
            try:
                with urllib.request.urlopen(url) as reply:
                    found: dict[str, Any] = json.load(reply)
                    return found
            except urllib.error.HTTPError:
                return {}

        # Topics are not ordered among themselves: the order completes once every step has.
        wait_for(
            lambda: all(
                s.get("status") == "completed" for s in trace().get("steps", {"-": {}}).values()
            ),
            "every step to complete",
            seconds=60,
        )
        publisher.publish(
            OrderCompleted(order_id=key, completed_at=datetime.now(UTC)),
            key, topic=topic["orders"], parent=shipped,
        )  # fmt: skip
        publisher.flush()
        wait_for(lambda: trace().get("status") == "completed", "the order to complete")
    finally:
        app.stop()  # exports what the batch processor still holds
    assert placed.traceparent is not None
    _, trace_id, placed_span, _ = placed.traceparent.split("-")

    found: list[dict[str, Any]] = []
    wait_for(
        lambda: bool(t := jaeger_trace(jaeger, trace_id)) and bool(found.append(t) or True),
        "the instance's trace in Jaeger",
        seconds=30,
    )
    spans = {s["operationName"]: s for s in found[-1]["spans"]}
    root = spans["order-fulfilment"]
    assert root["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": placed_span}
    ]  # under the span of the event that placed the order
    tags = {t["key"]: t["value"] for t in root["tags"]}
    assert tags["choreograph.status"] == "completed"
    assert tags["choreograph.business_key"] == key
    for step in ("payment", "reservation", "shipping"):
        span = spans[f"order-fulfilment.{step}"]
        assert span["references"][0]["spanID"] == root["spanID"]
        step_tags = {t["key"]: t["value"] for t in span["tags"]}
        assert step_tags["choreograph.step.status"] == "completed"
    process = found[-1]["processes"][root["processID"]]
    assert process["serviceName"] == settings.name
