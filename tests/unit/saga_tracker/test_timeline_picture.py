"""The instance page's timeline picture: a bar per step from its start to its report, its
deadline, marks for timeouts and compensations, all drawn server-side and escaped."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from xml.etree import ElementTree

from choreograph.testing.testkit import TestKit
from saga_tracker.timeline import picture
from saga_tracker.traces import PAGES, TraceServer, committed_instances
from tests.unit.saga_tracker.test_traces import get
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)


def test_the_stuck_instance_is_drawn_step_by_step(traced: tuple[TraceServer, TestKit]) -> None:  # noqa: F811
    srv, kit = traced
    stuck = committed_instances(lambda: kit.tasks).find("stuck")
    assert stuck is not None
    pic = picture(stuck, datetime.now(UTC))
    rows = {row.label: row for row in pic.rows}
    assert list(rows) == [*stuck.steps, "process"]
    payment = rows["payment"]
    assert payment.bars and payment.bars[0].status == stuck.steps["payment"].status
    assert rows["reservation"].ticks  # its deadline, which passed
    kinds = {m.kind for row in pic.rows for m in row.marks}
    assert {"timeout", "compensation"} <= kinds, kinds
    xs = [b.x for row in pic.rows for b in row.bars] + [m.x for r in pic.rows for m in r.marks]
    assert all(140 <= x <= pic.width for x in xs)

    status, _, page = get(f"{srv.url}/traces/stuck")
    assert status == 200 and "<svg" in page and 'data-step="reservation"' in page
    assert re.search(r'<rect class="bar [a-z_]+"', page)
    assert "UTC</time> (" in page and "ago)" in page  # times with their zone, and relative


def test_what_the_picture_shows_is_escaped(traced: tuple[TraceServer, TestKit]) -> None:  # noqa: F811
    _, kit = traced
    stuck = committed_instances(lambda: kit.tasks).find("stuck")
    assert stuck is not None
    hostile = dataclasses.replace(stuck.timeline[-1], note="<script>alert(1)</script>",
                                  step="payment", kind="incident")  # fmt: skip
    stuck.timeline.append(hostile)
    drawn = PAGES.get_template("timeline.svg").render(pic=picture(stuck, datetime.now(UTC)))
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    ElementTree.fromstring(drawn)  # well-formed: a browser draws it


def test_a_trace_links_its_instance_in_jaeger_when_configured(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
) -> None:
    _, kit = traced
    stuck = committed_instances(lambda: kit.tasks).find("stuck")
    assert stuck is not None
    traced_one = dataclasses.replace(stuck, traceparent=f"00-{'ab' * 16}-{'cd' * 8}-01")
    linked = TraceServer(committed_instances(lambda: kit.tasks), jaeger_url="http://jaeger:16686/")
    try:
        assert linked._jaeger(traced_one) == f"http://jaeger:16686/trace/{'ab' * 16}"
        assert linked._jaeger(dataclasses.replace(stuck, traceparent=None)) is None
    finally:
        linked.socket.close()


def test_a_pause_is_a_band_from_pause_to_resume_and_on_to_now_while_paused() -> None:
    from datetime import timedelta

    from tests.unit.saga_tracker.test_instance_rules import T0, reference, started

    rules = reference()
    inst, _ = started(rules)
    rules.act(inst, "pause", None, "alice", "deploy", T0 + timedelta(minutes=10))
    rules.act(inst, "resume", None, "alice", "done", T0 + timedelta(minutes=20))
    rules.act(inst, "pause", None, "bob", "again", T0 + timedelta(minutes=30))
    now = T0 + timedelta(minutes=40)
    pic = picture(inst, now)
    first, second = pic.pauses
    assert first.title == "paused 09:10:00 UTC to 09:20:00 UTC"
    assert second.title == "paused 09:30:00 UTC to now"
    assert first.x < first.x + first.width <= second.x
    drawn = PAGES.get_template("timeline.svg").render(pic=pic)
    bands = ElementTree.fromstring(drawn).findall(
        "{http://www.w3.org/2000/svg}rect[@class='pause']"
    )
    assert len(bands) == 2
