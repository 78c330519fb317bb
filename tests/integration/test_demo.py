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
from choreograph_examples.demo import own_state_for
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
        [sys.executable, "-m", "choreograph_examples.demo", "--orders", "40", "--no-keep",
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
    # The stalled payment was settled by payments (voided: never charged), so it compensated
    # (counted above) and left no incident open.
    assert re.search(r"open incidents\s+0\n", out)
    assert re.search(rf"trace pages\s+http://127.0.0.1:{port}/traces\n", out)
    # Reads are not open to everyone: people sign in through the stack's identity provider.
    assert re.search(rf"console\s+http://127.0.0.1:{port}/traces: sign in as alice", out), out
    assert "placed 40/40 orders" in out and "tracked 40/40" in out  # progress while it ran
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert logs == {
        f"{n}.log" for n in ("orders", "payments", "inventory", "shipping", "saga-tracker")
    }


def test_demo_state_of_another_cluster_is_dropped_and_nothing_else(
    servers: Servers, tmp_path: Path
) -> None:
    """After the broker was reset, the demo's RocksDB stores and Faust tables would disagree
    with the new changelogs (Faust refuses to start): they go, files that are not its stay."""
    (tmp_path / "cluster-id").write_text("a-cluster-that-was-reset\n")
    (tmp_path / "shipping" / "v1").mkdir(parents=True)
    (tmp_path / "orders" / "0").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")

    assert own_state_for(tmp_path, servers.bootstrap) is True
    assert not (tmp_path / "shipping").exists() and not (tmp_path / "orders").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "orders" / "0").mkdir(parents=True)  # the next run's state, same cluster
    assert own_state_for(tmp_path, servers.bootstrap) is False
    assert (tmp_path / "orders" / "0").exists()
