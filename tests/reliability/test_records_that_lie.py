"""Records that are valid Kafka records but not what they claim, and events that arrive late or
out of order, against the reference choreography on the real stack. None may turn into a wrong
business outcome, a page for nothing, or a silent loss."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer

from choreograph import AvroSerde, Envelope
from choreograph.contracts.publisher import encode_event
from choreograph.runtime.partitioning import java_compatible
from choreograph.runtime.records import Record
from choreograph.testing.servers import Servers
from choreograph_examples.contracts.payments import RefundPayment
from choreograph_examples.demo import list_instances, plan
from tests.reliability.choreography import (
    committed_records,
    env_of,
    pid_of,
    reference_choreography,
    require_local_stack,
    restart,
    split_keys,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(720)]
ORDER_PLACED = "com.acme.orders.OrderPlaced"


def letters(bootstrap: str, topic: str, keys: set[bytes]) -> dict[bytes, list[Record]]:
    found: dict[bytes, list[Record]] = defaultdict(list)
    for record in committed_records(bootstrap, topic):
        if record.key in keys:
            found[record.key].append(record)
    return found


def instances(api: str) -> dict[str, dict[str, object]]:
    return {i["correlation_id"]: i for i in list_instances(api)}


def test_records_that_lie_are_never_acted_on(servers: Servers, tmp_path: Path) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=12) as run:
        run.place(run.orders, rate=20).join(60)
        statuses = run.outcomes(seconds=120)
        run.assert_as_planned(statuses)
        completed = next(o for o in run.orders if o.kind == "ok")
        serde = AvroSerde(servers.registry_url)
        # Any writer of the choreography's topics partitions as the Java client does.
        raw = Producer(java_compatible({"bootstrap.servers": servers.bootstrap}))

        # 1. A refund body under OrderPlaced headers, for an order that completed.
        refund = RefundPayment(order_id=completed.order_id, reason="forged")
        _, refund_value, _ = encode_event(serde, refund, completed.order_id, "shop")
        lie = Envelope.new(ORDER_PLACED, "shop", completed.order_id)
        raw.produce(
            "orders.events", refund_value, completed.order_id.encode(), headers=lie.to_headers()
        )
        # 2. Six garbage bodies under OrderPlaced headers.
        garbage = [Envelope.new(ORDER_PLACED, "shop", f"junk-{run.run}-{i}") for i in range(6)]
        for env in garbage:
            raw.produce(
                "orders.events", os.urandom(300), env.subject.encode(), headers=env.to_headers()
            )
        # 3. A valid order with one extra header that is not text.
        odd = plan(1, f"{run.run}x", seed=3)[0]
        if odd.kind != "ok":
            odd = next(o for o in plan(20, f"{run.run}x", seed=3) if o.kind == "ok")
        _, odd_value, odd_env = encode_event(serde, odd.order, odd.order_id, "shop")
        odd_headers = [*odd_env.to_headers(), ("x-signature", b"\x8f\xff\x00\xc3")]
        raw.produce("orders.events", odd_value, odd.order_id.encode(), headers=odd_headers)
        # 4. A valid order under a key that is not UTF-8.
        bad_key = b"\xff\xfe" + run.run.encode()
        _, key_value, key_env = encode_event(serde, run.orders[1].order, "k", "shop")
        raw.produce("orders.events", key_value, bad_key, headers=key_env.to_headers())
        assert raw.flush(30) == 0

        # The odd-header order goes all the way, as any other.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            tracked = instances(run.api).get(odd_env.correlation_id)
            if tracked and tracked["status"] == "completed":
                break
            time.sleep(1)
        assert tracked and tracked["status"] == "completed", tracked
        run.fleet.check()

        lied = completed.order_id.encode()
        junk = {env.subject.encode() for env in garbage}
        for team in ("orders", "payments", "inventory"):
            found = letters(servers.bootstrap, f"{team}.dlq", {lied, bad_key, *junk})
            assert set(found) == {lied, bad_key, *junk}, team
            mislabelled = found[lied][0]
            assert mislabelled.header("dlq_attempts") == "1", team
            message = mislabelled.header("dlq_error_message") or ""
            assert ORDER_PLACED in message and "com.acme.payments.RefundPayment" in message
            assert found[bad_key][0].header("dlq_attempts") == "1"  # not retried as transient
        # Nothing acted on the forged refund: no refund for the completed order.
        refunds = [
            r
            for r in committed_records(servers.bootstrap, "payments.events")
            if r.key == lied and r.header("ce_type") == "com.acme.payments.PaymentRefunded"
        ]
        assert refunds == []
        # The tracker started nothing from the forged or garbage records, so nothing can page.
        tracked_ids = set(instances(run.api))
        assert lie.correlation_id not in tracked_ids
        assert not {env.correlation_id for env in garbage} & tracked_ids
        routed = letters(servers.bootstrap, "saga-tracker-router.dlq", {lied, *junk})
        assert set(routed) == {lied, *junk}
        assert statuses[completed.order_id] == "completed"
        # Python services, the Faust app (aiokafka) and the shop all put a key in one partition,
        # so each order's state lives in one partition of every changelog.
        for changelog in ("orders.machine.order.changelog", "inventory.orders.changelog"):
            assert split_keys(servers.bootstrap, changelog, run.run) == {}, changelog
        assert (
            instances(run.api)[next(c for c, o in run.placed.items() if o == completed.order_id)][
                "status"
            ]
            == "completed"
        )


def test_payments_frozen_past_its_deadline_ends_as_it_really_did(
    servers: Servers, tmp_path: Path
) -> None:
    """Payments stops answering past its deadline, then catches up. The tracker sent a refund
    for every timed-out payment; whatever the order of what follows, no order may stay charged
    without its refund, and the tracker must say what really became of each order: compensated
    with no incident, or (a parcel shipped for a refunded order) a conflict that pages."""
    require_local_stack(servers)
    speed = 30  # payment deadline 30 s, compensations 20 s
    # Version 1 refunds a payment in doubt at its deadline (v2 asks payments instead, see
    # test_late_steps): what the tracker reports of that must be the truth.
    with reference_choreography(servers, tmp_path, orders=80, speed=speed, versions=(1,)) as run:
        good = [o for o in run.orders if o.kind == "ok"][:10]
        out_of_stock = [o for o in run.orders if o.kind == "out_of_stock"][:5]
        run.orders = good + out_of_stock
        payments = pid_of(run.fleet, "payments")
        os.kill(payments, signal.SIGSTOP)
        try:
            run.place(run.orders, rate=10).join(60)
            time.sleep(15 * 60 / speed + 15)  # past every payment deadline, with room
        finally:
            os.kill(payments, signal.SIGCONT)
        statuses = run.outcomes(seconds=240)
        time.sleep(5)  # late reports still arriving settle the instances
        tracked = instances(run.api)
        by_order = {order: tracked.get(corr, {}) for corr, order in run.placed.items()}
        events: dict[str, list[str]] = defaultdict(list)
        for topic in ("payments.events", "shipping.events"):
            for record in committed_records(servers.bootstrap, topic):
                key = (record.key or b"").decode(errors="replace")
                if f"-{run.run}-" in key:
                    events[key].append(record.header("ce_type") or "?")
        wrong = {}
        for planned in run.orders:
            seen = events[planned.order_id]
            charged = "com.acme.payments.PaymentAuthorized" in seen
            refunded = False
            if charged:
                after = seen[seen.index("com.acme.payments.PaymentAuthorized") :]
                refunded = "com.acme.payments.PaymentRefunded" in after
            shipped = "com.acme.shipping.ShipmentDispatched" in seen
            inst = by_order.get(planned.order_id, {})
            truth = ("needs_manual_resolution", ["conflict"]) if shipped else ("compensated", [])
            told = (inst.get("status"), inst.get("open_incidents"))
            if (charged and not refunded) or told != truth:
                wrong[planned.order_id] = {"events": seen, "tracker": told, "truth": truth}
        print(f"statuses: {sorted(statuses.values())}")
        assert not wrong, wrong
        run.fleet.check()


def test_tracker_killed_mid_load_still_compensates_every_declined_order(
    servers: Servers, tmp_path: Path
) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=2400, seed=5) as run:
        declined = [o for o in run.orders if o.kind == "declined"][:150]
        run.orders = declined
        loader = run.place(run.orders, rate=40)
        time.sleep(2)
        env = env_of(servers, tmp_path / "tracker")
        restart(run.fleet, "saga-tracker", env, kill=True)
        loader.join(120)
        statuses = run.outcomes(seconds=240)
        run.assert_as_planned(statuses)
        assert len(statuses) == len(declined) == 150
        run.fleet.check()
