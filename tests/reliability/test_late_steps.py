"""Steps that answer late, on the real stack: the payments service frozen (SIGSTOP) past its
deadline with orders in flight. The tracker asks payments to settle each payment in doubt
(VoidPayment) instead of refunding it; payments, catching up in input order, has charged each
order by then and refuses. Every charged order completes late with one SLA incident; the out of
stock ones compensate; no order is both shipped and refunded."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from choreograph.testing.servers import Servers
from tests.integration.saga_tracker.helpers import collect
from tests.reliability.choreography import (
    committed_event_counts,
    pid_of,
    reference_choreography,
    require_local_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
SPEED = 60  # the payment deadline is 15 s, the owner has 30 s to settle
PAY = "com.acme.payments."


def test_a_frozen_payments_service_makes_orders_late_never_shipped_and_refunded(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=15, seed=5, speed=SPEED) as run:
        payments = pid_of(run.fleet, "payments")
        os.kill(payments, signal.SIGSTOP)
        try:
            run.place(run.orders, rate=15).join(60)
            time.sleep(25)  # every payment deadline passes while payments is frozen
        finally:
            os.kill(payments, signal.SIGCONT)
        statuses = run.outcomes(seconds=240)
        run.assert_as_planned(statuses)  # charged ones completed, out of stock compensated
        run.assert_exactly_once()
        counts = committed_event_counts(servers.bootstrap, run.run)
        both = [
            order
            for order, types in counts.items()
            if types["com.acme.shipping.ShipmentDispatched"] and types[PAY + "PaymentRefunded"]
        ]
        assert not both, f"shipped and refunded: {both}"
        kinds = Counter(o.kind for o in run.orders)
        print(f"planned: {dict(kinds)}; statuses: {dict(Counter(statuses.values()))}")
        assert kinds["ok"] >= 5, kinds  # enough charged orders to make the point
        placed = set(run.placed)
        commands = collect(
            servers.bootstrap, servers.registry_url, "payments.commands", placed, seconds=10
        )
        voids = Counter(e.correlation_id for e, _ in commands if e.type == PAY + "VoidPayment")
        assert voids == Counter(placed), "one VoidPayment per late order, and only one"
        refunds = [e for e, _ in commands if e.type == PAY + "RefundPayment"]
        by_corr = run.placed
        refunded = {by_corr[e.correlation_id] for e in refunds}
        planned = {o.order_id: o.kind for o in run.orders}
        assert all(planned[o] == "out_of_stock" for o in refunded), refunded
        incidents = collect(
            servers.bootstrap, servers.registry_url, "choreograph.alerts", placed, seconds=10
        )
        late = Counter(
            by_corr[i["correlation_id"]]
            for _, i in incidents
            if i["status"] == "RAISED" and i["step"] == "payment" and i["severity"] == "warning"
        )
        assert set(late) == set(planned) and set(late.values()) == {1}, late
        raised = {i["incident_id"] for _, i in incidents if i["status"] == "RAISED"}
        resolved = {i["incident_id"] for _, i in incidents if i["status"] == "RESOLVED"}
        assert raised == resolved, f"left open: {raised - resolved}"
