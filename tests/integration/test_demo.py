"""`make demo`'s scenario on the real stack: four team services (one on Faust), the tracker, and
orders with injected failures end as they should; the stalled payment pages Alertmanager."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from choreograph.testing.servers import Servers
from tests.ports import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_reference_choreography_end_to_end(servers: Servers, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
        "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
        "CHOREOGRAPH_ALERTMANAGER_URL": servers.alertmanager_url or "",
    }
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--orders", "40", "--no-keep",
         "--port", str(port), "--state", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    planned = re.search(
        r"orders placed\s+40 \((\d+) good, (\d+) declined, (\d+) out of stock, 1 stalled", out
    )
    assert planned, out
    good, declined, out_of_stock = map(int, planned.groups())
    assert re.search(rf"completed\s+{good}\n", out)
    assert re.search(rf"compensated\s+{declined + out_of_stock + 1}\n", out)
    assert re.search(r"open incidents\s+1\n", out)  # the stalled payment, and only it
    assert f"http://127.0.0.1:{port}/traces/" in out
    assert "placed 40/40 orders" in out and "tracked 40/40" in out  # progress while it ran
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert logs == {
        f"{n}.log" for n in ("orders", "payments", "inventory", "shipping", "saga-tracker")
    }
