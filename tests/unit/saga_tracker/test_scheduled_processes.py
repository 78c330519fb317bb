"""A process definition that starts on a schedule: at each occurrence the tracker publishes the
start event built from the schedule's payload (once, whichever partition owns the schedule), and
the instance starts from it as from any start event; a payload that does not fit the start
contract, or a wrong expression, is caught before release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from choreograph.contracts.catalog import load_catalog
from choreograph.process.definition import DefinitionError, parse_definition
from choreograph.process.lint import lint_definitions
from choreograph.testing.testkit import TestKit
from saga_tracker.service import REPARTITION, build_tracker
from tests.unit.saga_tracker.test_tracker_service import MODELS, definitions, instance

REPO = Path(__file__).resolve().parents[3]
NIGHTLY = """
name: nightly-close
version: 1
owners: {business: commerce-ops, technical: team-orders, on_call: orders-oncall}
start: com.acme.orders.OrderCompleted
schedule:
  cron: "30 1 * * *"
  tz: Europe/Berlin
  payload: {order_id: "{business_key}", completed_at: "{occurrence}"}
success: [com.acme.inventory.StockReleased]
steps:
  - name: count
    completes_on: [com.acme.inventory.StockReleased]
    deadline: 2h
"""


def test_each_occurrence_publishes_the_start_event_and_starts_an_instance() -> None:
    kit = TestKit(build_tracker(definitions(NIGHTLY), MODELS),
                  start=datetime(2026, 3, 27, 12, tzinfo=UTC), partitions=3)  # fmt: skip
    kit.advance(timedelta(days=3))
    started = kit.emitted(topic="orders.events")
    assert [s.key for s in started] == [
        "nightly-close@2026-03-28T01:30:00+01:00",
        "nightly-close@2026-03-29T01:30:00+01:00",  # summer time from 02:00 that night
        "nightly-close@2026-03-30T01:30:00+02:00",
    ]
    first = started[0]
    assert first.event is not None and not isinstance(first.event, dict)
    assert first.event.to_avro()["completed_at"] == datetime(2026, 3, 28, 0, 30, tzinfo=UTC)
    # The router hands the event back, as it does every followed event: an instance starts.
    kit.deliver(REPARTITION, first.envelope.correlation_id.encode(), first.value, first.headers)
    inst = instance(kit, first.envelope.correlation_id, "nightly-close")
    assert (inst.business_key, inst.status) == (first.key, "running")
    assert inst.steps["count"].status == "running"


def test_a_payload_that_does_not_fit_the_start_contract_is_a_lint_error() -> None:
    catalog = load_catalog(REPO / "schemas/avro")
    wrong = NIGHTLY.replace('completed_at: "{occurrence}"', 'done: "{when}"')
    found = lint_definitions([parse_definition(wrong, "nightly-close.v1.yaml")], catalog)
    said = sorted(f.message for f in found)
    assert "com.acme.orders.OrderCompleted has no field done" in said
    assert "com.acme.orders.OrderCompleted needs completed_at, which the payload does not give" \
        in said  # fmt: skip
    assert any("unknown placeholder" in m for m in said)
    ok = lint_definitions([parse_definition(NIGHTLY, "nightly-close.v1.yaml")], catalog)
    assert [f.message for f in ok if f.severity == "error"] == []


@pytest.mark.parametrize(
    ("change", "says"),
    [('cron: "30 1 * * *"', "is not a cron expression"), ("tz: Europe/Berlin", "IANA zone")],
)
def test_a_wrong_schedule_is_refused_when_the_definition_is_read(change: str, says: str) -> None:
    broken = NIGHTLY.replace(change, 'cron: "30 1 * *"' if "cron" in change else "tz: Moon/Base")
    with pytest.raises(DefinitionError, match=says):
        parse_definition(broken, "nightly-close.v1.yaml")
