"""How the tracker advances a process instance: steps, deadlines, compensations, incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from choreograph.contracts.envelope import Envelope
from choreograph.process.definition import ProcessDefinition, parse_definition
from saga_tracker.instance import (
    PROCESS,
    CancelDeadline,
    Instance,
    ProcessRules,
    RaiseIncident,
    ResolveIncident,
    SendCommand,
    SetDeadline,
    step_latencies,
)

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
ORDERS = "com.acme.orders."
PAY = "com.acme.payments."
INV = "com.acme.inventory."
SHIP = "com.acme.shipping."


def reference() -> ProcessRules:
    text = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    return ProcessRules(parse_definition(text, "order-fulfilment.v1.yaml").definition)


def ev(kind: str, corr: str = "c-1", key: str = "o-1") -> Envelope:
    return Envelope.new(kind, "test", key, correlation_id=corr)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def started(rules: ProcessRules) -> tuple[Instance, list]:
    return rules.start(ev(ORDERS + "OrderPlaced"), T0)


def test_happy_path_moves_step_by_step_and_completes() -> None:
    rules = reference()
    inst, effects = started(rules)
    assert effects == [SetDeadline(PROCESS, at(120)), SetDeadline("payment", at(15))]
    assert (inst.version, inst.business_key, inst.status) == (1, "o-1", "running")
    assert rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(2)) == [
        CancelDeadline("payment"),
        SetDeadline("reservation", at(12)),
    ]
    rules.apply(inst, ev(INV + "StockReserved"), at(5))
    rules.apply(inst, ev(SHIP + "ShipmentDispatched"), at(30))
    effects = rules.apply(inst, ev(ORDERS + "OrderCompleted"), at(31))
    assert inst.status == "completed" and CancelDeadline(PROCESS) in effects
    assert [s.status for s in inst.steps.values()] == ["completed"] * 3
    assert step_latencies(inst) == {
        "payment": timedelta(minutes=2),
        "reservation": timedelta(minutes=3),
        "shipping": timedelta(minutes=25),
    }
    assert [e.step for e in inst.timeline if e.kind == "event"] == [
        None,
        "payment",
        "reservation",
        "shipping",
        None,
    ]


def test_step_timeout_compensates_completed_steps_and_the_step_in_doubt() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    effects = rules.deadline_passed(inst, "reservation", at(11))
    sends = [e for e in effects if isinstance(e, SendCommand)]
    why = "step reservation timed out"
    assert sends == [  # the reservation may have happened: undone first, as the latest step
        SendCommand("reservation", "compensation", INV + "ReleaseStock", "o-1", why),
        SendCommand("payment", "compensation", PAY + "RefundPayment", "o-1", why),
    ]
    assert (
        RaiseIncident("reservation", "reservation", "critical", "step reservation timed out")
        in effects
    )
    assert SetDeadline("payment.compensation", at(21)) in effects
    assert inst.status == "compensating" and inst.failure_reason == "step reservation timed out"
    rules.apply(inst, ev(PAY + "PaymentRefunded"), at(12))
    assert inst.status == "compensating"  # the release is not confirmed yet
    rules.apply(inst, ev(INV + "StockReleased"), at(13))
    assert inst.status == "compensated"
    assert inst.steps["reservation"].status == "compensated"
    # Nobody knows what became of the reservation: its page stays until it reports.
    assert list(inst.open_incidents) == ["reservation"]
    effects = rules.apply(inst, ev(INV + "StockReservationFailed"), at(14))
    assert ResolveIncident("reservation", "reservation", "critical") in effects


def custom(**over: object) -> ProcessRules:
    step = lambda n: {  # noqa: E731
        "name": n,
        "completes_on": [f"t.{n}Done"],
        "fails_on": [f"t.{n}Failed"],
        "deadline": "10m",
        "compensation": {
            "command": f"t.Undo{n}",
            "deadline": "5m",
            "completes_on": [f"t.{n}Undone"],
        },
    }
    raw = {
        "name": "p",
        "version": 3,
        "start": "t.Started",
        "success": ["t.Finished"],
        "owners": {"business": "b", "technical": "t", "on_call": "o"},
        "steps": [
            step("a"),
            {**step("b"), "starts_on": ["t.aDone"]},
            {**step("c"), "starts_on": ["t.bDone"]},
        ],
        **over,
    }
    return ProcessRules(ProcessDefinition.model_validate(raw))


def test_failure_compensates_in_reverse_order_and_escalates_unconfirmed_compensation() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    rules.apply(inst, ev("t.bDone"), at(2))
    effects = rules.apply(inst, ev("t.cFailed"), at(3))
    assert [e.command for e in effects if isinstance(e, SendCommand)] == ["t.Undob", "t.Undoa"]
    assert SetDeadline("a.compensation", at(8)) in effects and inst.status == "compensating"
    rules.apply(inst, ev("t.aUndone"), at(4))
    assert inst.steps["a"].status == "compensated" and inst.status == "compensating"
    escalation = rules.deadline_passed(inst, "b.compensation", at(8))
    assert escalation == [
        RaiseIncident(
            "b.compensation",
            "b",
            "critical",
            "compensation of b did not complete: manual resolution needed",
        )
    ]
    assert inst.status == "needs_manual_resolution"
    assert rules.deadline_passed(inst, PROCESS, at(200)) == []  # ended: nothing more fires


def test_a_compensation_confirmed_after_its_escalation_still_ends_compensated() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    rules.apply(inst, ev("t.bDone"), at(2))
    rules.apply(inst, ev("t.cFailed"), at(3))
    rules.deadline_passed(inst, "a.compensation", at(8))
    rules.deadline_passed(inst, "b.compensation", at(8))
    assert inst.status == "needs_manual_resolution"

    # One late confirmation resolves its own incident; the other undo is still in doubt.
    effects = rules.apply(inst, ev("t.bUndone"), at(9))
    assert effects == [
        CancelDeadline("b.compensation"),
        ResolveIncident("b.compensation", "b", "critical"),
    ]
    assert inst.steps["b"].status == "compensated" and inst.status == "needs_manual_resolution"
    assert list(inst.open_incidents) == ["a.compensation"]

    effects = rules.apply(inst, ev("t.aUndone"), at(10))
    assert ResolveIncident("a.compensation", "a", "critical") in effects
    assert inst.status == "compensated" and inst.ended_at == at(10)
    assert not inst.open_incidents and not inst.at_risk
    notes = [e.note for e in inst.timeline if e.kind == "status"]
    assert notes[-3:] == ["compensated after its deadline"] * 2 + ["compensated"]


def test_a_late_confirmation_after_an_operator_resolved_keeps_resolved() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    rules.apply(inst, ev("t.bFailed"), at(2))
    rules.deadline_passed(inst, "a.compensation", at(8))
    rules.act(inst, "resolve", None, "alice", "refunded by hand", at(9))
    assert rules.apply(inst, ev("t.aUndone"), at(10)) == [CancelDeadline("a.compensation")]
    assert inst.status == "resolved" and inst.steps["a"].status == "compensated"


def test_confirmed_compensations_end_compensated() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    rules.apply(inst, ev("t.bFailed"), at(2))
    effects = rules.apply(inst, ev("t.aUndone"), at(3))
    assert inst.status == "compensated" and CancelDeadline("a.compensation") in effects


def test_alert_timeout_raises_once_and_resolves_when_the_step_recovers() -> None:
    rules = reference()
    inst, _ = started(rules)
    rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(1))
    rules.apply(inst, ev(INV + "StockReserved"), at(2))
    first = rules.deadline_passed(inst, "shipping", at(62))
    assert first == [
        RaiseIncident("shipping", "shipping", "warning", "step shipping is late for o-1")
    ]
    assert rules.deadline_passed(inst, "shipping", at(63)) == []  # deduplicated
    effects = rules.apply(inst, ev(SHIP + "ShipmentDispatched"), at(70))
    assert ResolveIncident("shipping", "shipping", "warning") in effects and not inst.open_incidents
    rules.apply(inst, ev(ORDERS + "OrderCompleted"), at(71))
    assert inst.status == "completed"


def test_process_deadline_alerts_and_completion_resolves_it() -> None:
    rules = reference()
    inst, _ = started(rules)
    assert rules.deadline_passed(inst, PROCESS, at(120))[0].name == PROCESS
    effects = rules.apply(inst, ev(ORDERS + "OrderCompleted"), at(130))
    assert ResolveIncident(PROCESS, None, "warning") in effects and inst.status == "completed"


def test_failed_step_with_fail_outcome_and_unknown_events() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    before = len(inst.timeline)
    assert rules.apply(inst, ev("t.SomethingElse"), at(1)) == []
    assert len(inst.timeline) == before
    rules_fail = custom(on_timeout="fail")
    inst2, _ = rules_fail.start(ev("t.Started"), T0)
    effects = rules_fail.deadline_passed(inst2, PROCESS, at(1))
    assert inst2.status == "failed" and any(isinstance(e, RaiseIncident) for e in effects)


def test_compensation_nothing_confirms_counts_as_done_once_sent() -> None:
    rules = custom()
    base = rules.definition.model_dump()
    for step in base["steps"]:
        step["compensation"]["completes_on"] = []
    rules = ProcessRules(ProcessDefinition.model_validate(base))
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    effects = rules.apply(inst, ev("t.bFailed"), at(2))
    assert [e.command for e in effects if isinstance(e, SendCommand)] == ["t.Undoa"]
    assert not any(isinstance(e, SetDeadline) for e in effects)
    assert inst.status == "compensated" and inst.steps["a"].status == "compensated"


def test_a_foreseen_step_failure_compensates_without_paging() -> None:
    rules = custom()
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.apply(inst, ev("t.aDone"), at(1))
    effects = rules.apply(inst, ev("t.bFailed"), at(2))
    assert not any(isinstance(e, RaiseIncident) for e in effects) and not inst.open_incidents
    assert inst.failure_reason == "step b failed: t.bFailed" and inst.status == "compensating"


def test_a_late_success_is_recorded_and_reopens_the_undo_until_confirmed_again() -> None:
    rules = reference()
    inst, _ = started(rules)
    effects = rules.deadline_passed(inst, "payment", at(15))  # in doubt: refunded at once
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [PAY + "RefundPayment"]
    rules.apply(inst, ev(PAY + "PaymentRefunded"), at(16))
    assert inst.status == "compensated" and list(inst.open_incidents) == ["payment"]

    # The payment happened after all, perhaps after the refund was handled: refund again, and
    # keep the page until that refund is confirmed.
    effects = rules.apply(inst, ev(PAY + "PaymentAuthorized"), at(17))
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [PAY + "RefundPayment"]
    late = [e for e in inst.timeline if e.event_type == PAY + "PaymentAuthorized"]
    assert late[0].note == "arrived while compensated"
    assert inst.status == "compensating" and list(inst.open_incidents) == ["payment"]
    effects = rules.apply(inst, ev(PAY + "PaymentRefunded"), at(18))
    assert ResolveIncident("payment", "payment", "critical") in effects and not inst.open_incidents
    # Inventory saw the payment too: the reservation may happen, so the undo waits for it.
    assert inst.status == "compensating" and inst.steps["reservation"].status == "running"
    effects = rules.apply(inst, ev(INV + "StockReserved"), at(19))
    assert [e.command for e in effects if isinstance(e, SendCommand)] == [INV + "ReleaseStock"]
    rules.apply(inst, ev(INV + "StockReleased"), at(20))
    assert inst.status == "compensated" and not inst.open_incidents


def test_a_late_success_of_a_step_that_failed_the_instance_lets_it_go_on() -> None:
    rules = custom()
    base = rules.definition.model_dump()
    base["steps"][0]["on_timeout"] = "fail"
    rules = ProcessRules(ProcessDefinition.model_validate(base))
    inst, _ = rules.start(ev("t.Started"), T0)
    rules.deadline_passed(inst, "a", at(10))
    assert inst.status == "failed" and list(inst.open_incidents) == ["a"]
    effects = rules.apply(inst, ev("t.aDone"), at(11))
    assert inst.status == "running"
    assert ResolveIncident("a", "a", "critical") in effects  # it reported: not stuck after all
    assert inst.steps["b"].status == "running"  # the process goes on
