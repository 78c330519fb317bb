"""The topics the tracker follows come from its definitions and the contracts; given by hand,
one that leaves a followed type unread is refused, naming the definition, type and topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from choreograph.cli.main import main as choreograph
from saga_tracker.__main__ import main as tracker
from saga_tracker.definitions import Definitions, DefinitionsUnreadable, tracked_inputs

REPO = Path(__file__).resolve().parents[3]

TEAM_PROCESS = """\
name: loyalty-enrolment
version: 1
description: A request for loyalty membership, answered.
owners: {business: loyalty-ops, technical: team-loyalty, on_call: loyalty-oncall}
start: com.acme.loyalty.LoyaltyRequested
deadline: 1h
success: [com.acme.loyalty.LoyaltyRequested]
steps:
  - name: enrolment
    owner: team-loyalty
    completes_on: [com.acme.loyalty.LoyaltyRequested]
"""


def test_the_reference_definitions_follow_the_reference_topics() -> None:
    found = tracked_inputs(Definitions.load(REPO / "processes"), REPO / "schemas/avro")
    assert found == ["inventory.events", "orders.events", "payments.events", "shipping.events",
                     "choreograph.decisions", "choreograph.approvals"]  # fmt: skip


def test_a_teams_definitions_follow_the_teams_topics(tmp_path: Path) -> None:
    assert choreograph(["init", "acme-loyalty", "--dir", str(tmp_path / "team")]) == 0
    (tmp_path / "team/processes/loyalty-enrolment.v1.yaml").write_text(TEAM_PROCESS)
    definitions = Definitions.load(tmp_path / "team/processes")
    found = tracked_inputs(definitions, tmp_path / "team/schemas/avro")
    assert found == ["loyalty.events", "choreograph.decisions", "choreograph.approvals"]
    with pytest.raises(DefinitionsUnreadable, match=(
        r"process loyalty-enrolment v1 follows com\.acme\.loyalty\.LoyaltyRequested on "
        r"loyalty\.events, which --inputs \(orders\.events\) does not include"
    )):  # fmt: skip
        tracked_inputs(definitions, tmp_path / "team/schemas/avro", ["orders.events"])
    # A sandbox copy of the topic carries its events.
    sandbox = ["sandbox-7.loyalty.events"]
    assert tracked_inputs(definitions, tmp_path / "team/schemas/avro", sandbox) == sandbox
    with pytest.raises(DefinitionsUnreadable, match=r"has no contract in .*contracts pull"):
        tracked_inputs(definitions, REPO / "schemas/avro")


def test_run_refuses_to_start_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    line = [
        "run",
        "--definitions",
        str(REPO / "processes"),
        "--schemas",
        str(REPO / "schemas/avro"),
    ]
    code = tracker([*line, "--inputs", "orders.events"])
    assert code == 2
    err = capsys.readouterr().err
    assert "follows com.acme.payments.PaymentAuthorized on payments.events" in err


def test_pulled_contracts_beside_the_teams_are_followed(tmp_path: Path) -> None:
    """A team's process over another team's event: the contract was pulled, not copied."""
    assert choreograph(["init", "acme-loyalty", "--dir", str(tmp_path / "team")]) == 0
    pulled = tmp_path / "team/schemas/pulled/orders"
    pulled.mkdir(parents=True)
    (pulled / "OrderPlaced.avsc").write_text(
        (REPO / "schemas/avro/orders/OrderPlaced.avsc").read_text()
    )
    (tmp_path / "team/schemas/pulled/schemas.yaml").write_text("records: {}\n")
    process = TEAM_PROCESS.replace("start: com.acme.loyalty.LoyaltyRequested",
                                   "start: com.acme.orders.OrderPlaced")  # fmt: skip
    (tmp_path / "team/processes/loyalty-enrolment.v1.yaml").write_text(process)
    definitions = Definitions.load(tmp_path / "team/processes")
    found = tracked_inputs(definitions, tmp_path / "team/schemas/avro")
    assert found[:2] == ["loyalty.events", "orders.events"]
