"""The repair actions beyond retry, compensate and resolve: pause and resume (the clock stands
still), cancel, redrive from a step with the recorded inputs, and legal holds; and the search
attributes an instance records."""

from __future__ import annotations

from datetime import timedelta

import pytest

from choreograph.process.definition import ProcessDefinition
from saga_tracker.codec import decode, encode
from saga_tracker.instance import (
    PROCESS,
    ActionRefused,
    CancelDeadline,
    ProcessRules,
    ResolveIncident,
    SendCommand,
    SetDeadline,
)
from tests.unit.saga_tracker.test_instance_rules import (
    ORDERS,
    PAY,
    T0,
    at,
    ev,
    reference,
    started,
)


def with_redrive() -> ProcessRules:
    """The reference process with search attributes and a redrive command for payment."""
    raw = reference().definition.model_dump(exclude_none=True)
    raw["search_attributes"] = {"customer_id": "customer_id", "total": {"field": "total"}}
    raw["steps"][0]["redrive"] = {
        "command": "com.acme.payments.ChargeOrder",
        "payload": {"order_id": "{business_key}", "amount": "{attributes.total}",
                    "note": "for {attributes.customer_id}: {reason}"},
    }  # fmt: skip
    return ProcessRules(ProcessDefinition.model_validate(raw))


def test_a_paused_instance_fires_no_deadline_and_resumes_with_the_time_it_had_left() -> None:
    rules = reference()
    inst, _ = started(rules)  # process deadline at 120 min, payment at 15
    paused = rules.act(inst, "pause", None, "alice", "payments deploy", at(5))
    assert sorted(paused, key=str) == sorted(
        [CancelDeadline(PROCESS), CancelDeadline("payment")], key=str
    )
    assert inst.paused and inst.timers == {PROCESS: at(120), "payment": at(15)}
    # A step that reports meanwhile still counts; what it would arm is kept back.
    effects = rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(10))
    assert not any(isinstance(e, SetDeadline | CancelDeadline) for e in effects)
    assert inst.steps["payment"].status == "completed" and "payment" not in inst.timers
    assert inst.timers["reservation"] == at(5 + 10)  # 10 minutes left, counted from the pause
    # A deadline that fires anyway (set before the timers were known) waits for the resume.
    assert rules.deadline_passed(inst, PROCESS, at(130)) == []
    resumed = rules.act(inst, "resume", None, "alice", "deploy done", at(65))
    assert SetDeadline("reservation", at(65 + 10)) in resumed
    assert SetDeadline(PROCESS, at(65)) in resumed  # it had passed while paused: due at once
    assert not inst.paused and inst.paused_s == 60 * 60
    assert inst.steps["reservation"].deadline == at(75)
    notes = [e.note for e in inst.timeline if e.kind == "operator"]
    assert notes == ["pause by alice: payments deploy", "resume by alice: deploy done"]


def test_pausing_stops_the_sla_clock() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.act(inst, "pause", None, "alice", "hold on", at(1))
    rules.act(inst, "resume", None, "alice", "go on", at(101))
    for kind in (PAY + "PaymentAuthorized", "com.acme.inventory.StockReserved",
                 "com.acme.shipping.ShipmentDispatched", ORDERS + "OrderCompleted"):  # fmt: skip
        rules.apply(inst, ev(kind), at(110))
    assert inst.status == "completed"
    assert inst.sla_seconds() == 10 * 60  # 110 minutes, 100 of them paused


def test_pause_resume_cancel_hold_and_release_are_refused_where_they_do_not_apply() -> None:
    rules = reference()
    inst, _ = started(rules)
    with pytest.raises(ActionRefused, match="not paused"):
        rules.act(inst, "resume", None, "a", "r", at(1))
    rules.act(inst, "pause", None, "a", "r", at(1))
    with pytest.raises(ActionRefused, match="paused already"):
        rules.act(inst, "pause", None, "a", "r", at(2))
    with pytest.raises(ActionRefused, match="not on hold"):
        rules.act(inst, "release", None, "a", "r", at(2))
    rules.act(inst, "hold", None, "legal", "case 42", at(2))
    assert inst.held == "legal: case 42"
    with pytest.raises(ActionRefused, match="on hold already"):
        rules.act(inst, "hold", None, "a", "r", at(2))
    effects = rules.act(inst, "cancel", None, "a", "duplicate order", at(3))
    assert inst.status == "cancelled" and inst.ended and not inst.paused
    assert effects == []  # paused: nothing was armed to cancel
    with pytest.raises(ActionRefused, match="it has ended"):
        rules.act(inst, "pause", None, "a", "r", at(4))
    rules.act(inst, "release", None, "legal", "case closed", at(5))
    assert inst.held is None


