"""Roles from the identity provider's groups: viewers and platform operators for every team,
team operators and approvers for their team's processes; no group, no role."""

from __future__ import annotations

import pytest

from saga_tracker.__main__ import main as tracker
from saga_tracker.signin import grants_of, principal_of

ORDER_OWNERS = ["team-orders", "commerce-ops"]


def test_groups_give_roles_per_team() -> None:
    assert grants_of(["team-orders-operators", "team-orders-approvers", "staff"]) == [
        ("approver", frozenset({"team-orders"})),
        ("operator", frozenset({"team-orders"})),
    ]
    assert grants_of(["choreograph-viewers"]) == [("viewer", None)]


def test_a_signed_in_person_acts_only_for_their_teams() -> None:
    bob = principal_of(
        {"name": "bob", "groups": ["team-orders-operators", "team-orders-approvers"]}
    )
    assert bob is not None and bob.may("read") and bob.may("act") and bob.may("approve")
    assert bob.serves(ORDER_OWNERS, "act") and bob.serves(ORDER_OWNERS, "approve")
    carol = principal_of({"name": "carol", "groups": ["team-payments-operators"]})
    assert carol is not None and not carol.serves(ORDER_OWNERS, "act")
    assert not carol.may("approve") and carol.teams_for("act") == {"team-payments"}
    platform = principal_of({"name": "pat", "groups": ["choreograph-operators"]})
    assert platform is not None and platform.serves(ORDER_OWNERS, "act")


def test_no_group_gives_no_role() -> None:
    assert principal_of({"name": "eve", "groups": ["staff", "-operators"]}) is None


def test_run_with_an_issuer_but_no_secrets_says_which_are_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGA_TRACKER_OIDC_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("SAGA_TRACKER_SESSION_SECRET", "s" * 32)
    with pytest.raises(SystemExit) as ended:
        tracker(["run", "--oidc-issuer", "http://127.0.0.1:8180/realms/choreograph"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "--oidc-issuer needs SAGA_TRACKER_OIDC_CLIENT_SECRET in the environment" in err
