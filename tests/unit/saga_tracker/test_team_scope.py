"""Roles are scoped to teams: an operator or approver of one team acts only on the processes
that team owns, and the refusal names the owner; a token without teams acts for all."""

from __future__ import annotations

from pathlib import Path

from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, Principal, digest
from saga_tracker.actions import ActionDesk, owning_teams, refuse_other_team
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)
from tests.unit.saga_tracker.test_tracker_service import MODELS, V1, definitions

ORDERS = definitions(V1)
PROCESS = ORDERS.latest["order-fulfilment"].definition


def desk() -> ActionDesk:
    """A desk whose broker is never reached: every refusal here comes before anything is sent."""
    from choreograph.contracts.serde import AvroSerde

    return ActionDesk({"bootstrap.servers": "127.0.0.1:9"}, AvroSerde("http://127.0.0.1:9"),
                      ORDERS, MODELS, repartition="r", transactional_id="t")  # fmt: skip


def test_the_token_file_scopes_a_token_to_teams(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f"  - {{name: carol, role: operator, sha256: {digest('c')}, teams: [team-payments]}}\n"
        f"  - {{name: platform, role: operator, sha256: {digest('p')}}}\n"
    )
    access = Access.load(tokens)
    carol, platform = access.who("Bearer c"), access.who("Bearer p")
    assert carol is not None and carol.teams == frozenset({"team-payments"})
    assert platform is not None and platform.teams is None


def test_a_process_belongs_to_its_technical_and_business_owners() -> None:
    assert owning_teams(PROCESS) == ["team-orders", "commerce-ops"]
    alice = Principal("alice", "operator", teams=frozenset({"team-orders"}))
    ops = Principal("olga", "operator", teams=frozenset({"commerce-ops"}))
    platform = Principal("platform", "operator")
    for allowed in (alice, ops, platform):
        assert refuse_other_team(allowed, PROCESS, {}) is None


def test_another_teams_operator_is_refused_naming_the_owner(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
) -> None:
    _, kit = traced
    stuck = committed_instances(lambda: kit.tasks).find("stuck")
    carol = Principal("carol", "operator", teams=frozenset({"team-payments"}))
    body = {"action": "resolve", "reason": "looked at it"}
    reply = desk().request(carol, "stuck", body, stuck)
    assert reply.status == 403
    assert reply.body["error"] == (
        "carol acts for team-payments; order-fulfilment is owned by team-orders and "
        "commerce-ops: one of their operators can do this"
    )
    assert reply.failure is not None and reply.failure.outcome == "DENIED"


def test_another_teams_approver_is_refused_and_an_unowned_request_too(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
) -> None:
    _, kit = traced
    stuck = committed_instances(lambda: kit.tasks).find("stuck")
    request = {"approval_id": "a-1", "correlation_id": "stuck", "status": "pending",
               "machine": "goodwill", "instance": "o-2", "requested_by": "agent"}  # fmt: skip
    dave = Principal("dave", "approver", teams=frozenset({"team-payments"}))
    body = {"decision": "grant", "reason": "fine"}
    refused = desk().decide(dave, "a-1", body, request, stuck)
    assert refused.status == 403 and "owned by team-orders" in refused.body["error"]
    unowned = desk().decide(dave, "a-1", body, request, None)
    assert unowned.status == 403 and "no tracked process says which team" in unowned.body["error"]