def test_cancel_stops_tracking_late_events_are_recorded_only() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.deadline_passed(inst, "payment", at(16))  # compensates: in doubt
    inst2, _ = started(rules)
    effects = rules.act(inst2, "cancel", None, "bob", "test order", at(3))
    assert set(effects) == {CancelDeadline(PROCESS), CancelDeadline("payment")}
    assert rules.apply(inst2, ev(PAY + "PaymentAuthorized"), at(4)) == []
    assert inst2.steps["payment"].status == "running"  # recorded, nothing more
    assert inst2.timeline[-1].event_type == PAY + "PaymentAuthorized"
    assert rules.deadline_passed(inst2, PROCESS, at(200)) == []


def test_redrive_sends_the_steps_command_from_the_recorded_inputs() -> None:
    rules = with_redrive()
    fields = {"customer_id": "cust-7", "total": 120.5, "ignored": 1}
    inst, _ = rules.start(ev(ORDERS + "OrderPlaced"), T0, fields=fields)
    assert inst.attributes == {"customer_id": "cust-7", "total": 120.5}
    assert rules.fields_read(ORDERS + "OrderPlaced") == ("customer_id", "total")
    rules.act(inst, "pause", None, "a", "look first", at(20))
    rules.act(inst, "resume", None, "a", "go", at(21))
    effects = rules.act(inst, "redrive", "payment", "alice", "bad deploy", at(22))
    [send] = [e for e in effects if isinstance(e, SendCommand)]
    assert (send.purpose, send.command, send.by_operator) == (
        "redrive",
        "com.acme.payments.ChargeOrder",
        True,
    )
    assert SetDeadline("payment", at(22 + 15)) in effects
    assert inst.steps["payment"].status == "running" and inst.timers["payment"] == at(37)
    assert [e.kind for e in inst.timeline][-2:] == ["operator", "redrive"]


def test_redrive_needs_a_redrive_command_and_a_live_step() -> None:
    rules = reference()
    inst, _ = started(rules)
    with pytest.raises(ActionRefused, match="declares no redrive command"):
        rules.act(inst, "redrive", "payment", "a", "r", at(1))
    with pytest.raises(ActionRefused, match="needs one of the steps"):
        rules.act(inst, "redrive", None, "a", "r", at(1))
    rules = with_redrive()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    with pytest.raises(ActionRefused, match="step payment is completed"):
        rules.act(inst, "redrive", "payment", "a", "r", at(2))


def test_redrive_of_a_failed_late_step_resolves_its_incident_and_reopens_the_instance() -> None:
    raw = with_redrive().definition.model_dump(exclude_none=True)
    raw["steps"][0]["on_timeout"] = "fail"
    rules = ProcessRules(ProcessDefinition.model_validate(raw))
    inst, _ = started(rules)
    rules.deadline_passed(inst, "payment", at(16))
    assert inst.status == "failed" and "payment" in inst.open_incidents
    effects = rules.act(inst, "redrive", "payment", "alice", "fixed", at(20))
    assert ResolveIncident("payment", "payment", "critical") in effects
    assert SetDeadline(PROCESS, at(120)) in effects
    assert inst.status == "running" and not inst.open_incidents


def test_new_fields_survive_the_store_and_old_records_imply_their_timers() -> None:
    rules = with_redrive()
    inst, _ = rules.start(ev(ORDERS + "OrderPlaced"), T0, fields={"total": 3, "customer_id": "c"})
    rules.act(inst, "pause", None, "a", "r", at(1))
    rules.act(inst, "hold", None, "legal", "case", at(1))
    again = decode(encode(inst))
    assert again == inst
    old = encode(started(reference())[0])
    for name in ("timers", "attributes", "paused_at", "paused_s", "held", "batched"):
        del old[name]
    assert decode(old).timers == {PROCESS: at(120), "payment": at(15)}
    assert timedelta(seconds=decode(old).paused_s) == timedelta(0)
