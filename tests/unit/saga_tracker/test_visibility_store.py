"""The visibility store on SQLite: the same answers as the tracker's committed state, keyset
pages that visit every instance once, idempotent indexing, and no request that scans."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from choreograph.testing.testkit import TestKit
from saga_tracker.codec import encode
from saga_tracker.instance import Instance
from saga_tracker.service import build_tracker
from saga_tracker.traces import CommittedInstances, TraceServer
from saga_tracker.visibility.store import (
    BadQuery,
    ChangelogRecord,
    Filters,
    VisibilityStore,
)
from tests.unit.saga_tracker.test_tracker_service import (
    HAPPY_PATH,
    MODELS,
    T0,
    V1,
    definitions,
    send,
)

TOPIC = "saga-tracker.instances.changelog"
KINDS = {TOPIC: "instances", "saga-tracker.decisions.changelog": "decisions"}
STATUSES = ("running", "completed", "failed", "compensated")


def store_at(tmp_path: Path) -> VisibilityStore:
    return VisibilityStore(f"sqlite:///{tmp_path / 'visibility.db'}")


def committed_records(kit: TestKit) -> list[ChangelogRecord]:
    """What the tracker's instance changelog holds for a TestKit's committed state."""
    found = []
    for task in kit.tasks:
        view = task.committed_view("instances")
        assert view is not None
        for offset, (key, value) in enumerate(view.items()):
            found.append(ChangelogRecord(TOPIC, task.partition, offset, key, value))
    return found


def synthetic(n: int) -> list[ChangelogRecord]:
    """`n` instances over four statuses, some with open incidents, one per second."""
    records = []
    for i in range(n):
        inst = Instance(
            correlation_id=f"c-{i:04d}",
            process="order-fulfilment" if i % 3 else "refund",
            version=1,
            business_key=f"o-{i % 40}",
            started_at=T0 + timedelta(seconds=i // 2),  # pairs share a start: the key breaks ties
            status=STATUSES[i % 4],  # type: ignore[arg-type]
            open_incidents={"payment-timeout": "page"} if i % 7 == 0 else {},
        )
        records.append(
            ChangelogRecord(TOPIC, i % 4, i, f"{inst.correlation_id}/{inst.process}", encode(inst))
        )
    return records


@pytest.fixture
def kit() -> TestKit:
    kit = TestKit(build_tracker(definitions(V1), MODELS), start=T0, partitions=3)
    for kind in HAPPY_PATH:
        send(kit, f"com.acme.{kind}", corr="done", key="o-1")
        kit.advance(timedelta(minutes=1))
    send(kit, "com.acme.orders.OrderPlaced", corr="stuck", key="o-<2>")
    send(kit, "com.acme.payments.PaymentAuthorized", corr="stuck", key="o-<2>")
    kit.advance(timedelta(minutes=11))
    send(kit, "com.acme.orders.OrderPlaced", corr="late", key="o-3")
    return kit


def test_the_store_answers_as_the_committed_state_does(kit: TestKit, tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.apply(KINDS, committed_records(kit))
    committed = CommittedInstances(lambda: kit.tasks)
    asked = [
        Filters(),
        Filters(status="running"),
        Filters(process="order-fulfilment", status="completed"),
        Filters(business_key="o-<2>"),
        Filters(open_incidents=True),
        Filters(process="order-fulfilment", version=1),
        Filters(version=2),
        Filters(started_after=T0 + timedelta(minutes=5)),
        Filters(started_before=T0 + timedelta(minutes=5)),
    ]
    for filters in asked:
        assert store.page(filters, 50, None) == committed.page(filters, 50, None), filters
    assert store.page(Filters(), 50, None).summaries  # not an agreement on nothing
    assert store.page(Filters(open_incidents=True), 50, None).summaries  # "stuck" timed out
    assert store.page(Filters(version=1), 50, None).summaries
    assert not store.page(Filters(version=2), 50, None).summaries
    for corr in ("done", "stuck", "late"):
        assert store.find(corr) == committed.find(corr)


def test_pages_visit_every_matching_instance_once_newest_first(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    records = synthetic(230)
    store.apply(KINDS, records)
    for filters, expected in [
        (Filters(), 230),
        (Filters(status="failed"), len([r for r in records if r.value["status"] == "failed"])),
        (Filters(open_incidents=True), len([r for r in records if r.value["open_incidents"]])),
    ]:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = store.page(filters, 25, cursor)
            seen += page.summaries
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == expected
        assert len({s["correlation_id"] for s in seen}) == expected
        order = [(s["started_at"], s["correlation_id"]) for s in seen]
        assert order == sorted(order, reverse=True)


def completed(value: dict[str, Any]) -> dict[str, Any]:
    return {**value, "status": "completed"}


def test_indexing_again_or_out_of_order_changes_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    first = synthetic(40)
    later = [  # the same instances, completed, further on in their changelog partitions
        ChangelogRecord(r.topic, r.partition, r.offset + 1000, r.key, completed(r.value))
        for r in first
    ]
    assert store.apply(KINDS, first) == 40
    assert store.apply(KINDS, later) == 40
    done = store.page(Filters(status="completed"), 100, None).summaries
    positions = store.positions()
    assert len(done) == 40
    assert store.apply(KINDS, first) == 0  # replayed from the start: older than every row
    assert store.apply(KINDS, later) == 0  # the same records again
    assert store.page(Filters(status="completed"), 100, None).summaries == done
    assert store.positions() == positions  # positions never go back
    assert store.count() == 40


def test_a_deleted_instance_leaves_the_store(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    records = synthetic(3)
    store.apply(KINDS, records)
    gone = records[1]
    store.apply(KINDS, [ChangelogRecord(TOPIC, gone.partition, 5000, gone.key, None)])
    assert store.find(gone.value["correlation_id"]) is None
    assert store.count() == 2


def test_decisions_are_kept_per_correlation_id(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    decided = [{"decision_id": "d-1", "kind": "transition"}]
    topic = "saga-tracker.decisions.changelog"
    store.apply(KINDS, [ChangelogRecord(topic, 0, 0, "c-1", decided)])
    assert store.decisions("c-1") == decided
    assert store.decisions("c-2") == []


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(status="running"),
        Filters(process="refund"),
        Filters(process="refund", status="failed"),
        Filters(business_key="o-3"),
        Filters(business_key="o-3", status="failed"),
        Filters(open_incidents=True),
        Filters(status="running", started_after=T0, started_before=T0 + timedelta(hours=1)),
        Filters(started_after=T0),
    ],
    ids=repr,
)
def test_no_list_request_scans_or_sorts_every_instance(tmp_path: Path, filters: Filters) -> None:
    store = store_at(tmp_path)
    store.apply(KINDS, synthetic(200))
    for cursor in (None, store.page(filters, 5, None).next_cursor):
        plan = store.explain(filters, cursor)
        for line in plan.splitlines():
            assert "TEMP B-TREE" not in line, plan  # no sort of every matching row
            if "SCAN" in line:
                assert "USING" in line, plan  # an index walk that LIMIT stops, not a table scan


def test_a_request_the_store_cannot_answer_says_what_to_change(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    with pytest.raises(BadQuery, match="start again without it"):
        store.page(Filters(), 10, "not-a-cursor")
    with pytest.raises(BadQuery, match="1 to 500"):
        store.page(Filters(), 0, None)
    with pytest.raises(BadQuery, match="UTC offset"):
        Filters.from_query({"started_after": ["2026-01-01T00:00:00"]})


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TraceServer]:
    store = store_at(tmp_path)
    store.apply(KINDS, synthetic(120))
    server = TraceServer(store, decisions=store.decisions, approvals=store.approvals).start()
    yield server
    server.stop()


def fetch(url: str) -> tuple[int, Any, str | None]:
    try:
        with urllib.request.urlopen(url) as reply:
            return reply.status, json.loads(reply.read()), reply.headers.get("Link")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), None


def test_the_api_pages_by_link_header_and_refuses_bad_queries(api: TraceServer) -> None:
    url: str | None = f"{api.url}/api/instances?status=running&limit=7"
    seen: list[str] = []
    while url is not None:
        status, page, link = fetch(url)
        assert status == 200 and len(page) <= 7
        seen += [i["correlation_id"] for i in page]
        url = f"{api.url}{link.split(';')[0].strip('<>')}" if link else None
    assert len(seen) == len(set(seen)) == 30  # every fourth of 120 runs
    started = datetime.now(UTC).isoformat()
    status, body, _ = fetch(f"{api.url}/api/instances?started_after={started}")
    assert status == 200 and body == []
    for query, why in [
        ("limit=9999", "1 to 500"),
        ("cursor=zzz", "start again"),
        ("started_after=yesterday", "ISO 8601"),
        ("open_incidents=maybe", "true or false"),
    ]:
        status, body, _ = fetch(f"{api.url}/api/instances?{query}")
        assert status == 400 and why in body["error"], (query, body)
    status, one, _ = fetch(f"{api.url}/api/instances/c-0007")
    assert status == 200 and one["correlation_id"] == "c-0007"


def at_steps(n: int) -> list[ChangelogRecord]:
    """`n` instances with search attributes, each at one step (some paused, some ended)."""
    from saga_tracker.instance import StepState

    records = []
    for i in range(n):
        step = ("payment", "reservation", "shipping")[i % 3]
        status = "running" if i % 5 else "failed"
        inst = Instance(
            correlation_id=f"s-{i:04d}",
            process="order-fulfilment",
            version=3,
            business_key=f"o-{i}",
            started_at=T0 + timedelta(seconds=i),
            status=status,  # type: ignore[arg-type]
            value=float(10 * (i % 4 + 1)),
            attributes={
                "customer_id": f"cust-{i % 7}",
                "total": 10.0 * (i % 4 + 1),
                "currency": "EUR" if i % 2 else "CHF",
            },
            steps={step: StepState(step, "failed" if status == "failed" else "running")},
            paused_at=T0 if i % 6 == 0 else None,
        )
        records.append(
            ChangelogRecord(TOPIC, i % 4, i, f"{inst.correlation_id}/{inst.process}", encode(inst))
        )
    return records


def chosen(store: VisibilityStore, filters: Filters) -> list[str]:
    seen, cursor = [], None
    while True:
        page = store.page(filters, 7, cursor)
        seen += [s["correlation_id"] for s in page.summaries]
        if (cursor := page.next_cursor) is None:
            return seen


def test_steps_and_search_attributes_filter_as_the_committed_state_does(tmp_path: Path) -> None:
    from saga_tracker.codec import decode
    from saga_tracker.traces import _matches
    from saga_tracker.visibility.store import AttributeFilter

    store = store_at(tmp_path)
    records = at_steps(120)
    store.apply(KINDS, records)
    every = [decode(r.value) for r in records]
    asked = [
        Filters(step="payment"),
        Filters(step="reservation", status="failed"),
        Filters(paused=True),
        Filters(attributes=(AttributeFilter("customer_id", equals="cust-3"),)),
        Filters(attributes=(AttributeFilter("total", equals="20.0"),)),  # 20.0 is 20
        Filters(attributes=(AttributeFilter("total", at_least=25, at_most=40),)),
        Filters(
            step="shipping",
            attributes=(
                AttributeFilter("currency", equals="EUR"),
                AttributeFilter("total", at_least=30),
            ),
        ),
        Filters(processes=frozenset({"refund"})),
    ]
    for filters in asked:
        expected = [
            i.correlation_id
            for i in sorted(every, key=lambda i: i.started_at, reverse=True)
            if _matches(i, filters)  # the TestKit's reading of the same filters
        ]
        assert chosen(store, filters) == expected, filters
        assert store.count(filters) == len(expected), filters
    assert len(chosen(store, Filters(step="payment"))) == 40
    assert chosen(store, Filters(processes=frozenset({"refund"}))) == []


def test_totals_count_and_sum_per_process_status_and_step(tmp_path: Path) -> None:
    from saga_tracker.codec import decode
    from saga_tracker.traces import _committed_totals
    from saga_tracker.visibility.store import AttributeFilter

    store = store_at(tmp_path)
    records = at_steps(60)
    store.apply(KINDS, records)
    every = [decode(r.value) for r in records]
    for filters in (
        Filters(),
        Filters(step="payment"),
        Filters(attributes=(AttributeFilter("currency", equals="CHF"),)),
    ):
        assert store.totals(filters) == _committed_totals(every, filters), filters
    totals = store.totals(Filters())
    assert totals["by_status"] == [
        {"status": "failed", "count": 12, "value": sum(i.value or 0 for i in every[::5])},
        {"status": "running", "count": 48,
         "value": sum(i.value or 0 for n, i in enumerate(every) if n % 5)},
    ]  # fmt: skip
    at_risk = store.at_risk_by_step()
    assert {(r["step"], r["step_status"]) for r in at_risk} == {
        ("payment", "running"),
        ("reservation", "running"),
        ("shipping", "running"),
    }  # fmt: skip  (failed instances have ended: not at risk any more)
    assert sum(r["count"] for r in at_risk) == 48


def test_no_step_or_attribute_request_scans_or_sorts_every_instance(tmp_path: Path) -> None:
    from saga_tracker.visibility.store import AttributeFilter

    store = store_at(tmp_path)
    store.apply(KINDS, at_steps(300))
    for filters in (
        Filters(step="payment"),
        Filters(step="payment", status="running"),
        Filters(attributes=(AttributeFilter("customer_id", equals="cust-3"),)),
        Filters(attributes=(AttributeFilter("total", equals="20"),)),
        Filters(
            status="running",
            attributes=(
                AttributeFilter("customer_id", equals="cust-3"),
                AttributeFilter("total", at_least=10),
            ),
        ),
    ):
        for cursor in (None, store.page(filters, 5, None).next_cursor):
            plan = store.explain(filters, cursor)
            for line in plan.splitlines():
                assert "TEMP B-TREE" not in line, plan
                if "SCAN" in line:
                    assert "USING" in line, plan


def test_a_step_or_attribute_row_follows_its_instance_and_leaves_with_it(tmp_path: Path) -> None:
    from saga_tracker.visibility.store import AttributeFilter

    store = store_at(tmp_path)
    [first] = at_steps(1)
    store.apply(KINDS, [first])
    assert chosen(store, Filters(step="payment")) == ["s-0000"]
    moved = {**first.value, "steps": {"payment": {**first.value["steps"]["payment"],
                                                  "status": "completed"}},
             "attributes": {"customer_id": "cust-9"}}  # fmt: skip
    store.apply(KINDS, [ChangelogRecord(TOPIC, 0, 10, first.key, moved)])
    store.apply(KINDS, [first])  # an older record again: changes nothing
    assert chosen(store, Filters(step="payment")) == []
    cust = (AttributeFilter("customer_id", equals="cust-9"),)
    assert chosen(store, Filters(attributes=cust)) == ["s-0000"]
    store.apply(KINDS, [ChangelogRecord(TOPIC, 0, 11, first.key, None)])
    assert chosen(store, Filters(attributes=cust)) == [] and store.count() == 0


def test_a_store_of_an_earlier_schema_is_rebuilt_from_the_changelogs(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "visibility.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE saga_tracker_instances (key TEXT PRIMARY KEY, doc TEXT)")
    old.execute("CREATE TABLE saga_tracker_positions (topic TEXT, part INTEGER, next_offset INT)")
    old.execute("INSERT INTO saga_tracker_positions VALUES ('t', 0, 99)")
    old.commit()
    old.close()
    store = store_at(tmp_path)
    assert store.positions() == {}  # read the changelogs again, from their start
    store.apply(KINDS, at_steps(3))
    assert store.count() == 3


def test_the_list_query_string_reads_back_the_same_filters() -> None:
    from saga_tracker.visibility.store import AttributeFilter

    filters = Filters(
        process="p", version=2, status="running", step="payment", paused=False,
        open_incidents=True, started_after=T0,
        attributes=(AttributeFilter("region", equals="EU"),
                    AttributeFilter("total", at_least=10.5, at_most=100)),
    )  # fmt: skip
    query = {k: [v] for k, v in filters.query().items()}
    assert Filters.from_query(query) == filters
    with pytest.raises(BadQuery, match=r"attr\.NAME"):
        Filters.from_query({"attr.Bad-Name": ["x"]})
    with pytest.raises(BadQuery, match="a range bound is a number"):
        Filters.from_query({"attr.total.min": ["lots"]})
