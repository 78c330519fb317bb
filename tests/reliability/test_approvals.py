"""An approval with four eyes, end to end on the real stack: customer service asks for a goodwill
refund, the orders service waits for an approver, the saga tracker lists the request and takes a
decision only from an approver who is not the requester; the answer moves the order's machine,
with a decision record naming the approver, and every attempt is audited."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.cli.main import main
from choreograph.testing.servers import Servers
from choreograph_examples.contracts.orders import GoodwillRefundApproved, GoodwillRefundRequested
from saga_tracker.access import digest
from tests.integration.saga_tracker.helpers import collect
from tests.reliability.choreography import reference_choreography, require_local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
TOKENS = {name: f"{name}-{uuid.uuid4().hex}" for name in ("ann", "bo", "oscar", "vic")}
APPROVED = GoodwillRefundApproved.__avro_name__
ROLES = {"ann": "approver", "bo": "approver", "oscar": "operator", "vic": "viewer"}


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_goodwill_refund_waits_for_a_second_person(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_local_stack(servers)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n" + "".join(
        f"  - {{name: {n}, role: {ROLES[n]}, sha256: {digest(t)}}}\n" for n, t in TOKENS.items()
    ))  # fmt: skip
    with reference_choreography(
        servers, tmp_path, orders=0, tracker_args=["--tokens", str(tokens)]
    ) as run:
        key = f"ord-{run.run}-gw"
        ask = GoodwillRefundRequested(order_id=key, amount=Decimal("15.00"),
                                      requested_by="ann", reason="parcel 9 days late")  # fmt: skip
        placed = run.publisher().publish(ask, key, topic="orders.events")
        run.publisher().flush(30)
        corr = placed.correlation_id
        pending = f"{run.api}/api/approvals?status=pending"
        deadline = time.monotonic() + 60
        mine: list[dict[str, Any]] = []
        while not mine and time.monotonic() < deadline:
            time.sleep(0.5)
            mine = [a for a in call(pending, TOKENS["vic"])[1] if a["correlation_id"] == corr]
        assert mine, "the approval request never reached the tracker"
        [request] = mine
        assert (request["machine"], request["state"], request["requested_by"]) == (
            "goodwill", "review", "ann"
        )  # fmt: skip
        url = f"{run.api}/api/approvals/{request['approval_id']}"
        grant = {"decision": "grant", "reason": "late parcel confirmed"}
        assert call(url, None, grant)[0] == 401
        assert call(url, TOKENS["oscar"], grant)[0] == 403  # operators do not approve
        assert call(url, TOKENS["vic"], grant)[0] == 403
        four_eyes = call(url, TOKENS["ann"], grant)
        assert four_eyes[0] == 403 and "ann caused this request" in four_eyes[1]["error"]
        assert call(url, TOKENS["bo"], {"decision": "grant"})[0] == 400
        assert call(url, TOKENS["bo"], grant)[0] == 202
        assert call(url, TOKENS["bo"], grant)[0] == 409  # decided once

        approved = collect(
            servers.bootstrap, servers.registry_url, "orders.events", {corr}, seconds=60,
            until=lambda found: any(env.type == APPROVED for env, _ in found),
        )  # fmt: skip
        assert [(body["order_id"], body["requested_by"]) for env, body in approved
                if env.type == APPROVED] == [(key, "ann")]  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            decided = call(f"{run.api}/api/approvals", TOKENS["vic"])[1]
            [now] = [a for a in decided if a["approval_id"] == request["approval_id"]]
            if now["status"] != "pending":
                break
            time.sleep(0.5)
        assert (now["status"], now["approver"]) == ("granted", "bo")

    code = main(["audit", "show", "--correlation-id", corr, "--format", "json",
                 "--bootstrap", servers.bootstrap, "--registry", servers.registry_url])  # fmt: skip
    decisions = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(d["kind"], d["from_state"], d["to_state"], d["actor"]) for d in decisions] == [
        ("transition", "new", "review", "orders"),
        ("approval", "review", "approved", "bo"),
    ]
    assert decisions[1]["actor_kind"] == "approver"
    assert decisions[1]["reason"] == "granted: late parcel confirmed"

    def all_of_bo(found: list[tuple[Any, Any]]) -> bool:
        return sum(e["actor"] == "bo" for _, e in found) >= 3  # invalid, accepted, refused

    audit = collect(servers.bootstrap, servers.registry_url, "choreograph.audit", {corr},
                    seconds=30, until=all_of_bo)  # fmt: skip
    entries = {(e["actor"], e["outcome"]) for _, e in audit}
    # Failed checks of who asks are audited once per client and window (see throttle).
    assert {("ann", "REFUSED"), ("bo", "ACCEPTED"), ("bo", "REFUSED")} <= entries
    assert any(outcome == "DENIED" for _, outcome in entries)
