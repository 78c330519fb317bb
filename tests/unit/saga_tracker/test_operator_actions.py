"""Operator actions on an instance: retry a step, compensate, resolve; refused when they do not
apply, with the reason an operator sees."""

from __future__ import annotations

import pytest

from saga_tracker.instance import (
    PROCESS,
    ActionRefused,
    CancelDeadline,
    RaiseIncident,
    ResolveIncident,
    SendCommand,
    SetDeadline,
)
from tests.unit.saga_tracker.test_instance_rules import (
    INV,
    PAY,
    T0,
    at,
    custom,
    ev,
    reference,
    started,
)


def escalated() -> tuple:
    """An instance whose compensation of step b was never confirmed."""
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    rules.apply(inst, ev("t.bDone"), at(2))
    rules.apply(inst, ev("t.cFailed"), at(3))
    rules.apply(inst, ev("t.aUndone"), at(4))
    rules.deadline_passed(inst, "b.compensation", at(8))
    assert inst.status == "needs_manual_resolution"
    return rules, inst


def test_retrying_a_failed_compensation_resends_it_and_its_confirmation_recovers() -> None:
    rules, inst = escalated()
    effects = rules.act(inst, "retry", "b", "alice", "payments fixed", at(20))
    sends = [e for e in effects if isinstance(e, SendCommand)]
    assert [(s.purpose, s.command) for s in sends] == [("compensation", "t.Undob")]
    assert "retry b requested by alice: payments fixed" in sends[0].reason
    assert SetDeadline("b.compensation", at(25)) in effects
    assert inst.status == "compensating" and inst.ended_at is None
    done = rules.apply(inst, ev("t.bUndone"), at(21))
    assert ResolveIncident("b.compensation", "b", "critical") in done
    assert inst.status == "compensated"
    notes = [e.note for e in inst.timeline if e.kind == "operator"]
    assert notes == ["retry b by alice: payments fixed"]


def test_retrying_a_late_step_rearms_its_deadline_and_sends_the_retry_command() -> None:
    base = custom().definition.model_dump()
    base["steps"][0]["retry"] = {"command": "t.Redoa", "payload": {"id": "{business_key}"}}
    base["steps"][0]["on_timeout"] = "alert"
    from choreograph.process.definition import ProcessDefinition
    from saga_tracker.instance import ProcessRules

    rules = ProcessRules(ProcessDefinition.model_validate(base))
    inst, _ = rules.start(ev("t.Started"), T0)
    assert isinstance(rules.deadline_passed(inst, "a", at(10))[0], RaiseIncident)
    effects = rules.act(inst, "retry", "a", "bob", "kick it", at(11))
    assert ResolveIncident("a", "a", "warning") in effects
    assert SetDeadline("a", at(21)) in effects
    assert [(e.purpose, e.command) for e in effects if isinstance(e, SendCommand)] == [
        ("retry", "t.Redoa")
    ]
    assert inst.status == "running" and not inst.open_incidents


def test_retrying_a_failed_step_reopens_a_failed_instance() -> None:
    rules = custom(on_timeout="fail", deadline="2h")
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.steps["a"]  # a fails, and with outcome fail for the process...
    inst.steps["a"].status = "failed"
    inst.status = "failed"
    effects = rules.act(inst, "retry", "a", "bob", "again", at(5))
    assert inst.status == "running" and inst.steps["a"].status == "running"
    assert SetDeadline(PROCESS, at(120)) in effects


def test_operator_compensation_undoes_completed_steps_and_the_running_ones() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    effects = rules.act(inst, "compensate", None, "carol", "customer called", at(3))
    assert CancelDeadline("reservation") in effects
    # The running reservation may already have happened: it is undone too.
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [
        INV + "ReleaseStock",
        PAY + "RefundPayment",
    ]
    assert inst.status == "compensating"
    assert "customer called" in (inst.failure_reason or "")


def test_resolve_ends_an_escalated_instance_and_closes_its_incidents() -> None:
    rules, inst = escalated()
    effects = rules.act(inst, "resolve", None, "dave", "refunded by hand", at(30))
    assert effects[0] == ResolveIncident("b.compensation", "b", "critical")
    assert inst.status == "resolved" and not inst.open_incidents and inst.ended


def test_resolve_on_a_running_instance_acknowledges_its_alerts_only() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    rules.apply(inst, ev(INV + "StockReserved"), at(2))
    rules.deadline_passed(inst, "shipping", at(62))
    effects = rules.act(inst, "resolve", None, "erin", "carrier is slow", at(63))
    assert effects == [ResolveIncident("shipping", "shipping", "warning")]
    assert inst.status == "running"


@pytest.mark.parametrize(
    ("action", "step", "why"),
    [
        ("retry", None, "retry needs one of the steps: payment, reservation, shipping"),
        ("retry", "nope", "retry needs one of the steps"),
        ("retry", "payment", "step payment is running: nothing to retry"),
        ("resolve", None, "nothing to resolve"),
        ("restart", None, "unknown action 'restart'"),
    ],
)
def test_actions_that_do_not_apply_are_refused_with_a_reason(
    action: str, step: str | None, why: str
) -> None:
    rules = reference()
    inst, _ = started(rules)
    with pytest.raises(ActionRefused, match=why.replace("(", r"\(")):
        rules.act(inst, action, step, "x", "y", at(1))
    assert not [e for e in inst.timeline if e.kind == "operator"]  # nothing recorded


def test_compensating_with_nothing_that_may_have_happened_is_refused() -> None:
    rules = reference()
    inst, _ = started(rules)
    inst.steps["payment"].status = "failed"  # as if reported, with the instance still running
    assert rules.refusal(inst, "compensate", None) == (
        "no step that happened or may have happened has a compensation"
    )


def test_compensating_twice_is_refused() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    rules.act(inst, "compensate", None, "carol", "first", at(2))
    assert rules.refusal(inst, "compensate", None) == "the instance is compensating"
