"""The incident -> capture -> replay -> fix -> simulate loop on the real stack.

A payments release with a mistake in it runs in the reference choreography: orders of three
books raise, are dead-lettered, and the tracker refunds them when their payment deadline passes.
The failed instances are captured through the tracker (their records read at the coordinates on
their timelines, not found by a scan); a replay against the broken code reproduces the failure
with no difference from production, and one against the fix shows the payments authorised.
Then a tightened payment deadline is simulated on this run's traffic, and the instances it
would time out are exactly those whose payment answer came later than it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from choreograph.cli.main import main
from choreograph.replay.capture import Capture, CapturedRecord
from choreograph.testing import replay
from choreograph.testing.servers import Servers
from tests.reliability import broken_payments
from tests.reliability.choreography import reference_choreography, require_local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
SPEED = 30  # the payment deadline (15 min) passes after 30 s
PLACED = "com.acme.orders.OrderPlaced"
PAYMENT_ANSWERS = ("com.acme.payments.PaymentAuthorized", "com.acme.payments.PaymentFailed")


def capture_args(run_api: str, servers: Servers, out: Path, *extra: str) -> list[str]:
    return ["replay", "capture", "--tracker", run_api, "--process", "order-fulfilment",
            "--out", str(out), "--bootstrap", servers.bootstrap,
            "--registry", servers.registry_url, *extra]  # fmt: skip


def payment_delays(capture: Capture) -> dict[str, int | None]:
    """Per instance: ms from the order to the first payment answer (None: never answered)."""
    delays: dict[str, int | None] = {}
    for cid, records in capture.instances().items():
        placed = [r.timestamp for r in records if r.header("ce_type") == PLACED]
        answers = [r.timestamp for r in records if r.header("ce_type") in PAYMENT_ANSWERS]
        if placed:
            delays[cid] = min(answers) - placed[0] if answers else None
    return delays


def between(delays: list[int]) -> int:
    """A deadline in whole ms that about half the answers miss, equal to none of them."""
    ordered = sorted(set(delays))
    middle = len(ordered) // 2
    for i in sorted(range(len(ordered) - 1), key=lambda i: abs(i - middle)):
        if ordered[i + 1] - ordered[i] >= 2:
            return ordered[i] + 1
    raise AssertionError(f"no gap between payment delays to put a deadline in: {ordered}")


def test_a_broken_release_is_captured_replayed_fixed_and_a_deadline_simulated(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_local_stack(servers)
    started = datetime.now(UTC) - timedelta(seconds=1)
    variant = {"payments": "tests.reliability.broken_payments"}
    # On version 1, so the tightened deadline simulated below is its version 2.
    with reference_choreography(
        servers, tmp_path, orders=45, seed=5, speed=SPEED, modules=variant, versions=(1,)
    ) as run:
        broken = {
            o.order_id
            for o in run.orders
            if o.kind != "declined" and broken_payments.orders_it_breaks(o.order)
        }  # a declined order is turned down before the fee is worked out
        assert broken and len(broken) < len(run.orders) // 2, "the plan has orders it breaks"
        run.place(run.orders, rate=20).join(60)
        statuses = run.outcomes(seconds=300)
        assert {statuses.get(o) for o in broken} == {"compensated"}, statuses
        healthy = [o for o in run.orders if o.order_id not in broken]
        assert {o.order_id: statuses.get(o.order_id) for o in healthy} == {
            o.order_id: o.expected for o in healthy
        }
        failed_file = tmp_path / "failed.capture"
        # The refund commands are on no timeline: they are found by a scan of their topic.
        since = started.isoformat()
        code = main(
            capture_args(run.api, servers, failed_file, "--status", "compensated",
                         "--since", since, "--topics", "payments.commands")
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 0, err
        assert "at their timelines' coordinates" in err
        everything_file = tmp_path / "everything.capture"
        code = main(capture_args(run.api, servers, everything_file, "--since", started.isoformat()))
        assert code == 0, capsys.readouterr().err
        timelines = {
            cid: json.load(_get(f"{run.api}/api/instances/{cid}"))["timeline"] for cid in run.placed
        }

    ours = {cid: order for cid, order in run.placed.items()}
    failed_ids = {cid for cid, o in ours.items() if o in broken}
    failed = Capture.read(failed_file)
    assert failed_ids <= set(failed.instances()) <= set(ours)  # this run's, chosen by status
    # Records on a timeline were read where the tracker saw them: same topic, partition, offset.
    on_timelines = {
        e["origin"] for cid in failed.instances() for e in timelines[cid] if e["origin"]
    }
    read_from_domain = {
        f"{r.topic}/{r.partition}/{r.offset}"
        for r in failed.records
        if r.topic != "payments.commands"
    }
    assert read_from_domain == on_timelines
    assert all(_type(r) == "com.acme.payments.RefundPayment" for r in failed.records
               if r.topic == "payments.commands")  # fmt: skip

    # The broken release, replayed: the same dead letters, nothing else different.
    again = replay(failed, broken_payments.build())
    assert not again.differences, again.text()
    assert {cid for cid, inst in again.instances.items() if inst.dead_letters} == failed_ids
    code = main(["replay", "run", str(failed_file), "--service",
                 "tests.reliability.broken_payments:build", "--expect", "no-differences",
                 "--expect", "dead-letters"])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    # The fix, replayed: every failed payment is authorised, and that is the only difference.
    fixed = replay(failed, broken_payments.build_fixed())
    assert not fixed.dead_letters, fixed.text()
    for cid in failed_ids:
        found = sorted((d.kind, d.event_type) for d in fixed.instances[cid].differences)
        assert found == [("extra", "com.acme.payments.PaymentAuthorized")], (cid, found)
    others = set(failed.instances()) - failed_ids
    assert all(not fixed.instances[cid].differences for cid in others if cid in fixed.instances)
    code = main(["replay", "run", str(failed_file), "--service",
                 "tests.reliability.broken_payments:build_fixed"])  # fmt: skip
    assert code == 1  # it differs from production, as a fix does
    capsys.readouterr()

    # A tightened payment deadline, simulated on the whole run (read by coordinates alone).
    everything = Capture.read(everything_file)
    assert set(everything.instances()) == set(ours)
    assert {r.topic for r in everything.records} <= {
        "orders.events",
        "payments.events",
        "inventory.events",
        "shipping.events",
    }
    delays = payment_delays(everything)
    deadline_ms = between([d for d in delays.values() if d is not None])
    definitions = tmp_path / "processes"
    current = yaml.safe_load((definitions / "order-fulfilment.v1.yaml").read_text())
    candidate = {**current, "version": 2}
    candidate["steps"] = [
        {**s, "deadline": f"{deadline_ms}ms"} if s["name"] == "payment" else s
        for s in current["steps"]
    ]
    (definitions / "order-fulfilment.v2.yaml").write_text(yaml.safe_dump(candidate))
    code = main(["simulate", str(definitions / "order-fulfilment.v2.yaml"),
                 "--capture", str(everything_file), "--format", "json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["current_version"] == 1 and report["candidate_version"] == 2

    def timed_out(which: str) -> set[str]:
        return {
            i["correlation_id"]
            for i in report["instances"]
            if "payment" in (i[which] or {}).get("timeouts", [])
        }

    late = {cid for cid, d in delays.items() if d is None or d >= deadline_ms}
    assert timed_out("current") == failed_ids  # what happened: only the broken ones
    assert timed_out("candidate") == late
    assert failed_ids < late < set(ours)  # the tighter deadline catches some, not all
    for item in report["instances"]:  # each payment it times out is refunded, in doubt
        if item["correlation_id"] in late:
            assert "com.acme.payments.RefundPayment (payment)" in item["candidate"]["compensations"]
    totals: dict[str, Any] = report["totals"]
    assert totals["candidate"]["instances"] == totals["current"]["instances"] == len(ours)
    assert totals["candidate"]["timeouts"] >= totals["current"]["timeouts"] + len(late - failed_ids)


def _get(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)


def _type(record: CapturedRecord) -> str | None:
    return record.header("ce_type")
