"""Machine versions on the real broker: `choreograph machines status` counts a running
service's instances per version and state from their changelogs and, `--against` a new build,
names what it would strand; that build refuses to start (one line, exit 2) after restoring
them; a build that migrates them starts, and moves each instance when next touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from choreograph import EventPublisher, ServiceConfig
from choreograph.cli.main import main
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.engine import Engine
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized
from tests.integration.runtime import machine_versions_app as app
from tests.integration.runtime.test_input_order_on_kafka import counts
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def names(
    new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    found = {"MV_SERVICE": f"mv-{uuid.uuid4().hex[:8]}", "MV_ORDERS": new_topic("orders.events"),
             "MV_PAYMENTS": new_topic("payments.events")}  # fmt: skip
    for name, value in found.items():
        monkeypatch.setenv(name, value)
    yield found


def status(capsys: pytest.CaptureFixture[str], bootstrap: str, service: str,
           *extra: str) -> tuple[int, list[dict[str, object]]]:  # fmt: skip
    capsys.readouterr()
    code = main(["machines", "status", "--service", service, "--bootstrap", bootstrap,
                 "--format", "json", *extra])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def test_a_release_that_would_strand_instances_is_named_before_and_refused_at_start_up(
    bootstrap_servers: str,
    registry_url: str,
    names: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = names["MV_SERVICE"]
    publisher = EventPublisher({"bootstrap.servers": bootstrap_servers},
                               AvroSerde(registry_url, auto_register=True), "shop")  # fmt: skip
    for key in ("o-1", "o-2", "o-3"):
        publisher.publish(order_placed(key, "12.50"), key, topic=names["MV_ORDERS"])
    publisher.publish(PaymentAuthorized(order_id="o-3", payment_id="p", amount=Decimal("12.50")),
                      "o-3", topic=names["MV_PAYMENTS"])  # fmt: skip
    publisher.flush()

    def config(instance: str) -> ServiceConfig:
        return ServiceConfig(bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             state_dir=tmp_path / instance, instance_id=instance)  # fmt: skip

    engine = Engine(app.first(), config("v1"))
    with engine_thread(engine):
        wait_for(lambda: counts(engine).get((PaymentAuthorized.__avro_name__, "ok")) == 1
                 and counts(engine).get((OrderPlaced.__avro_name__, "ok")) == 3,
                 "three orders and a payment handled", seconds=90)  # fmt: skip

    code, report = status(capsys, bootstrap_servers, service)
    assert code == 0
    assert report == [{"machine": "payment", "instances": [
        {"version": 1, "state": "awaiting", "open": 2, "ended": 0},
        {"version": 1, "state": "paid", "open": 0, "ended": 1}]}]  # fmt: skip

    against = "tests.integration.runtime.machine_versions_app:stranding"
    code, report = status(capsys, bootstrap_servers, service, "--against", against)
    assert code == 1
    assert report[0]["stranded"] == [{"version": 1, "state": "awaiting", "open": 2, "ended": 0}]
    assert "2 in state 'awaiting' of v1" in str(report[0]["refusal"])
    safe = "tests.integration.runtime.machine_versions_app:migrating"
    assert status(capsys, bootstrap_servers, service, "--against", safe)[0] == 0

    # The stranding build, as a new pod (empty state directory): it restores, then refuses.
    path = f"{REPO}:{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "CHOREOGRAPH_BOOTSTRAP": bootstrap_servers,
           "CHOREOGRAPH_REGISTRY_URL": registry_url, "CHOREOGRAPH_STATE_DIR": str(tmp_path / "v2"),
           "CHOREOGRAPH_INSTANCE_ID": "v2", "PYTHONPATH": path}  # fmt: skip
    refused = subprocess.run(
        [sys.executable, "-c", f"from {app.__name__} import stranding; stranding().run()"],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "2 in state 'awaiting' of v1" in refused.stderr
    assert "Traceback" not in refused.stderr  # one line that says what to change

    engine = Engine(app.migrating(), config("v2b"))
    with engine_thread(engine):
        publisher.publish(PaymentAuthorized(order_id="o-1", payment_id="p",
                                            amount=Decimal("12.50")),
                          "o-1", topic=names["MV_PAYMENTS"])  # fmt: skip
        publisher.flush()
        wait_for(lambda: counts(engine).get((PaymentAuthorized.__avro_name__, "ok")) == 1,
                 "the payment of a migrated instance handled", seconds=90)  # fmt: skip
    code, report = status(capsys, bootstrap_servers, service)
    assert report[0]["instances"] == [
        {"version": 1, "state": "awaiting", "open": 1, "ended": 0},  # o-2: not touched yet
        {"version": 1, "state": "paid", "open": 0, "ended": 1},
        {"version": 2, "state": "paid", "open": 0, "ended": 1},  # o-1: migrated, then paid
    ]
