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
