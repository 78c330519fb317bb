"""Envelope handlers see every record without decoding it; forward re-keys it unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from choreograph.runtime.context import Context, RawEvent
from choreograph.runtime.service import Service
from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ORDER = OrderPlaced(
    order_id="o-1",
    customer_id="c",
    customer_email="e@x",
    total=Decimal("5.00"),
    lines=[OrderLine(sku="s", quantity=1)],
    placed_at=T0,
)
CE = [("ce_specversion", b"1.0"), ("ce_id", b"x1"), ("ce_source", b"s"), ("ce_type", b"com.acme.X")]


def router(malformed: str = "skip") -> Service:
    service = Service(
        "router",
        ["orders.events", "payments.events"],
        outputs=["router.repartition"],
        stores=["seen"],
        malformed=malformed,  # type: ignore[arg-type]
    )

    @service.handle_envelopes()
    def repartition(ctx: Context, raw: RawEvent) -> None:
        seen = ctx.store("seen")
        seen.put(raw.envelope.type, seen.get(raw.envelope.type, 0) + 1)
        ctx.forward(raw, "router.repartition", key=raw.envelope.correlation_id)

    return service


def test_every_type_is_seen_and_forwarded_by_correlation_id_unchanged() -> None:
    kit = TestKit(router(), start=T0)
    placed = kit.send(ORDER, key="o-1", correlation_id="process-9")
    kit.send(
        PaymentAuthorized(order_id="o-1", payment_id="p", amount=Decimal(5)),
        key="o-1",
        parent=placed,
    )
    assert [(e.topic, e.key) for e in kit.outputs] == [("router.repartition", "process-9")] * 2
    first, second = kit.outputs
    assert first.envelope == placed  # same headers: the envelope went through untouched
    assert (
        first.event["order_id"] == "o-1"
    )  # decoded by its writer schema: the value is the original
    assert second.envelope.causation_id == placed.id
    assert kit.store("seen").get("com.acme.orders.OrderPlaced") == 1
    assert kit.outcomes == ["ok", "ok"]


def test_malformed_records_are_counted_and_skipped_when_asked() -> None:
    kit = TestKit(router("skip"), start=T0)
    kit.deliver("orders.events", b"k", b"whatever", [("ce_type", b"com.acme.X")])  # no envelope
    kit.deliver("orders.events", b"k", b"\x00garbage", CE)  # envelope fine, body unread: forwarded
    assert kit.outcomes == ["malformed", "ok"] and kit.dead_letters == []
    # Forwarded under the record key (no correlation id nor subject), body as it came: not Avro.
    assert [(e.key, e.event, e.value) for e in kit.outputs] == [("k", None, b"\x00garbage")]


def test_malformed_records_go_to_the_dlq_by_default() -> None:
    kit = TestKit(router("dlq"), start=T0)
    kit.deliver("orders.events", b"k", b"whatever", [("ce_type", b"com.acme.X")])
    assert [d.attempts for d in kit.dead_letters] == [1] and kit.outcomes == []
