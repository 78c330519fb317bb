"""What other producers send: envelopes validated as the CloudEvents spec says, minimal events
with only the required attributes, and structured content mode."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from choreograph import TestKit
from choreograph.contracts.envelope import Envelope, EnvelopeError
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from choreograph_examples.payments.service import build as payments

TYPE = "com.acme.orders.OrderPlaced"
REQUIRED = [("ce_specversion", b"1.0"), ("ce_id", b"e-1"), ("ce_source", b"/java/shop"),
            ("ce_type", TYPE.encode())]  # fmt: skip
ORDER = OrderPlaced(
    order_id="o-7",
    customer_id="c-1",
    customer_email="a@example.com",
    lines=[OrderLine(sku="MUG-1", quantity=1)],
    total=Decimal("12.50"),
    placed_at=datetime(2026, 1, 1, tzinfo=UTC),
)


SPEC_CASES = [
    ("ce_source", b"not a uri", "URI-reference"),
    ("ce_time", b"2026-01-01", "RFC 3339"),
    ("ce_time", b"2026-01-01 10:00:00", "RFC 3339"),
    ("ce_time", b"yesterday", "RFC 3339"),
    ("ce_Tenant", b"eu", "lower-case"),
    ("ce_tenant_id", b"eu", "lower-case"),
    ("ce_id", b"", "missing CloudEvents headers: ce_id"),
]


def with_header(header: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in REQUIRED if k != header] + [(header, value)]


@pytest.mark.parametrize(("header", "value", "says"), SPEC_CASES)
def test_envelopes_are_validated_as_the_spec_says(header: str, value: bytes, says: str) -> None:
    headers = with_header(header, value)
    with pytest.raises(EnvelopeError, match=says):
        Envelope.from_headers(headers)


def test_rfc3339_times_with_any_precision_and_offset_are_read() -> None:
    for text, micro in (
        ("2026-05-01T10:00:00Z", 0),
        ("2026-05-01t10:00:00.123456789+02:00", 123456),
    ):
        env = Envelope.from_headers([*REQUIRED, ("ce_time", text.encode())])
        assert env.time.microsecond == micro and env.time.utcoffset() is not None


def test_minimal_events_fall_back_to_subject_then_key_never_to_an_empty_business_key() -> None:
    only_key = Envelope.from_headers(REQUIRED, "o-7")
    assert (only_key.correlation_id, only_key.subject) == ("o-7", "o-7")
    with_subject = Envelope.from_headers([*REQUIRED, ("ce_subject", b"o-8")], "k")
    assert (with_subject.correlation_id, with_subject.subject) == ("o-8", "o-8")
    with_extension = Envelope.from_headers([*REQUIRED, ("ce_correlationid", b"p-1")], "o-7")
    assert (with_extension.correlation_id, with_extension.subject) == ("p-1", "o-7")


def test_a_minimal_event_is_handled_and_followed_by_its_key() -> None:
    kit = TestKit(payments())
    value = kit.serde.serialize(ORDER, "orders.events")
    kit.deliver("orders.events", b"o-7", value, [*REQUIRED, ("content-type", b"application/avro")])
    [authorised] = kit.emitted(PaymentAuthorized)
    assert authorised.key == "o-7" and authorised.envelope.correlation_id == "o-7"
    assert authorised.envelope.causation_id == "e-1"


def structured(kit: TestKit, **data: object) -> list[tuple[str, bytes]]:
    event = {"specversion": "1.0", "id": "s-1", "source": "https://shop.example/orders",
             "type": TYPE, "subject": "o-7", "time": "2026-05-01T10:00:00Z", **data}  # fmt: skip
    return [("content-type", b"application/cloudevents+json; charset=utf-8")], json.dumps(
        event
    ).encode()


@pytest.mark.parametrize("mode", ["data_base64", "data"])
def test_structured_mode_is_read(mode: str) -> None:
    kit = TestKit(payments())
    if mode == "data_base64":
        avro = kit.serde.serialize(ORDER, "orders.events")
        headers, value = structured(kit, data_base64=base64.b64encode(avro).decode(),
                                    datacontenttype="application/avro")  # fmt: skip
    else:
        data = json.loads(ORDER.model_dump_json())
        headers, value = structured(kit, data=data, datacontenttype="application/json")
    kit.deliver("orders.events", b"o-7", value, [*headers, ("x-other", b"\xff")])
    assert kit.dead_letters == []
    [authorised] = kit.emitted(PaymentAuthorized)
    assert authorised.envelope.correlation_id == "o-7" and authorised.envelope.causation_id == "s-1"


def test_structured_data_that_breaks_the_contract_is_dead_lettered_at_once() -> None:
    kit = TestKit(payments())
    headers, value = structured(kit, data={"order_id": "o-7"})
    kit.deliver("orders.events", b"o-7", value, headers)
    [letter] = kit.dead_letters
    assert letter.attempts == 1 and "customer_id" in str(letter.error)
    headers, value = structured(kit, data_base64="%%%")
    kit.deliver("orders.events", b"o-7", value, headers)
    assert "base64" in str(kit.dead_letters[-1].error)
