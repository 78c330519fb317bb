"""Records that are valid Kafka records but not what they claim: a body that is not the type its
envelope names, a key that is not text, a header that is not ours. Nothing acts on the first
two (dead-lettered at once, naming what is wrong); the third must not hide a valid event."""

from __future__ import annotations

from choreograph import TestKit
from choreograph.contracts.envelope import Envelope
from choreograph.contracts.serde import MislabelledRecord
from choreograph_examples.contracts.payments import RefundPayment
from choreograph_examples.payments.service import build as payments
from tests.unit.runtime.test_failure_policy import ORDER  # the one order fixture


def _placed_then_authorised(kit: TestKit) -> None:
    kit.send(ORDER, key="o-1")
    assert kit.store("payments").get("o-1") is not None


def test_a_body_under_another_type_s_headers_is_dead_lettered_at_once_with_both_names() -> None:
    kit = TestKit(payments())
    _placed_then_authorised(kit)
    refund = RefundPayment(order_id="o-1", reason="forged")
    value = kit.serde.serialize(refund, "payments.commands")
    lie = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1")  # the headers say OrderPlaced
    kit.deliver("orders.events", b"o-1", value, lie.to_headers())

    [letter] = kit.dead_letters
    assert letter.attempts == 1
    assert isinstance(letter.error, MislabelledRecord)
    assert "com.acme.orders.OrderPlaced" in str(letter.error)
    assert "com.acme.payments.RefundPayment" in str(letter.error)
    assert not kit.store("payments").get("o-1").get("refunded")  # nothing acted on it
    # The authorisation of the real order only (and the decision record of its card limit).
    assert [e.envelope.type for e in kit.outputs] == [
        "dev.choreograph.DecisionRecord",
        "com.acme.payments.PaymentAuthorized",
    ]


def test_a_body_whose_writer_the_service_has_no_model_for_is_not_counted_ok() -> None:
    kit = TestKit(payments())
    value = kit.serde.serialize(RefundPayment(order_id="o-1", reason="x"), "payments.commands")
    claimed = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1")
    kit.deliver("orders.events", b"o-1", value, claimed.to_headers())
    assert kit.outcomes == [] and len(kit.dead_letters) == 1


def test_a_key_that_is_not_text_is_dead_lettered_at_once() -> None:
    kit = TestKit(payments())
    envelope = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1")
    value = kit.serde.serialize(ORDER, "orders.events")
    kit.deliver("orders.events", b"\xff\xfeo-1", value, envelope.to_headers())
    [letter] = kit.dead_letters
    assert letter.attempts == 1 and "key is not UTF-8" in str(letter.error)
    assert kit.outputs == []


def test_a_binary_header_that_is_not_ours_does_not_hide_a_valid_event() -> None:
    kit = TestKit(payments())
    envelope = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1")
    value = kit.serde.serialize(ORDER, "orders.events")
    headers = [*envelope.to_headers(), ("x-signature", b"\x8f\xff\x00\xc3")]
    kit.deliver("orders.events", b"o-1", value, headers)
    assert kit.dead_letters == [] and kit.outcomes == ["ok"]
    assert kit.store("payments").get("o-1") is not None


def test_only_cloudevents_and_trace_headers_are_parsed() -> None:
    envelope = Envelope.new("com.acme.orders.OrderPlaced", "shop", "o-1")
    headers = [
        *envelope.to_headers(),
        ("x-binary", b"\xff\xfe"),
        ("ce_tenant", b"eu"),
        ("ce_blob", b"\xff"),  # an extension that is not text is left out, not fatal
    ]
    parsed = Envelope.from_headers(headers)
    assert parsed.extensions == {"ce_tenant": "eu"}
    assert parsed.id == envelope.id and parsed.type == envelope.type
