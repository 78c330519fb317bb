"""Two saga tracker replicas share the repartition topic and one PostgreSQL visibility store.

Either replica's API answers for every instance, and so does a read-only `saga-tracker ui`.
Then one replica is killed with SIGKILL while its instances wait on deadlines: its partitions
move to the survivor, which fires those deadlines (lateness measured and printed). Every order
gets exactly one of each compensation and, as neither is confirmed, exactly one incident for
each; its timeline has each deadline's timeout once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph_examples.contracts.payments import PaymentAuthorized
from choreograph_examples.demo import list_instances
from tests.integration.saga_tracker.helpers import collect, order_placed, wait_for
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ORDERS = 40
RESERVATION_DEADLINE_S = 15  # long enough to kill a replica before any deadline is due
OVERDUE_DEADLINE_S = 3  # due while the replica that owns them is frozen, then killed
COMPENSATION_DEADLINE_S = 10  # unconfirmed compensations then escalate to incidents
STEP_DEADLINE = "    deadline: 10m\n    on_timeout: compensate"  # the reservation's
UNDO_DEADLINE = "      deadline: 10m\n      completes_on"  # both compensations'


def definition(reservation_s: int) -> str:
    return (
        (REPO / "processes/order-fulfilment.v1.yaml")
        .read_text()
        .replace(STEP_DEADLINE, STEP_DEADLINE.replace("10m", f"{reservation_s}s"))
        .replace(UNDO_DEADLINE, UNDO_DEADLINE.replace("10m", f"{COMPENSATION_DEADLINE_S}s"))
    )


DEFINITION = definition(RESERVATION_DEADLINE_S)


@contextmanager
def tracker_process(
    name: str, replica: str, tmp_path: Path, env: dict[str, str], args: list[str]
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = tmp_path / f"{replica}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "saga_tracker", *args, "--http-port", str(port), "--open-reads"],
        cwd=REPO,
        env={
            **env,
            "CHOREOGRAPH_INSTANCE_ID": replica,
            "CHOREOGRAPH_STATE_DIR": str(tmp_path / replica),
            "SAGA_TRACKER_NAME": name,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def members(admin: AdminClient, group: str) -> dict[str, set[int]]:
    """Replica -> the repartition partitions it owns."""
    described = admin.describe_consumer_groups([group])[group].result(10)
    return {
        m.group_instance_id or m.member_id: {tp.partition for tp in m.assignment.topic_partitions}
        for m in described.members
    }


def answers(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/api/instances?limit=1", timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    "overdue",
    [False, True],
    ids=["killed-before-deadlines", "killed-with-deadlines-overdue"],
)
def test_a_replica_killed_under_load_loses_and_doubles_nothing(
    overdue: bool,
    bootstrap_servers: str,
    registry_url: str,
    postgres_url: str,
    new_topic: Callable[..., str],
    admin: AdminClient,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"tracker-{run}"
    domains = ("orders", "payments", "inventory", "shipping")  # every topic the process follows
    topics = {d: new_topic(f"{d}.events", 2) for d in domains}
    repartition = new_topic("saga-tracker.repartition", 4)
    (tmp_path / "processes").mkdir()
    deadline_s = OVERDUE_DEADLINE_S if overdue else RESERVATION_DEADLINE_S
    (tmp_path / "processes/order-fulfilment.v1.yaml").write_text(definition(deadline_s))
    env = {
        k: v for k, v in os.environ.items() if k != "CHOREOGRAPH_ALERTMANAGER_URL"
    }  # incidents are not this test's subject
    env.update(
        CHOREOGRAPH_BOOTSTRAP=bootstrap_servers,
        CHOREOGRAPH_REGISTRY_URL=registry_url,
        SAGA_TRACKER_VISIBILITY_URL=postgres_url,
        SAGA_TRACKER_REPARTITION=repartition,
        SAGA_TRACKER_DEFINITIONS=str(tmp_path / "processes"),
        SAGA_TRACKER_SCHEMAS=str(REPO / "schemas/avro"),
        SAGA_TRACKER_INPUTS=",".join(topics.values()),
        PYTHONPATH=f"{REPO}:{REPO / 'framework'}:{REPO / 'services'}",
    )
    run_args = ["run", "--auto-register-schemas"]
    with (
        tracker_process(name, "a", tmp_path, env, run_args) as (a, api_a, log_a),
        tracker_process(name, "b", tmp_path, env, run_args) as (b, api_b, _),
        tracker_process(name, "ui", tmp_path, env, ["ui", "--no-index"]) as (ui, api_ui, _),
    ):
        wait_for(
            lambda: len(members(admin, name)) == 2 and all(members(admin, name).values()),
            "both replicas to own partitions",
            seconds=120,
        )
        wait_for(lambda: answers(api_a) and answers(api_b) and answers(api_ui), "the APIs")
        owned = members(admin, name)
        victim_partitions = owned[f"{name}-b"]

        publisher = EventPublisher(
            {"bootstrap.servers": bootstrap_servers},
            AvroSerde(registry_url, auto_register=True),
            "shop",
        )
        placed: dict[str, str] = {}  # correlation id -> order
        for i in range(ORDERS):
            order = f"R{run}-{i}"
            first = publisher.publish(
                order_placed(order, "10.00"),
                order,
                topic=topics["orders"],
            )
            paid = PaymentAuthorized(order_id=order, payment_id=f"p{i}", amount=Decimal("10.00"))
            publisher.publish(paid, order, topic=topics["payments"], parent=first)
            placed[first.correlation_id] = order
        publisher.flush()
        paid_at = time.time()

        def tracked(api: str) -> set[str]:
            return {
                s["correlation_id"]
                for s in list_instances(api, "process=order-fulfilment")
                if s["correlation_id"] in placed
            }

        # Any replica, and the UI, answers for every instance, whichever replica owns it.
        for api in (api_a, api_b, api_ui):
            wait_for(lambda api=api: tracked(api) == set(placed), f"{api} to list every order")

        if overdue:
            # Frozen before its deadlines come due and killed once they are overdue: it never
            # fired them, and the survivor finds them overdue when it takes over.
            b.send_signal(signal.SIGSTOP)
            frozen_at = time.time()
            assert frozen_at < paid_at + deadline_s, "frozen after deadlines came due"
            time.sleep(max(0.0, paid_at + deadline_s + 2 - time.time()))
        b.send_signal(signal.SIGKILL)
        killed_at = time.time()
        b.wait(10)
        if not overdue:
            assert killed_at < paid_at + deadline_s, "killed after deadlines came due"

        wait_for(
            lambda: members(admin, name).get(f"{name}-a") == {0, 1, 2, 3},
            "the survivor to own every partition",
            seconds=60,
        )

        def escalated() -> list[dict[str, Any]]:
            query = "process=order-fulfilment&status=needs_manual_resolution"
            return [s for s in list_instances(api_a, query) if s["correlation_id"] in placed]

        wait_for(
            lambda: len(escalated()) == ORDERS,
            "every order's deadline to fire and its undoing to escalate",
            seconds=deadline_s + COMPENSATION_DEADLINE_S + 60,
        )
        assert a.poll() is None, log_a.read_text()[-3000:]

        refunds = collect(
            bootstrap_servers, registry_url, "payments.commands", set(placed), seconds=15,
            until=lambda found: len(found) >= ORDERS,
        )  # fmt: skip
        releases = collect(
            bootstrap_servers, registry_url, "inventory.commands", set(placed), seconds=15,
            until=lambda found: len(found) >= ORDERS,
        )  # fmt: skip
        time.sleep(3)  # a doubled command would come after the first ones
        refunds += collect(
            bootstrap_servers, registry_url, "payments.commands", set(placed), seconds=3
        )[len(refunds) :]
        assert Counter(e.correlation_id for e, _ in refunds) == Counter(set(placed))
        assert Counter(e.correlation_id for e, _ in releases) == Counter(set(placed))
        incidents = collect(
            bootstrap_servers, registry_url, "choreograph.alerts", set(placed), seconds=15,
            until=lambda found: len(found) >= 2 * ORDERS,
        )  # fmt: skip
        raised = Counter(i["incident_id"] for _, i in incidents if i["status"] == "RAISED")
        assert len(raised) == 2 * ORDERS and set(raised.values()) == {1}, raised

        lateness: list[float] = []
        for corr in placed:
            with urllib.request.urlopen(f"{api_a}/api/instances/{corr}") as reply:
                trace = json.load(reply)
            kinds = Counter(e["kind"] for e in trace["timeline"])
            timeouts = [(e["step"], e["note"]) for e in trace["timeline"] if e["kind"] == "timeout"]
            # The reservation's deadline, then each unconfirmed compensation's: once each.
            assert kinds["timeout"] == 3, timeouts
            assert sorted(step for step, _ in timeouts) == ["payment", "reservation", "reservation"]
            fired = datetime.fromisoformat(
                next(e["at"] for e in trace["timeline"] if e["kind"] == "timeout")
            )
            started = datetime.fromisoformat(trace["steps"]["reservation"]["started_at"])
            lateness.append(fired.timestamp() - started.timestamp() - deadline_s)
        lateness.sort()
        p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))]
        print(
            f"{'frozen, then ' if overdue else ''}"
            f"replica b (partitions {sorted(victim_partitions)}) killed "
            f"{killed_at - paid_at:.1f} s after the payments; deadline lateness on the "
            f"survivor: median {lateness[len(lateness) // 2]:.1f} s, p99 {p99:.1f} s, "
            f"max {lateness[-1]:.1f} s"
        )
        assert lateness[0] >= 0
        # The survivor takes the partitions after the group's session timeout (10 s), restores
        # them, and fires what is overdue at once.
        assert lateness[-1] < 30, lateness
        assert ui.poll() is None
