"""The reference choreography as real processes, for fault tests: start it, load it with orders,
stop and start servers of the local stack under it, and check what every order became.

Proof of an outcome comes from two places: the saga tracker's end state per order, and a
read_committed count of every event per order on the domain topics (nothing lost, nothing
written twice by an exactly-once service).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from choreograph import AvroSerde, EventPublisher
from choreograph.runtime.records import Record
from choreograph.testing.servers import Servers
from choreograph_examples.demo import (
    ENDED,
    Fleet,
    PlannedOrder,
    create_topics,
    list_instances,
    plan,
    register_contracts,
    running,
    wait_until_ready,
    write_accelerated,
)
from tests.kafka_helpers import committed_consumer
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy/local/stack.sh"
# Written by exactly-once services: every event type at most once per order. (shipping.events is
# written by the Faust app, at-least-once, so it is judged by the tracker's outcome only.)
EXACTLY_ONCE_TOPICS = ["orders.events", "payments.events", "inventory.events"]
SPEED = 10  # deadlines 10x faster: the longest step deadline (15 min) is 90 s, past any outage


def stack(command: str, name: str) -> float:
    """Stop or start one server of the local stack; returns when it is done (ready)."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(STACK), command, name], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - started


def require_local_stack(servers: Servers) -> None:
    if not servers.origin.startswith("local stack"):
        pytest.skip(f"fault tests stop and start servers of the local stack, not {servers.origin}")


@dataclass
class Run:
    servers: Servers
    fleet: Fleet
    api: str
    run: str
    orders: list[PlannedOrder]
    placed: dict[str, str] = field(default_factory=dict)  # correlation id -> order id
    _publisher: EventPublisher | None = None

    def publisher(self) -> EventPublisher:
        """The shop's one publisher, as a real shop keeps it: what it learnt from the registry
        carries it through a registry outage."""
        if self._publisher is None:
            self._publisher = EventPublisher(
                {"bootstrap.servers": self.servers.bootstrap},
                AvroSerde(self.servers.registry_url),
                "shop",
            )
        return self._publisher

    def place(self, orders: list[PlannedOrder], rate: float) -> threading.Thread:
        """Place `orders` at `rate` per second in the background (the load under a fault)."""
        publisher = self.publisher()

        def drive() -> None:
            for i, planned in enumerate(orders):
                envelope = publisher.publish(planned.order, planned.order_id, topic="orders.events")
                self.placed[envelope.correlation_id] = planned.order_id
                publisher.producer.poll(0)
                time.sleep(1 / rate)
                if i % 20 == 19:
                    publisher.flush(120)
            publisher.flush(120)

        thread = threading.Thread(target=drive, daemon=True)
        thread.start()
        return thread

    def outcomes(self, seconds: float) -> dict[str, str]:
        """Order id -> tracker status, once every placed order has ended (or time is up)."""
        deadline = time.monotonic() + seconds
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            self.fleet.check()  # no process of the choreography exited
            try:
                for summary in list_instances(self.api, "process=order-fulfilment"):
                    order = self.placed.get(summary["correlation_id"])
                    if order is not None:
                        statuses[order] = summary["status"]
            except OSError:
                pass  # the tracker's API may be busy restoring
            if len(statuses) == len(self.orders) and all(s in ENDED for s in statuses.values()):
                break
            time.sleep(1)
        return statuses

    def assert_as_planned(self, statuses: dict[str, str]) -> None:
        wrong = {
            o.order_id: (o.expected, statuses.get(o.order_id, "not tracked"))
            for o in self.orders
            if statuses.get(o.order_id) != o.expected
        }
        assert not wrong, (
            f"{len(wrong)} orders did not end as planned: {dict(list(wrong.items())[:5])}"
        )

    def assert_exactly_once(self) -> None:
        """read_committed: per order, every event type at most once, and the ones the plan says."""
        counts = committed_event_counts(self.servers.bootstrap, self.run)
        twice = {
            order: {t: n for t, n in types.items() if n > 1}
            for order, types in counts.items()
            if any(n > 1 for n in types.values())
        }
        assert not twice, f"events written more than once: {dict(list(twice.items())[:5])}"
        for planned in self.orders:
            types = counts.get(planned.order_id, Counter())
            assert types["com.acme.orders.OrderPlaced"] == 1, (planned.order_id, types)
            end = (
                "com.acme.orders.OrderCompleted"
                if planned.kind == "ok"
                else "com.acme.orders.OrderCancelled"
            )
            assert types[end] == 1, (planned.order_id, planned.kind, types)


