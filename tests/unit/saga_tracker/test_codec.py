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
