"""The visibility store on a real PostgreSQL: the same pages and idempotent indexing as on
SQLite, and a database outage is a pause: reads answer 503 with Retry-After, the indexer keeps
its batch, and once the database is back nothing is missing."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from saga_tracker.traces import TraceServer
from saga_tracker.visibility.indexer import Indexer
from saga_tracker.visibility.store import (
    ChangelogRecord,
    Filters,
    VisibilityMisconfigured,
    VisibilityStore,
)
from tests.unit.saga_tracker.test_visibility_store import KINDS, TOPIC, synthetic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
STACK = REPO / "deploy/local/stack.sh"


def fresh_store(url: str) -> VisibilityStore:
    return VisibilityStore(url, f"tracker-{uuid.uuid4().hex[:8]}")  # tables of its own


def test_pages_and_idempotent_indexing_on_postgres(postgres_url: str) -> None:
    store = fresh_store(postgres_url)
    records = synthetic(230)
    assert store.apply(KINDS, records) == 230  # rows written, counted by the database
    assert store.apply(KINDS, records) == 0  # replayed: nothing changes
    seen, cursor = [], None
    while True:
        page = store.page(Filters(status="running"), 20, cursor)
        seen += [s["correlation_id"] for s in page.summaries]
        if (cursor := page.next_cursor) is None:
            break
    running = [r.value["correlation_id"] for r in records if r.value["status"] == "running"]
    assert sorted(seen) == sorted(running) and len(seen) == len(set(seen))
    assert store.find("c-0003") is not None
    store.close()


def test_a_database_outage_is_a_pause_for_readers_and_the_indexer(postgres_url: str) -> None:
    store = fresh_store(postgres_url)
    store.apply(KINDS, synthetic(10))
    server = TraceServer(store).start()
    indexer = Indexer(store, {}, KINDS)
    late = [  # what the indexer holds when the database goes away
        ChangelogRecord(
            TOPIC, 0, 10_000 + i, f"late-{i}/refund", {**value, "correlation_id": f"late-{i}"}
        )
        for i, value in enumerate(r.value for r in synthetic(5))
    ]
    try:
        subprocess.run(["bash", str(STACK), "stop", "postgres"], check=True, timeout=60)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/api/instances")
        assert refused.value.code == 503 and refused.value.headers["Retry-After"]
        applying = threading.Thread(target=indexer._apply, args=(late,))
        applying.start()
        applying.join(3)
        assert applying.is_alive()  # waiting for the database, batch in hand
    finally:
        subprocess.run(["bash", str(STACK), "start", "postgres"], check=True, timeout=120)
    applying.join(30)
    assert not applying.is_alive()
    with urllib.request.urlopen(f"{server.url}/api/instances?limit=100") as reply:
        assert reply.status == 200
    assert {f"late-{i}" for i in range(5)} <= {
        s["correlation_id"] for s in store.page(Filters(), 100, None).summaries
    }
    assert store.count() == 15
    server.stop()
    store.close()


def wrong_password(url: str) -> str:
    return url.replace("choreograph:choreograph@", "choreograph:wrong@")


def no_such_database(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/no_such_database"


@pytest.mark.parametrize(
    ("change", "advice"),
    [(wrong_password, "check the user and the password"), (no_such_database, "does not exist")],
)
def test_a_url_that_cannot_work_stops_the_ui_with_what_to_change(
    postgres_url: str, change: Callable[[str], str], advice: str
) -> None:
    wrong = change(postgres_url)
    assert wrong != postgres_url
    with pytest.raises(VisibilityMisconfigured, match=advice) as refused:
        fresh_store(wrong).positions()
    assert "wrong@" not in str(refused.value)  # the password is never printed
    ui = subprocess.run(
        [sys.executable, "-m", "saga_tracker", "ui", "--no-index", "--visibility-url", wrong,
         "--http-port", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert ui.returncode == 2, ui.stderr
    assert advice in ui.stderr


def test_steps_attributes_and_totals_on_postgres(postgres_url: str) -> None:
    """The same answers as on SQLite (checked there against the TestKit's reading), with
    PostgreSQL's plans walking an index."""
    from saga_tracker.codec import decode
    from saga_tracker.traces import _committed_totals, _matches
    from saga_tracker.visibility.store import AttributeFilter
    from tests.unit.saga_tracker.test_visibility_store import at_steps, chosen

    store = fresh_store(postgres_url)
    records = at_steps(120)
    store.apply(KINDS, records)
    store.apply(KINDS, records)  # again: nothing doubles
    every = sorted((decode(r.value) for r in records), key=lambda i: i.started_at, reverse=True)
    for filters in (
        Filters(step="payment"),
        Filters(step="reservation", status="failed"),
        Filters(paused=True),
        Filters(attributes=(AttributeFilter("customer_id", equals="cust-3"),)),
        Filters(attributes=(AttributeFilter("total", equals="20.0"),)),
        Filters(
            step="shipping",
            attributes=(
                AttributeFilter("currency", equals="EUR"),
                AttributeFilter("total", at_least=30),
            ),
        ),
    ):
        assert chosen(store, filters) == [i.correlation_id for i in every if _matches(i, filters)]
        assert store.totals(filters) == _committed_totals(every, filters)
    plan = store.explain(Filters(attributes=(AttributeFilter("customer_id", equals="cust-3"),)))
    assert "attributes_by_text" in plan, plan
    store.drop()
    store.close()
