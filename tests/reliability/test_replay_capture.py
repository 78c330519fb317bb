"""Capture and replay on the real stack: the tracker lists the instances that ended compensated,
`choreograph replay capture` collects their records from the topics (PII masked), and
`choreograph replay run` replays them against payments: the code that ran reproduces production
with an empty diff; a payments service with a raised limit shows what it would have done."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from choreograph import Context, Service
from choreograph.cli.main import main
from choreograph.replay.capture import Capture
from choreograph.testing import replay
from choreograph.testing.servers import Servers
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.reliability.choreography import reference_choreography, require_local_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
TOPICS = "orders.events,payments.events,inventory.events,shipping.events,payments.commands"


def generous() -> Service:
    """Payments with no decline limit: the fix a team might try."""
    service = Service("payments", ["orders.events", "payments.commands"],
                      outputs=["payments.events"], stores=["payments"])  # fmt: skip

    @service.handle(OrderPlaced)
    def authorise(ctx: Context, event: OrderPlaced) -> None:
        ctx.emit(PaymentAuthorized(order_id=ctx.key, payment_id="p", amount=event.total))

    return service


def test_capture_compensated_instances_and_replay_them(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_local_stack(servers)
    started = datetime.now(UTC) - timedelta(seconds=1)
    with reference_choreography(servers, tmp_path, orders=40, seed=4) as run:
        run.place(run.orders, rate=20).join(60)
        statuses = run.outcomes(seconds=120)
        run.assert_as_planned(statuses)
        declined = {o.order_id for o in run.orders if o.kind == "declined"}
        assert declined, "the plan has declined orders"
        capture_file = tmp_path / "compensated.capture"
        code = main([
            "replay", "capture", "--tracker", run.api, "--process", "order-fulfilment",
            "--status", "compensated", "--since", started.isoformat(), "--topics", TOPICS,
            "--out", str(capture_file),
            "--bootstrap", servers.bootstrap, "--registry", servers.registry_url,
        ])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    capture = Capture.read(capture_file)
    ours = {c: o for c, o in run.placed.items()}
    captured = {cid for cid in capture.instances() if cid in ours}
    expected = {c for c, o in ours.items() if statuses.get(o) == "compensated"}
    assert captured == expected  # every compensated instance of this run, and only those
    assert capture.masked and all(
        b"shopper@example.com" not in (r.value or b"") for r in capture.records
    )  # PII masked

    from choreograph_examples.payments.service import build as payments

    same = replay(capture, payments())
    mine = {cid: inst for cid, inst in same.instances.items() if cid in expected}
    assert mine and all(not inst.differences for inst in mine.values()), same.text()
    # The shared topics hold earlier runs too (written by earlier code): keep this run's.
    this_run = tmp_path / "this-run.capture"
    Capture(
        [r for r in capture.records if r.header("ce_correlationid") in expected],
        capture.schemas,
        capture.masked,
    ).write(this_run)
    service = "choreograph_examples.payments.service:build"
    code = main(["replay", "run", str(this_run), "--service", service, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert set(report["instances"]) == expected

    fixed = replay(capture, generous())
    for cid in (c for c, o in ours.items() if o in declined):
        found = sorted((d.kind, d.event_type) for d in fixed.instances[cid].differences)
        # Declined in production; the raised limit would have authorised it instead.
        assert found == [
            ("extra", "com.acme.payments.PaymentAuthorized"),
            ("missing", "com.acme.payments.PaymentFailed"),
        ], (cid, found)
