"""An observer service on the real broker: repartitions other teams' events by correlation id
from their envelopes alone, passing bodies on byte for byte, skipping malformed records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.context import Context, RawEvent
from choreograph.runtime.engine import Engine
from choreograph.runtime.service import Service
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.kafka_helpers import committed_consumer
from tests.workload_harness import engine_thread, sample

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_router_repartitions_by_correlation_id_without_decoding(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    orders, payments = new_topic("orders.events", 3), new_topic("payments.events", 3)
    repartition = new_topic("router.repartition", 3)
    service = Service(
        f"router-{uuid.uuid4().hex[:6]}",
        [orders, payments],
        outputs=[repartition],
        malformed="skip",
    )

    @service.handle_envelopes()
    def route(ctx: Context, raw: RawEvent) -> None:
        ctx.forward(raw, repartition, key=raw.envelope.correlation_id)

    publisher = EventPublisher(
        {"bootstrap.servers": bootstrap_servers},
        AvroSerde(registry_url, auto_register=True),
        "test",
    )
    sent: dict[str, Envelope] = {}
    values: dict[str, bytes] = {}
    for i in range(20):
        order = OrderPlaced(
            order_id=f"o{i}",
            customer_id="c",
            customer_email="e@x",
            total=Decimal("1.00"),
            lines=[OrderLine(sku="s", quantity=1)],
            placed_at=T0,
        )
        payment = PaymentAuthorized(order_id=f"o{i}", payment_id="p", amount=Decimal(1))
        placed = publisher.publish(order, f"o{i}", topic=orders)
        paid = publisher.publish(payment, f"o{i}", topic=payments, parent=placed)
        sent[placed.id], sent[paid.id] = placed, paid
        # Encoding is deterministic: these are the bytes that went out.
        values[placed.id] = publisher.serde.serialize(order, orders)
        values[paid.id] = publisher.serde.serialize(payment, payments)
    publisher.flush()
    raw = Producer({"bootstrap.servers": bootstrap_servers})
    raw.produce(orders, key=b"junk", value=b"no envelope", headers=[("ce_type", b"x.Y")])
    raw.flush(10)

    config = ServiceConfig(
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        instance_id="r",
        state_dir=tmp_path,
    )
    consumer = committed_consumer(bootstrap_servers, repartition)
    got: dict[str, tuple[bytes, Envelope, int, bytes]] = {}
    with engine_thread(Engine(service, config)) as engine:
        deadline = time.monotonic() + 60
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            if msg is not None and msg.error() is None:
                env = Envelope.from_headers(msg.headers())
                got[env.id] = (msg.key(), env, msg.partition(), msg.value())
        while sample(engine, "choreograph_events_total", type="x.Y", outcome="malformed") < 1:
            assert time.monotonic() < deadline, "the malformed record was never counted"
            time.sleep(0.2)
    consumer.close()
    assert set(got) == set(sent)  # each event exactly once
    for event_id, (key, env, _, value) in got.items():
        assert key == env.correlation_id.encode() == sent[event_id].correlation_id.encode()
        assert env == sent[event_id]
        assert value == values[event_id]  # the body went through byte for byte
    by_process: dict[str, set[int]] = {}
    for key, _, partition, _ in got.values():
        by_process.setdefault(key.decode(), set()).add(partition)
    assert all(len(parts) == 1 for parts in by_process.values())  # one process, one partition
