"""For the reviewers of a definition change: `choreograph processes diff --tracker` adds the open
instances of the process and those at the steps the change touches, from the tracker's API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choreograph.cli.main import main as cli
from choreograph.process.change_control import affected_steps
from choreograph.process.definition import parse_definition
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, Principal, digest
from saga_tracker.service import build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_batches import V3
from tests.unit.saga_tracker.test_migration import version
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, definitions, send

V4 = version(4, "30m")  # the reservation deadline changes, nothing else


def test_only_the_changed_steps_are_touched_unless_the_whole_process_changes() -> None:
    v3 = parse_definition(V3, "a.yaml").definition
    v4 = parse_definition(V4, "b.yaml").definition
    assert affected_steps(v3, v4) == ["reservation"]
    longer = parse_definition(V3.replace("deadline: 2h", "deadline: 3h"), "c.yaml").definition
    assert affected_steps(v3, longer) == ["payment", "reservation", "shipping"]


def test_the_diff_says_how_many_open_instances_the_change_touches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = TestKit(build_tracker(definitions(V3), MODELS), start=T0, partitions=1)
    for n in range(5):
        send(kit, "com.acme.orders.OrderPlaced", corr=f"c-{n}", key=f"o-{n}")
        if n >= 2:  # three are reserving stock, two still wait for their payment
            send(kit, "com.acme.payments.PaymentAuthorized", corr=f"c-{n}", key=f"o-{n}")
    server = TraceServer(committed_instances(lambda: kit.tasks),
                         access=Access({digest("r"): Principal("r", "viewer")}),
                         facts=definitions(V3).facts()).start()  # fmt: skip
    (tmp_path / "v3.yaml").write_text(V3)
    (tmp_path / "v4.yaml").write_text(V4)
    try:
        code = cli(["processes", "diff", str(tmp_path / "v3.yaml"), str(tmp_path / "v4.yaml"),
                    "--tracker", server.url, "--token", "r"])  # fmt: skip
        text = capsys.readouterr().out
        cli(["processes", "diff", str(tmp_path / "v3.yaml"), str(tmp_path / "v4.yaml"),
             "--tracker", server.url, "--token", "r", "--format", "json"])  # fmt: skip
        found = json.loads(capsys.readouterr().out)["impact"]
    finally:
        server.stop()
    assert code == 0
    assert "step reservation deadline: 10m -> 30m" in text
    assert "impact: 5 open instance(s) of order-fulfilment; at the steps the change touches " \
        "(reservation):" in text  # fmt: skip
    assert "  reservation (running): 3 instance(s)" in text
    assert found["open_instances"] == 5 and [r["count"] for r in found["by_step"]] == [3]
