"""`/healthz` and `/readyz` of a service on the real broker: a handler that blocks makes the
service not live until it returns; a large store being restored makes it not ready (and still
live) until the restore ends, and the restore says how far it is as it goes."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph import Context, EventPublisher, Service, ServiceConfig
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.engine import Engine
from choreograph.state import restore as restore_module
from choreograph_examples.contracts.orders import OrderPlaced
from tests.integration.runtime.test_engine import free_port
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
RESTORED = 300_000  # changelog records of the large store


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def blocking_service(name: str, topic: str, release: threading.Event) -> Service:
    service = Service(name, [topic])
    service.store("seen")

    @service.handle(OrderPlaced, topic=topic)
    def placed(ctx: Context, event: OrderPlaced) -> None:
        if event.customer_id == "blocks":
            release.wait(60)  # a call to a partner that does not answer
        ctx.store("seen").put(event.order_id, True)

    return service


def config(bootstrap: str, registry: str, tmp_path: Path, port: int) -> ServiceConfig:
    return ServiceConfig(bootstrap_servers=bootstrap, registry_url=registry,
                         state_dir=tmp_path / "state", metrics_port=port,
                         liveness_bound_s=3)  # fmt: skip


def test_a_blocked_handler_fails_liveness_until_it_returns(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic, release = new_topic("health.orders", 1), threading.Event()
    service = blocking_service(f"health-{uuid.uuid4().hex[:8]}", topic, release)
    port = free_port()
    publisher = EventPublisher({"bootstrap.servers": bootstrap_servers},
                               AvroSerde(registry_url, auto_register=True), "shop")  # fmt: skip
    with engine_thread(Engine(service, config(bootstrap_servers, registry_url, tmp_path, port))):
        wait_for(lambda: probe(port, "/readyz")[0] == 200, "ready", 60)
        assert probe(port, "/healthz")[0] == 200
        assert "choreograph_events" in probe(port, "/metrics")[1]  # the same port
        blocked = order_placed("o-1", "10.00").model_copy(update={"customer_id": "blocks"})
        publisher.publish(blocked, "o-1", topic=topic)
        publisher.flush()
        wait_for(lambda: probe(port, "/healthz")[0] == 503, "liveness to fail", 30)
        status, said = probe(port, "/healthz")
        assert status == 503 and "the processing loop has not gone round for" in said, said
        assert "a handler or a client call is blocked" in said
        release.set()
        wait_for(lambda: probe(port, "/healthz")[0] == 200, "liveness back", 30)


def test_readiness_waits_for_a_large_restore_which_says_how_far_it_is(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
    admin: AdminClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, release = new_topic("health.orders", 1), threading.Event()
    release.set()
    service = blocking_service(f"health-{uuid.uuid4().hex[:8]}", topic, release)
    changelog = service.changelog_topic("seen")
    created = admin.create_topics(
        [
            NewTopic(
                changelog,
                num_partitions=1,
                replication_factor=1,
                config={"cleanup.policy": "compact"},
            )
        ]
    )
    created[changelog].result(30)
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 50})
    for i in range(RESTORED):
        producer.produce(changelog, key=f"order-{i}".encode(), value=b"true", partition=0)
        if i % 50_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    monkeypatch.setattr(restore_module, "PROGRESS_EVERY_S", 0.2)
    port = free_port()
    seen: list[tuple[int, int, str]] = []  # (readyz, healthz, readyz text) while starting

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            ready, said = probe(port, "/readyz")
            live, _ = probe(port, "/healthz")
            seen.append((ready, live, said))
            time.sleep(0.05)

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    caplog.set_level(logging.INFO, logger="choreograph.restore")
    engine = Engine(service, config(bootstrap_servers, registry_url, tmp_path, port))
    with engine_thread(engine):
        watcher.start()
        wait_for(lambda: probe(port, "/readyz")[0] == 200, "ready after the restore", 120)
        stop.set()
        watcher.join(5)
    restoring = [said for ready, _, said in seen if ready == 503 and "restoring" in said]
    assert restoring, seen[:5]
    assert ": restoring the state of partition(s) 0 (progress in the log" in restoring[0]
    assert all(live == 200 for ready, live, _ in seen if ready == 503 and live), seen
    assert [r for r, _, _ in seen if r][-1] == 200
    progress = [r for r in caplog.records if r.getMessage().startswith("restoring:")]
    assert progress, "no restore progress was logged"
    last = progress[-1]
    assert 0 < last.records <= RESTORED and last.per_s > 0 and last.remaining >= 0  # type: ignore[attr-defined]
    assert "a second" in last.getMessage() and " left in 1 partition(s)" in last.getMessage()
