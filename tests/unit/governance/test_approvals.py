"""Approvals with four eyes, in the TestKit: the reference goodwill refund waits for an approver
who is not the agent who asked; the answer moves the machine with a decision naming them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from choreograph import MachineDefinitionError, StateMachine, TestKit
from choreograph.governance.approvals import ApprovalRefused
from choreograph.governance.contracts_bound import APPROVALS_TOPIC, DECISIONS_TOPIC
from choreograph_examples.contracts.orders import GoodwillRefundApproved, GoodwillRefundRequested
from choreograph_examples.orders.service import build as orders
from tests.unit.governance.test_policies import T0

ASK = GoodwillRefundRequested(
    order_id="o-1", amount=Decimal("15.00"), requested_by="agent-ann", reason="late parcel"
)


def test_a_state_that_needs_approval_asks_and_waits_for_another_person() -> None:
    service = orders()
    assert APPROVALS_TOPIC in service.inputs and APPROVALS_TOPIC in service.outputs
    kit = TestKit(service, start=T0)
    kit.send(ASK, key="o-1", correlation_id="p-1")
    [request] = kit.approvals()
    assert (request.machine, request.state, request.instance) == ("goodwill", "review", "o-1")
    assert request.requested_by == "agent-ann" and request.correlation_id == "p-1"
    assert request.summary == "goodwill refund of 15.00: late parcel"
    with pytest.raises(ApprovalRefused, match="agent-ann caused this request"):
        kit.approve(request, "agent-ann", "looks fine")  # four eyes
    with pytest.raises(ApprovalRefused, match="needs a reason"):
        kit.approve(request, "lead-bo", "  ")
    assert kit.events(GoodwillRefundApproved) == []  # still waiting
    kit.approve(request, "lead-bo", "parcel was 9 days late")
    [approved] = kit.events(GoodwillRefundApproved)
    assert (approved.order_id, approved.amount, approved.requested_by) == (
        "o-1", Decimal("15.00"), "agent-ann"
    )  # fmt: skip
    decision = kit.emitted(topic=DECISIONS_TOPIC)[-1].event
    assert (decision.kind, decision.from_state, decision.to_state) == (  # type: ignore[union-attr]
        "approval", "review", "approved"
    )  # fmt: skip
    assert (decision.actor, decision.actor_kind) == ("lead-bo", "approver")  # type: ignore[union-attr]
    assert decision.reason == "granted: parcel was 9 days late"  # type: ignore[union-attr]
    assert kit.approvals() == []


def test_a_denial_ends_it_and_a_stale_answer_changes_nothing() -> None:
    kit = TestKit(orders(), start=T0)
    kit.send(ASK, key="o-1")
    [request] = kit.approvals()
    kit.deny(request, "lead-bo", "already refunded in store")
    machine = next(m for m in kit.service.machines if m.name == "goodwill")
    assert kit.state(machine, "o-1").state == "declined"  # type: ignore[union-attr]
    kit.approve(request, "lead-cy", "changed my mind")  # answers a request no longer waiting
    assert kit.state(machine, "o-1").state == "declined"  # type: ignore[union-attr]
    assert kit.events(GoodwillRefundApproved) == []


def test_an_approval_that_leads_nowhere_fails_when_the_machine_is_added() -> None:
    machine = StateMachine("m")
    machine.state("review")
    machine.terminal("done")
    machine.approval("review", granted="done", denied="nowhere")
    with pytest.raises(MachineDefinitionError, match="unknown state 'nowhere'"):
        machine.validate()
