"""A process definition judged on captured traffic: a tightened payment deadline, run by the
tracker's own rules over captured instances, next to the current definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from choreograph.cli.main import main
from choreograph.contracts.envelope import Envelope
from choreograph.process.definition import parse_definition
from choreograph.replay.capture import Capture, CapturedRecord
from saga_tracker.simulate import simulate

REPO = Path(__file__).resolve().parents[3]
V1 = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
V2 = V1.replace("version: 1", "version: 2").replace("deadline: 15m", "deadline: 5m")
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
A = "com.acme."


def records(cid: str, *events: tuple[float, str]) -> list[CapturedRecord]:
    out = []
    for n, (minutes, kind) in enumerate(events):
        at = T0 + timedelta(minutes=minutes)
        env = Envelope.new(A + kind, "team", f"o-{cid}", correlation_id=cid, now=at)
        headers = [
            (k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in env.to_headers()
        ]
        out.append(
            CapturedRecord("t", 0, n, int(at.timestamp() * 1000), cid.encode(), None, headers)
        )  # type: ignore[arg-type]
    return out


CAPTURE = Capture(
    [
        *records(
            "slow",
            (0, "orders.OrderPlaced"),
            (10, "payments.PaymentAuthorized"),
            (12, "inventory.StockReserved"),
            (20, "shipping.ShipmentDispatched"),
            (21, "orders.OrderCompleted"),
        ),
        *records(
            "quick",
            (0, "orders.OrderPlaced"),
            (2, "payments.PaymentAuthorized"),
            (3, "inventory.StockReserved"),
            (8, "shipping.ShipmentDispatched"),
            (9, "orders.OrderCompleted"),
        ),
        *records(
            "declined",
            (0, "orders.OrderPlaced"),
            (1, "payments.PaymentFailed"),
            (1, "orders.OrderCancelled"),
        ),
    ],
    {},
    masked=True,
)


def test_a_tightened_deadline_is_judged_on_captured_instances() -> None:
    current = parse_definition(V1, "v1.yaml").definition
    candidate = parse_definition(V2, "v2.yaml").definition
    report = simulate(CAPTURE, candidate, current)
    by_id = {c.correlation_id: c for c in report.instances}
    assert {cid: c.current.status for cid, c in by_id.items() if c.current} == {
        "slow": "completed", "quick": "completed", "declined": "compensated",
    }  # fmt: skip
    slow = by_id["slow"].candidate
    # Payment is late under 5 minutes: in doubt, refunded; it then happens, the stock is
    # reserved (released again) and the parcel ships: a conflict for a person. The refund is
    # never confirmed in the capture (production never sent it), so it escalates at 15 minutes.
    assert slow.status == "needs_manual_resolution"
    assert slow.timeouts == ["payment", "payment.compensation"]
    assert slow.compensations == [
        "com.acme.payments.RefundPayment (payment)",
        "com.acme.inventory.ReleaseStock (reservation)",
    ]
    assert by_id["quick"].candidate.status == "completed"
    totals = report.totals()
    assert totals["current"] == {
        "instances": 3, "timeouts": 0, "compensations": 0, "incidents": 0, "completed": 2,
        "value_at_risk": 0.0,
    }  # fmt: skip
    assert (totals["candidate"]["completed"], totals["candidate"]["timeouts"]) == (1, 2)
    assert totals["candidate"]["compensations"] == 2


def test_the_cli_compares_with_the_highest_earlier_version(tmp_path: Path, capsys: object) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    (folder / "order-fulfilment.v1.yaml").write_text(V1)
    (folder / "order-fulfilment.v2.yaml").write_text(V2)
    CAPTURE.write(tmp_path / "traffic.capture")
    code = main(["simulate", str(folder / "order-fulfilment.v2.yaml"), "--capture",
                 str(tmp_path / "traffic.capture")])  # fmt: skip
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 0
    assert "order-fulfilment: v2 against v1 on 3 captured instance(s)" in out
    assert "timeouts                0 -> 2" in out
