"""The console's and API's side of repair at scale, over HTTP on loopback: reads scoped to teams,
instances found by step and search attribute, totals, the front page's value by step, a batch's
dry run (count per process and a sample, nothing sent) and its refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from choreograph.contracts.serde import AvroSerde
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, Principal, digest
from saga_tracker.actions import ActionDesk
from saga_tracker.service import build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_batches import V3, placed
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, definitions, send

ORDERS = definitions(V3)
TOKENS = {
    digest("platform"): Principal("platform", "operator"),
    digest("alice"): Principal("alice", "operator", teams=frozenset({"team-orders"})),
    digest("carol"): Principal("carol", "operator", teams=frozenset({"team-payments"})),
    digest("vera"): Principal("vera", "viewer", teams=frozenset({"team-payments"})),
}


def desk() -> ActionDesk:
    """A desk whose broker is never reached: dry runs and refusals send nothing."""
    return ActionDesk({"bootstrap.servers": "127.0.0.1:9"}, AvroSerde("http://127.0.0.1:9"),
                      ORDERS, MODELS, repartition="r", transactional_id="t")  # fmt: skip


@pytest.fixture(scope="module")
def kit() -> TestKit:
    kit = TestKit(build_tracker(ORDERS, MODELS), start=T0, partitions=2)
    for i in range(12):
        placed(kit, f"c-{i}", customer=f"cust-{i % 3}", total=str(10 * (i + 1)))
        if i % 2:
            send(kit, "com.acme.payments.PaymentAuthorized", corr=f"c-{i}", key=f"c-{i}")
        kit.advance(timedelta(seconds=1))
    return kit


def serve(kit: TestKit, *, scoped: bool = False) -> TraceServer:
    return TraceServer(
        committed_instances(lambda: kit.tasks),
        access=Access(TOKENS, scoped_reads=scoped),
        desk=desk(),
        facts=ORDERS.facts(),
    ).start()


@pytest.fixture(scope="module")
def server(kit: TestKit) -> Iterator[TraceServer]:
    srv = serve(kit)
    yield srv
    srv.stop()


def call(url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as reply:
            text = reply.read().decode()
            return reply.status, json.loads(text) if "json" in reply.headers[
                "Content-Type"
            ] else text
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        return err.code, json.loads(text) if "json" in err.headers["Content-Type"] else text


def test_instances_are_found_by_step_and_by_search_attribute(server: TraceServer) -> None:
    status, at_reservation = call(f"{server.url}/api/instances?step=reservation", "platform")
    assert status == 200
    assert sorted(i["correlation_id"] for i in at_reservation) == sorted(
        f"c-{i}" for i in range(1, 12, 2)
    )
    _, of_cust_1 = call(f"{server.url}/api/instances?attr.customer_id=cust-1", "platform")
    assert {i["correlation_id"] for i in of_cust_1} == {"c-1", "c-4", "c-7", "c-10"}
    assert of_cust_1[0]["attributes"]["customer_id"] == "cust-1"
    _, big = call(f"{server.url}/api/instances?attr.total.min=100&step=payment", "platform")
    assert {i["correlation_id"] for i in big} == {"c-10"}  # 110; c-9 (100) is at reservation
    _, totals = call(f"{server.url}/api/instances/totals?attr.customer_id=cust-0", "platform")
    assert totals["by_process"] == [{"process": "order-fulfilment", "count": 4,
                                     "value": 10.0 + 40 + 70 + 100}]  # fmt: skip
    assert {(r["step"], r["count"]) for r in totals["by_step"]} == {
        ("payment", 2),
        ("reservation", 2),
    }


def test_the_front_page_shows_open_instances_and_value_by_step(server: TraceServer) -> None:
    status, page = call(f"{server.url}/", "platform")
    assert status == 200
    values = {"payment": sum(10 * (i + 1) for i in range(0, 12, 2)),
              "reservation": sum(10 * (i + 1) for i in range(1, 12, 2))}  # fmt: skip
    for step, value in values.items():
        assert f"<td>{step}</td>" in page and f"<td>{value:,.2f}</td>" in page
    assert 'href="/traces?process=order-fulfilment&amp;step=payment"' in page


def test_scoped_reads_show_a_team_only_its_processes(kit: TestKit) -> None:
    srv = serve(kit, scoped=True)
    try:
        assert len(call(f"{srv.url}/api/instances", "alice")[1]) == 12  # team-orders owns it
        assert call(f"{srv.url}/api/instances", "vera") == (200, [])  # team-payments does not
        status, refused = call(f"{srv.url}/api/instances/c-1", "vera")
        assert status == 403
        assert refused["error"] == (
            "vera reads for team-payments; order-fulfilment is owned by team-orders and "
            "commerce-ops"
        )
        status, refused = call(f"{srv.url}/api/instances?process=order-fulfilment", "vera")
        assert status == 403 and "owned by team-orders" in refused["error"]
        assert len(call(f"{srv.url}/api/instances", "platform")[1]) == 12  # every team
    finally:
        srv.stop()
    unscoped = serve(kit)
    try:
        assert len(call(f"{unscoped.url}/api/instances", "vera")[1]) == 12  # viewers see all
    finally:
        unscoped.stop()


def test_a_dry_run_counts_and_samples_and_sends_nothing(server: TraceServer) -> None:
    body = {"query": {"step": "reservation"}, "action": "redrive", "step": "reservation",
            "reason": "inventory fixed", "dry_run": True}  # fmt: skip
    status, plan = call(f"{server.url}/api/batches", "alice", body)
    assert status == 200 and plan["dry_run"] is True
    assert (plan["count"], plan["processes"]) == (6, {"order-fulfilment": 6})
    assert plan["query"] == "step=reservation" and len(plan["sample"]) == 6
    assert {s["correlation_id"] for s in plan["sample"]} <= {f"c-{i}" for i in range(12)}


def test_a_batch_over_another_teams_process_is_refused_naming_its_owners(kit: TestKit) -> None:
    """On the desk itself: a refusal is audited at once, which needs the broker."""
    from saga_tracker.visibility.store import Filters

    committed = committed_instances(lambda: kit.tasks)
    every = Filters()

    def plan(principal: Principal, body: dict[str, Any]) -> Any:
        return desk().batch(
            principal,
            body,
            lambda most: committed.keys(every, most),
            lambda: {"order-fulfilment": committed.count(every)},
            lambda n: committed.page(every, n, None).summaries,
            "",
        )

    refused = plan(TOKENS[digest("carol")], {"action": "pause", "reason": "r", "dry_run": True})
    assert refused.status == 403 and refused.failure.outcome == "DENIED"
    assert "order-fulfilment is owned by team-orders and commerce-ops" in refused.body["error"]
    assert "narrow the query with process=" in refused.body["error"]
    platform = TOKENS[digest("platform")]
    for bad, says in (
        ({"action": "explode", "reason": "r"}, "action must be one of"),
        ({"action": "redrive", "reason": "r"}, "redrive needs the step"),
        ({"action": "pause", "reason": "r", "rate_per_s": 5000}, "1 to 1000"),
        ({"action": "pause", "reason": " "}, "give a reason"),
        ({"action": "pause", "reason": "r", "because": 1}, "unknown fields: because"),
    ):
        answer = plan(platform, bad)
        assert answer.status == 400 and says in answer.body["error"], bad
        assert answer.failure is not None and answer.failure.outcome == "INVALID"
    viewer = plan(TOKENS[digest("vera")], {"action": "pause", "reason": "r"})
    assert viewer.status == 403 and "may read but not act" in viewer.body["error"]


def test_a_query_the_store_cannot_answer_is_400(server: TraceServer) -> None:
    body = {"query": {"attr.total.min": "x"}, "action": "pause", "reason": "r", "dry_run": True}
    status, answer = call(f"{server.url}/api/batches", "platform", body)
    assert status == 400 and "a range bound is a number" in answer["error"]


def test_a_run_whose_count_moved_since_the_dry_run_is_refused(server: TraceServer) -> None:
    body = {"query": {"step": "payment"}, "action": "pause", "reason": "r", "expect": 5}
    status, refused = call(f"{server.url}/api/batches", "platform", body)
    assert status == 409 and "now chooses 6 instances, not the 5 shown" in refused["error"]


def test_the_dry_run_page_shows_the_count_the_sample_and_the_form(server: TraceServer) -> None:
    status, page = call(
        f"{server.url}/batches/new?step=payment&action=pause&action_step=payment", "platform"
    )
    assert status == 200
    assert '<strong id="count">6</strong>' in page
    # A bearer token's holder has no session: the page shows, the form needs a signed-in person.
    assert "<td>order-fulfilment</td><td>6</td>" in page
    status, listing = call(f"{server.url}/traces?step=payment&attr.customer_id=cust-0", "platform")
    assert status == 200 and 'href="/traces/c-0"' in listing and 'href="/traces/c-1"' not in listing
    assert '<input name="attr.customer_id" size="10" value="cust-0">' in listing
    assert "<option selected>payment</option>" in listing


def test_no_batch_page_without_batches(server: TraceServer, tmp_path: Path) -> None:
    assert call(f"{server.url}/api/batches", "platform") == (200, [])
    status, missing = call(f"{server.url}/api/batches/nope", "platform")
    assert status == 404 and missing["error"] == "no batch nope"
    assert "No batch operation yet." in call(f"{server.url}/batches", "platform")[1]
