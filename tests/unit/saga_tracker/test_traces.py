"""The trace API and pages, over HTTP on loopback, on instances the tracker produced."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from choreograph.testing.testkit import TestKit
from saga_tracker.service import build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_tracker_service import (
    HAPPY_PATH,
    MODELS,
    T0,
    V1,
    definitions,
    send,
)


@pytest.fixture
def server() -> Iterator[tuple[TraceServer, TestKit]]:
    kit = TestKit(build_tracker(definitions(V1), MODELS), start=T0)
    for kind in HAPPY_PATH:
        send(kit, f"com.acme.{kind}", corr="done", key="o-1")
        kit.advance(timedelta(minutes=1))
    send(kit, "com.acme.orders.OrderPlaced", corr="stuck", key="o-<2>")
    send(kit, "com.acme.payments.PaymentAuthorized", corr="stuck", key="o-<2>")
    kit.advance(timedelta(minutes=11))
    send(kit, "com.acme.payments.PaymentRefunded", corr="stuck", key="o-<2>")  # confirmed
    send(kit, "com.acme.inventory.StockReleased", corr="stuck", key="o-<2>")  # confirmed
    srv = TraceServer(committed_instances(lambda: kit.tasks)).start()
    yield srv, kit
    srv.stop()


def get(url: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(url) as reply:
            body = reply.read().decode()
            kind = reply.headers["Content-Type"]
            return reply.status, kind, json.loads(body) if "json" in kind else body
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], json.loads(err.read())


def test_list_and_filter(server: tuple[TraceServer, TestKit]) -> None:
    srv, _ = server
    status, _, everything = get(f"{srv.url}/api/instances")
    assert status == 200 and {i["correlation_id"] for i in everything} == {"done", "stuck"}
    _, _, compensated = get(f"{srv.url}/api/instances?status=compensated")
    assert [i["correlation_id"] for i in compensated] == ["stuck"]
    _, _, by_key = get(f"{srv.url}/api/instances?business_key=o-1&process=order-fulfilment")
    assert [i["status"] for i in by_key] == ["completed"]
    _, _, of_v1 = get(f"{srv.url}/api/instances?version=1")
    assert len(of_v1) == 2 and get(f"{srv.url}/api/instances?version=2")[2] == []
    status, _, bad = get(f"{srv.url}/api/instances?version=one")
    assert status == 400 and "a process version is a whole number" in bad["error"]


def test_the_list_page_filters_with_a_form_shareable_as_a_url(
    server: tuple[TraceServer, TestKit],
) -> None:
    srv, _ = server
    # What the form sends: every field, the empty ones blank.
    asked = ("process=&version=1&status=compensated&business_key=&started_after="
             "&started_before=&open_incidents=true")  # fmt: skip
    status, _, page = get(f"{srv.url}/traces?{asked}")
    assert status == 200
    assert 'href="/traces/stuck"' in page and 'href="/traces/done"' not in page
    assert "<option selected>compensated</option>" in page
    assert 'name="open_incidents" value="true" checked' in page and 'value="1"' in page
    assert re.search(r"2026-\d\d-\d\d \d\d:\d\d:\d\d UTC</time> \(\d+ d ago\)", page)
    _, _, nothing = get(f"{srv.url}/traces?status=failed")
    assert "No instance matches." in nothing


def test_one_trace_has_latencies_causation_and_failure(server: tuple[TraceServer, TestKit]) -> None:
    srv, _ = server
    _, _, done = get(f"{srv.url}/api/instances/done")
    assert done["step_latency_ms"] == {"payment": 60_000, "reservation": 60_000, "shipping": 60_000}
    assert [c["type"] for c in done["causation"]][:2] == [
        "com.acme.orders.OrderPlaced",
        "com.acme.payments.PaymentAuthorized",
    ]
    _, _, stuck = get(f"{srv.url}/api/instances/stuck")
    assert (
        stuck["failure_reason"] == "step reservation timed out" and stuck["status"] == "compensated"
    )
    assert get(f"{srv.url}/api/instances/nobody")[0] == 404


def test_pages_render_and_escape(server: tuple[TraceServer, TestKit]) -> None:
    srv, _ = server
    status, kind, page = get(f"{srv.url}/traces")
    assert status == 200 and kind.startswith("text/html")
    assert 'href="/traces/done"' in page and 'href="/traces/stuck"' in page
    _, _, trace_page = get(f"{srv.url}/traces/stuck")
    assert (
        "step reservation timed out" in trace_page
        and "sent com.acme.payments.RefundPayment" in trace_page
    )
    assert "o-&lt;2&gt;" in trace_page and "o-<2>" not in trace_page  # business data is escaped
    assert 'open incidents: <span class="failed">reservation (critical)</span>' in trace_page


def test_reads_need_a_token_when_tokens_are_configured(server: tuple[TraceServer, TestKit]) -> None:
    from saga_tracker.access import Access, Principal, digest

    _, kit = server
    access = Access({digest("v"): Principal("victor", "viewer")})
    srv = TraceServer(committed_instances(lambda: kit.tasks), access=access).start()
    try:
        request = urllib.request.Request(f"{srv.url}/api/instances")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(request)
        assert denied.value.code == 401
        assert denied.value.headers["WWW-Authenticate"].startswith("Bearer")
        request.add_header("Authorization", "Bearer v")
        with urllib.request.urlopen(request) as reply:
            assert {i["correlation_id"] for i in json.load(reply)} == {"done", "stuck"}
        action = urllib.request.Request(
            f"{srv.url}/api/instances/stuck/actions", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as disabled:
            urllib.request.urlopen(action)
        assert disabled.value.code == 503  # no action desk: actions are off
    finally:
        srv.stop()


def test_an_over_long_request_target_is_414(server: tuple[TraceServer, TestKit]) -> None:
    srv, _ = server
    status, _, answer = get(f"{srv.url}/api/instances?process={'x' * 9000}")
    assert status == 414 and "at most 8192 bytes" in answer["error"]
    assert get(f"{srv.url}/api/instances?process={'x' * 4000}")[0] == 200


def test_the_incidents_view_lists_open_incidents_with_their_severity(
    server: tuple[TraceServer, TestKit],
) -> None:
    srv, _ = server
    status, _, page = get(f"{srv.url}/incidents")
    assert status == 200 and 'href="/traces/stuck"' in page and 'href="/traces/done"' not in page
    assert '<span class="failed">reservation (critical)</span>' in page
    _, _, listing = get(f"{srv.url}/traces")
    assert 'href="/incidents"' in listing
