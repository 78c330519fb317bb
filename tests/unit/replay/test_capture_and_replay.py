"""Captures round-trip, mask PII keeping type and equality, and replay against code: the same
code reproduces production with no difference, byte for byte except fresh ids; changed code
shows what changed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from choreograph import Context, Service, TestKit
from choreograph.contracts.publisher import encode_event
from choreograph.replay.capture import Capture, CapturedRecord, CaptureError, build_capture
from choreograph.replay.run import replay
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentFailed
from choreograph_examples.payments.service import build as payments

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def order(n: int, total: str = "20.00", email: str = "ada@example.com") -> OrderPlaced:
    return OrderPlaced(
        order_id=f"o-{n}",
        customer_id=f"c-{n % 3}",
        customer_email=email,
        lines=[OrderLine(sku="MUG-1", quantity=1)],
        total=Decimal(total),
        placed_at=T0,
    )


def _bytes(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes | None]]:
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]


def production(orders: list[OrderPlaced]) -> Capture:
    """What a production run leaves in the topics: the orders, and what payments wrote."""
    kit = TestKit(payments(), start=T0)
    records: list[CapturedRecord] = []
    for i, placed in enumerate(orders):
        kit.now = T0 + timedelta(seconds=i)
        _, value, envelope = encode_event(
            kit.serde, placed, placed.order_id, "shop", correlation_id=f"p-{i}", now=kit.now
        )
        headers = _bytes(envelope.to_headers())
        ts = int(kit.now.timestamp() * 1000)
        key = placed.order_id.encode()
        records.append(CapturedRecord("orders.events", 0, i, ts, key, value, headers))
        before = len(kit.outputs)
        kit.deliver("orders.events", key, value, headers)
        for j, out in enumerate(kit.outputs[before:]):
            written = _bytes(out.envelope.to_headers())
            offset = i * 10 + j
            records.append(
                CapturedRecord(out.topic, 0, offset, ts + 1, out.key.encode(), out.value, written)
            )
    registry = kit.serde.registry
    return build_capture(records, lambda i: registry.get_schema(i).schema_str, mask=False)


def test_a_capture_round_trips_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    capture = production([order(1), order(2, total="1500.00")])
    path = tmp_path / "incident.capture"
    capture.write(path)
    back = Capture.read(path)
    assert back.records == capture.records and back.schemas == capture.schemas
    assert back.masked is False and set(back.instances()) == {"p-0", "p-1"}
    path.write_text('{"format": "choreograph-capture/9"}\n')
    with pytest.raises(CaptureError, match="capture it again"):
        Capture.read(path)


def test_pii_is_masked_keeping_type_and_equality() -> None:
    plain = production([order(1, email="ada@example.com"), order(2, email="ada@example.com"),
                        order(3, email="bob@example.com")])  # fmt: skip
    schemas = plain.schemas
    masked = build_capture(plain.records, lambda i: schemas[i], mask=True, secret=b"k")
    assert masked.masked
    emails = []
    for record in masked.records:
        if record.topic != "orders.events":
            continue
        schema = fastavro.parse_schema(json.loads(schemas[record.schema_id or 0]), named_schemas={})
        body = fastavro.schemaless_reader(io.BytesIO((record.value or b"")[5:]), schema)
        emails.append(body["customer_email"])  # type: ignore[index]
        assert body["order_id"].startswith("o-")  # type: ignore[index]  # only PII is masked
    assert emails[0] == emails[1] != emails[2] and all(e.startswith("masked-") for e in emails)


def test_the_same_code_reproduces_production_with_no_difference() -> None:
    capture = production([order(1), order(2, total="1500.00"), order(3)])
    report = replay(capture, payments())
    assert report.fed == 3 and report.differences == [] and report.dead_letters == []
    assert sorted(report.instances) == ["p-0", "p-1", "p-2"]
    assert report.instances["p-1"].emitted == [
        "choreograph.decisions dev.choreograph.DecisionRecord o-2",  # payments.card-limit: false
        "payments.events com.acme.payments.PaymentFailed o-2",
    ]
    assert "no difference from production" in report.text()


def test_a_replay_is_deterministic_but_for_fresh_ids() -> None:
    capture = production([order(1), order(2), order(3, total="1500.00")])
    first, second = replay(capture, payments()), replay(capture, payments())
    assert [(t, k, v) for t, k, v, _ in first.outputs] == [
        (t, k, v) for t, k, v, _ in second.outputs
    ]
    fresh = {"ce_id", "traceparent"}
    for (_, _, _, a), (_, _, _, b) in zip(first.outputs, second.outputs, strict=True):
        same = [(k, v) for k, v in a.to_headers() if k not in fresh]
        assert same == [(k, v) for k, v in b.to_headers() if k not in fresh]


def test_changed_code_shows_what_it_would_do_differently() -> None:
    capture = production([order(1), order(2, total="1500.00")])
    stricter = Service("payments", ["orders.events", "payments.commands"],
                       outputs=["payments.events"], stores=["payments"])  # fmt: skip

    @stricter.handle(OrderPlaced)
    def decline_all(ctx: Context, event: OrderPlaced) -> None:
        ctx.emit(PaymentFailed(order_id=ctx.key, reason="card declined: over the limit"))

    report = replay(capture, stricter)
    kinds = sorted((d.kind, d.event_type) for d in report.differences)
    assert kinds == [
        ("extra", "com.acme.payments.PaymentFailed"),
        ("missing", "com.acme.payments.PaymentAuthorized"),
    ]
    assert {d.causation_id for d in report.differences} == {capture.records[0].header("ce_id")}
    assert "2 difference(s) from production" in report.text()  # o-2 was declined anyway


def test_a_replay_reports_state_transitions_and_timers_as_they_ran() -> None:
    from choreograph_examples.orders.service import build as orders

    kit = TestKit(orders(open_for=timedelta(minutes=30)), start=T0)
    records: list[CapturedRecord] = []
    placed = order(7)
    _, value, envelope = encode_event(
        kit.serde, placed, "o-7", "shop", correlation_id="p-7", now=T0
    )
    ts = int(T0.timestamp() * 1000)
    records.append(
        CapturedRecord("orders.events", 0, 0, ts, b"o-7", value, _bytes(envelope.to_headers()))
    )
    registry = kit.serde.registry
    capture = build_capture(records, lambda i: registry.get_schema(i).schema_str, mask=False)
    later = CapturedRecord("shipping.events", 0, 0, ts + 3_600_000, b"o-x", None, [])
    capture.records.append(later)  # an hour later: the order's timeout has fired by then
    report = replay(capture, orders(open_for=timedelta(minutes=30)))
    inst = report.instances["p-7"]
    assert inst.transitions == ["order o-7: new -> open", "order o-7: open -> cancelled"]
    assert [t.split()[0] for t in inst.timers] == ["machine.order.timeout"]
    assert inst.emitted == [
        "choreograph.decisions dev.choreograph.DecisionRecord o-7",  # new -> open
        "orders.events com.acme.orders.OrderCancelled o-7",
        "choreograph.decisions dev.choreograph.DecisionRecord o-7",  # open -> cancelled
    ]
