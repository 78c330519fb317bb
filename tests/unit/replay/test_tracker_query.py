"""Choosing instances through the trace API: by status and start time, with the coordinates of
every event on their timelines, over HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from choreograph.contracts.envelope import Envelope
from choreograph.replay.tracker_query import TrackerQuery
from choreograph.runtime.context import REPARTITIONED_FROM, Origin
from choreograph.testing.testkit import TestKit
from saga_tracker.service import REPARTITION, build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, V1, definitions


def deliver(kit: TestKit, kind: str, corr: str, origin: str | None) -> None:
    envelope = Envelope.new(f"com.acme.{kind}", "team", f"o-{corr}", correlation_id=corr,
                            now=kit.now)  # fmt: skip
    headers = [*envelope.to_headers(), *([(REPARTITIONED_FROM, origin.encode())] if origin else [])]
    kit.deliver(REPARTITION, corr.encode(), None, headers)


@pytest.fixture
def tracker() -> Iterator[TrackerQuery]:
    kit = TestKit(build_tracker(definitions(V1), MODELS), start=T0)
    deliver(kit, "orders.OrderPlaced", "early", "orders.events/0/3")
    kit.advance(timedelta(hours=1))
    deliver(kit, "orders.OrderPlaced", "late", "orders.events/1/9")
    deliver(kit, "payments.PaymentFailed", "late", "payments.events/1/4")
    deliver(kit, "orders.OrderCancelled", "late", None)  # tracked before coordinates were kept
    deliver(kit, "orders.OrderPlaced", "running", "orders.events/2/1")
    server = TraceServer(committed_instances(lambda: kit.tasks)).start()
    yield TrackerQuery(server.url)
    server.stop()


def test_instances_are_chosen_by_status_and_start_with_their_records_coordinates(
    tracker: TrackerQuery,
) -> None:
    [late] = tracker.instances(process="order-fulfilment", status="compensated")
    assert (late.correlation_id, late.status) == ("late", "compensated")
    assert late.origins == [Origin("orders.events", 1, 9), Origin("payments.events", 1, 4)]
    started = tracker.instances(started_since=T0 + timedelta(minutes=30))
    assert {i.correlation_id for i in started} == {"late", "running"}
    assert [i.correlation_id for i in tracker.instances(started_until=T0)] == ["early"]
    assert tracker.instance("early").origins == [Origin("orders.events", 0, 3)]


def test_an_origin_is_topic_partition_offset_and_nothing_else() -> None:
    origin = Origin("orders.v2.events", 11, 42)
    assert Origin.parse(str(origin)) == origin
    for bad in ("orders.events/1", "/1/2", "orders.events/x/2", ""):
        with pytest.raises(ValueError):
            Origin.parse(bad)
