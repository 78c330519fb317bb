"""Faults an operator meets on a bad day, under load, on the real stack: the broker restarts,
the schema registry goes away (and a service restarts meanwhile). Each asserts that every order
ends exactly once and as planned, that no process exited, and how long recovery took."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from choreograph.testing.servers import Servers
from tests.reliability.choreography import (
    log_lines,
    reference_choreography,
    require_local_stack,
    restart,
    stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RECOVERY_S = 30  # processing resumes within this of the dependency returning


def test_broker_restart_under_load_is_a_pause(servers: Servers, tmp_path: Path) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=60) as run:
        loader = run.place(run.orders, rate=15)
        time.sleep(2)  # orders in flight in every service when the broker goes
        stack("stop", "kafka")
        time.sleep(10)
        took = stack("start", "kafka")
        back = time.monotonic()
        loader.join(180)
        assert not loader.is_alive(), "the shop could not place its orders after the restart"
        statuses = run.outcomes(seconds=180)
        recovered = time.monotonic() - back
        print(f"broker back after a {took:.0f} s start; every order ended {recovered:.1f} s later")
        run.assert_as_planned(statuses)
        run.assert_exactly_once()
        run.fleet.check()
        # Each service said once that the broker was away, and once that it was back.
        for team in ("orders", "payments", "inventory"):
            assert log_lines(run.fleet, team, "broker available again"), team


def test_registry_outage_with_a_service_restarted_meanwhile(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=60) as run:
        warm, rest = run.orders[:15], run.orders[15:]
        run.place(warm, rate=15).join(60)  # every service has read and written each type once
        assert len(run.outcomes(seconds=90)) == len(warm)
        stack("stop", "registry")
        try:
            loader = run.place(rest, rate=15)  # the shop's own cache carries it through
            env = {
                "CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
                "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
                "CHOREOGRAPH_STATE_DIR": str(tmp_path / "payments"),
            }
            restart(run.fleet, "payments", env)  # starts with the registry away: disk cache
            time.sleep(8)
        finally:
            stack("start", "registry")
        back = time.monotonic()
        loader.join(120)
        statuses = run.outcomes(seconds=180)
        print(f"every order ended {time.monotonic() - back:.1f} s after the registry returned")
        run.assert_as_planned(statuses)
        run.assert_exactly_once()
        run.fleet.check()
        payments_log = (run.fleet.logs / "payments.log").read_text()
        assert "dead-lettered" not in payments_log  # an outage is never a bad record