def committed_records(bootstrap: str, topic: str, idle_s: float = 3.0) -> Iterator[Record]:
    """Every committed record of `topic`, from the start until it has been quiet for `idle_s`."""
    consumer = committed_consumer(bootstrap, topic)
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < idle_s:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            idle_since = time.monotonic()
            yield Record.of(msg)
    finally:
        consumer.close()


def committed_event_counts(bootstrap: str, run: str) -> dict[str, Counter[str]]:
    """Per order id of this run: how many committed records of each ce_type."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for topic in EXACTLY_ONCE_TOPICS:
        for record in committed_records(bootstrap, topic):
            key = (record.key or b"").decode(errors="replace")
            if f"-{run}-" in key:
                counts[key][record.header("ce_type") or "?"] += 1
    return counts


def split_keys(bootstrap: str, topic: str, run: str) -> dict[str, set[int]]:
    """Keys of this run found in more than one partition of `topic` (co-partitioning broken)."""
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in committed_records(bootstrap, topic):
        key = (record.key or b"").decode(errors="replace")
        if f"-{run}-" in key:
            partitions[key].add(record.partition)
    return {key: found for key, found in partitions.items() if len(found) > 1}


@contextmanager
def reference_choreography(
    servers: Servers,
    state: Path,
    orders: int,
    seed: int = 11,
    speed: float = SPEED,
    modules: dict[str, str] | None = None,
    tracker_args: list[str] | None = None,
    versions: tuple[int, ...] | None = None,
) -> Iterator[Run]:
    """The four team services and the tracker, ready, with orders planned (none stalled: a
    stalled payment only ends by its deadline, which would make the test as long as that).
    `modules`: teams whose service runs from another module, `tracker_args`: more arguments
    for the tracker (see `running`); `versions`: the definition versions the tracker has (all
    released ones by default, new instances on the latest)."""
    register_contracts(servers.registry_url)
    partitions = create_topics(servers.bootstrap, 3)
    definitions = state / "processes"
    write_accelerated(definitions, speed, versions)
    run = uuid.uuid4().hex[:6]
    planned = [o for o in plan(orders, run, seed) if o.kind != "stalled"]
    port = free_port()
    with running(servers, state, definitions, partitions, port, modules, tracker_args) as fleet:
        api = f"http://127.0.0.1:{port}"
        wait_until_ready(AdminClient({"bootstrap.servers": servers.bootstrap}), fleet, api, state)
        yield Run(servers, fleet, api, run, planned)


def pid_of(fleet: Fleet, name: str) -> int:
    return next(proc.pid for child, proc, _ in fleet.children if child == name)


def log_lines(fleet: Fleet, service: str, needle: str) -> list[str]:
    return [
        line for line in (fleet.logs / f"{service}.log").read_text().splitlines() if needle in line
    ]


def stop(fleet: Fleet, name: str, *, kill: bool = False) -> list[str]:
    """SIGTERM (cleanly) or, with `kill`, SIGKILL one process of the fleet; its command, to
    start it again."""
    for i, (child, proc, log) in enumerate(fleet.children):
        if child == name:
            if kill:
                proc.kill()
                proc.wait(30)
            else:
                proc.terminate()
                assert proc.wait(60) == 0, f"{name} did not stop cleanly"
            log.close()
            del fleet.children[i]
            return [str(a) for a in proc.args]  # type: ignore[union-attr]
    raise AssertionError(f"no {name} in the fleet")


def restart(fleet: Fleet, name: str, env: dict[str, Any], *, kill: bool = False) -> None:
    """Stop one service of the fleet (see `stop`) and start it again with the same command."""
    fleet.start(name, stop(fleet, name, kill=kill), env)


def env_of(servers: Servers, state: Path) -> dict[str, str]:
    """What a process of the fleet is started with: the stack's addresses, its state folder."""
    return {"CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
            "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
            "CHOREOGRAPH_STATE_DIR": str(state), "CHOREOGRAPH_PARTITIONS": "3"}  # fmt: skip
