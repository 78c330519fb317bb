"""OpenTelemetry export against a real OTLP receiver (Jaeger, from the local stack): the tracker's
running order shows its steps as they end, and the completed order is one trace, in the trace of
the event that placed it, with a span per step under the instance's span; a team service's
handled record is a span in the trace of the event it handled, and its fired timer a span too."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph import Context, Service
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import Engine
from choreograph_examples.contracts.inventory import StockReserved
from choreograph_examples.contracts.orders import OrderCompleted, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from choreograph_examples.contracts.shipping import ShipmentDispatched
from saga_tracker.app import TrackerApp, TrackerSettings
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
JAEGER = os.environ.get("CHOREOGRAPH_JAEGER_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("CHOREOGRAPH_OTLP_ENDPOINT", "http://127.0.0.1:4318")
STEPS = ("payment", "reservation", "shipping")


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
        # Still running: its steps are in the receiver already, the instance's own span not.
        assert placed.traceparent is not None
        running_trace = placed.traceparent.split("-")[1]

        def steps_seen() -> set[str]:
            found = jaeger_trace(jaeger, running_trace)
            return {s["operationName"] for s in (found or {}).get("spans", [])}

        wait_for(
            lambda: steps_seen() >= {f"order-fulfilment.{s}" for s in STEPS},
            "the running instance's steps in Jaeger",
            seconds=30,
        )
        assert "order-fulfilment" not in steps_seen() and trace()["status"] == "running"
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

    def whole() -> bool:  # the steps came before: wait for the instance's own span
        got = jaeger_trace(jaeger, trace_id)
        found.append(got or {})
        return any(s["operationName"] == "order-fulfilment" for s in (got or {}).get("spans", []))

    wait_for(whole, "the instance's trace in Jaeger", seconds=30)
    spans = {s["operationName"]: s for s in found[-1]["spans"]}
    assert len(found[-1]["spans"]) == 1 + len(STEPS)  # each step exported once
    root = spans["order-fulfilment"]
    assert root["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": placed_span}
    ]  # under the span of the event that placed the order
    tags = {t["key"]: t["value"] for t in root["tags"]}
    assert tags["choreograph.status"] == "completed"
    assert tags["choreograph.business_key"] == key
    for step in STEPS:
        span = spans[f"order-fulfilment.{step}"]
        assert span["references"][0]["spanID"] == root["spanID"]
        step_tags = {t["key"]: t["value"] for t in span["tags"]}
        assert step_tags["choreograph.step.status"] == "completed"
    process = found[-1]["processes"][root["processID"]]
    assert process["serviceName"] == settings.name


def test_a_team_service_exports_a_span_per_handled_record_and_fired_timer(
    bootstrap_servers: str,
    registry_url: str,
    jaeger: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    orders = new_topic("orders.events", 1)
    name = f"otel-service-{uuid.uuid4().hex[:6]}"
    service = Service(name, [orders])

    @service.handle(OrderPlaced, topic=orders)
    def placed(ctx: Context, event: OrderPlaced) -> None:
        ctx.schedule("reminder", timedelta(seconds=1))

    @service.timer("reminder")
    def remind(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    config = ServiceConfig(bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                           state_dir=tmp_path / "svc", otlp_endpoint=OTLP)  # fmt: skip
    publisher = EventPublisher({"bootstrap.servers": bootstrap_servers},
                               AvroSerde(registry_url, auto_register=True), "shop")  # fmt: skip
    sent = publisher.publish(order_placed("S-1", "9.00"), "S-1", topic=orders)
    publisher.flush()
    assert sent.traceparent is not None
    _, trace_id, parent_span, _ = sent.traceparent.split("-")
    with engine_thread(Engine(service, config)) as engine:
        wait_for(lambda: engine.metrics.timers_fired.labels(name)._value.get() >= 1,
                 "the record handled and its timer fired", seconds=60)  # fmt: skip
    # The engine's stop exported what was batched.
    found: list[dict[str, Any]] = []
    wait_for(
        lambda: bool(t := jaeger_trace(jaeger, trace_id)) and bool(found.append(t) or True),
        "the handled record's span in Jaeger",
        seconds=30,
    )
    [span] = [s for s in found[-1]["spans"] if s["operationName"].startswith("handle ")]
    assert span["operationName"] == "handle com.acme.orders.OrderPlaced"
    assert span["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_span}
    ]
    tags = {t["key"]: t["value"] for t in span["tags"]}
    assert (tags["choreograph.key"], tags["choreograph.outcome"]) == ("S-1", "ok")
    assert found[-1]["processes"][span["processID"]]["serviceName"] == name

    def timer_spans() -> list[Any]:
        url = f"{jaeger}/api/traces?service={name}&operation=timer%20reminder&limit=5"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return [s for t in json.load(reply)["data"] for s in t["spans"]]

    wait_for(lambda: bool(timer_spans()), "the fired timer's span in Jaeger", seconds=30)
    timer_tags = {t["key"]: t["value"] for t in timer_spans()[0]["tags"]}
    assert (timer_tags["choreograph.key"], timer_tags["choreograph.outcome"]) == ("S-1", "ok")
