"""Instances survive the store's JSON: every field, every step, every timeline entry."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

from saga_tracker.codec import decode, encode
from saga_tracker.instance import Instance
from tests.unit.saga_tracker.test_instance_rules import PAY, at, ev, reference, started


def rich() -> Instance:
    rules = reference()
    inst, _ = started(rules)
    inst.value = 99.5
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    rules.deadline_passed(inst, "reservation", at(11))  # timeout, compensation, incident
    return inst


def test_round_trip_through_json_keeps_everything() -> None:
    inst = rich()
    stored = json.loads(json.dumps(encode(inst)))
    assert decode(stored) == inst
    assert set(encode(inst)) == {f.name for f in fields(Instance)}


def test_encoding_matches_the_dataclass_shape() -> None:
    inst = rich()
    shape = asdict(inst)
    encoded = encode(inst)
    assert set(encoded["steps"]["payment"]) == set(shape["steps"]["payment"])
    assert set(encoded["timeline"][0]) == set(shape["timeline"][0])
    assert encoded["open_incidents"] == {"reservation": "critical"}


def test_the_stored_bytes_are_the_json_of_the_encoded_instance() -> None:
    """`stored` skips the dict: its bytes must be exactly what encoding the dict gives."""
    from choreograph.state.store import encode_value
    from saga_tracker.codec import encode, stored
    from tests.unit.saga_tracker.test_instance_rules import ORDERS, PAY, T0, at, ev
    from tests.unit.saga_tracker.test_repair_actions import with_redrive

    rules = with_redrive()
    fields = {"customer_id": "c-1", "total": 3.5, "currency": "EUR"}
    inst, _ = rules.start(ev(ORDERS + "OrderPlaced"), T0, fields=fields)
    assert stored(inst) == encode_value(encode(inst))
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1.000001))  # microseconds
    rules.act(inst, "pause", None, "a", "r", at(2))
    rules.act(inst, "hold", None, "legal", "case", at(2))
    rules.deadline_passed(inst, "reservation", at(30))
    assert stored(inst) == encode_value(encode(inst))
