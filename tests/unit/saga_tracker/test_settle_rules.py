"""A step in doubt is settled by its owner (order-fulfilment v2): the tracker asks payments to
void a payment that timed out before it reported, and the answer decides."""

from __future__ import annotations

from pathlib import Path

from choreograph.process.definition import parse_definition
from saga_tracker.instance import (
    CancelDeadline,
    Instance,
    ProcessRules,
    RaiseIncident,
    ResolveIncident,
    SendCommand,
    SetDeadline,
)
from tests.unit.saga_tracker.test_instance_rules import PAY, at, ev, started

REPO = Path(__file__).resolve().parents[3]
WHY = "step payment timed out"


def v2() -> ProcessRules:
    text = (REPO / "processes/order-fulfilment.v2.yaml").read_text()
    return ProcessRules(parse_definition(text, "order-fulfilment.v2.yaml").definition)


def late_payment() -> tuple[ProcessRules, Instance]:
    """An order whose payment deadline has just passed: payments was asked to settle it."""
    rules = v2()
    inst, _ = started(rules)
    rules.deadline_passed(inst, "payment", at(15))
    return rules, inst


def test_a_late_payment_is_asked_about_not_refunded() -> None:
    rules = v2()
    inst, _ = started(rules)
    effects = rules.deadline_passed(inst, "payment", at(15))
    assert SendCommand("payment", "settle", PAY + "VoidPayment", "o-1", WHY) in effects
    assert SetDeadline("payment.settle", at(45)) in effects
    assert not [e for e in effects if isinstance(e, SendCommand) and e.purpose == "compensation"]
    [raised] = [e for e in effects if isinstance(e, RaiseIncident)]
    assert raised.severity == "warning" and "asked to settle" in raised.summary
    assert inst.status == "running" and inst.steps["payment"].status == "settling"
    assert [e.kind for e in inst.timeline][-2:] == ["timeout", "settle"]


def test_already_done_goes_on_late_and_the_report_completes_it() -> None:
    rules, inst = late_payment()
    effects = rules.apply(inst, ev(PAY + "PaymentVoidRefused"), at(16))
    assert CancelDeadline("payment.settle") in effects
    assert inst.steps["payment"].status == "running"  # done, its report on its way
    effects = rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(16))
    assert ResolveIncident("payment", "payment", "warning") in effects
    assert inst.steps["payment"].status == "completed" and inst.status == "running"
    assert inst.steps["reservation"].status == "running"


def test_voided_compensates_what_completed_and_needs_no_undo_of_its_own() -> None:
    rules, inst = late_payment()
    effects = rules.apply(inst, ev(PAY + "PaymentVoided"), at(16))
    assert inst.steps["payment"].status == "voided"
    assert inst.status == "compensated" and not inst.open_incidents
    assert not [e for e in effects if isinstance(e, SendCommand)]
    rules.apply(inst, ev(PAY + "PaymentFailed"), at(17))  # the order, declined later
    assert inst.status == "compensated" and inst.steps["payment"].status == "voided"


def test_no_answer_in_time_is_undone_as_in_doubt_and_pages() -> None:
    rules, inst = late_payment()
    effects = rules.deadline_passed(inst, "payment.settle", at(45))
    assert ResolveIncident("payment", "payment", "warning") in effects
    assert (
        RaiseIncident(
            "payment",
            "payment",
            "critical",
            "step payment timed out and its owner did not settle it",
        )
        in effects
    )
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [PAY + "RefundPayment"]
    assert inst.status == "compensating"
    # A late answer changes nothing that was decided; the refund's confirmation ends it.
    rules.apply(inst, ev(PAY + "PaymentVoided"), at(46))
    rules.apply(inst, ev(PAY + "PaymentRefunded"), at(47))
    assert inst.status == "compensated"


def test_a_report_while_settling_ends_the_wait_for_the_answer() -> None:
    rules, inst = late_payment()
    effects = rules.apply(inst, ev(PAY + "PaymentFailed"), at(16))
    assert CancelDeadline("payment.settle") in effects
    assert inst.steps["payment"].status == "failed" and inst.status == "compensated"
    assert rules.deadline_passed(inst, "payment.settle", at(45)) == []


def test_an_operator_may_compensate_a_step_that_is_being_settled() -> None:
    rules, inst = late_payment()
    effects = rules.act(inst, "compensate", None, "alice", "customer called", at(20))
    assert CancelDeadline("payment.settle") in effects
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [PAY + "RefundPayment"]


def test_the_process_deadline_asks_about_a_running_payment_too() -> None:
    rules = ProcessRules(v2().definition.model_copy(update={"on_timeout": "compensate"}))
    inst, _ = started(rules)
    effects = rules.deadline_passed(inst, "process", at(120))
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [PAY + "VoidPayment"]
    assert inst.status == "compensating" and inst.steps["payment"].status == "settling"
    rules.apply(inst, ev(PAY + "PaymentVoidRefused"), at(121))
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(121))
    # The process is being undone: a payment that happened is refunded.
    assert inst.steps["payment"].status == "compensating"
    rules.apply(inst, ev(PAY + "PaymentRefunded"), at(122))
    assert inst.steps["payment"].status == "compensated"
    # The reservation the payment started may happen too: it is waited for, as in v1.
    assert inst.status == "compensating" and inst.steps["reservation"].status == "running"
