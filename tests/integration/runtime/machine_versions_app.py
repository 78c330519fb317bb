"""Releases of one service for the machine-version tests on the real broker: v1, a v2 that
renames a state without saying where it went, and a v2 that migrates it. Names come from the
environment, so the CLI's `--against` and a service process load the same builds."""

from __future__ import annotations

import os

from choreograph import Service
from tests.unit.machines.test_machine_versions import v1, v2


def _service(*machines: object) -> Service:
    orders, payments = os.environ["MV_ORDERS"], os.environ["MV_PAYMENTS"]
    found = Service(os.environ["MV_SERVICE"], [orders, payments])
    for machine in machines:
        found.add_machine(  # type: ignore[arg-type]
            machine, topics={"orders.events": orders, "payments.events": payments}
        )
    return found


def first() -> Service:
    return _service(v1())


def stranding() -> Service:
    return _service(v2(migrate=False))


def migrating() -> Service:
    return _service(v2())
