"""A shadow run on the real broker: a new build of a charging service (a changed fee rule) runs
beside the live one on the live orders, writes only to `<topic>.shadow`, and the differences it
reports are exactly the orders the rule change affects."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from choreograph import EventPublisher, ServiceConfig
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.engine import Engine
from choreograph.shadow.runner import ShadowRun
from tests.integration.runtime import shadow_app as app
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.kafka_helpers import committed_consumer
from tests.workload_harness import engine_thread

pytestmark = pytest.mark.integration
TOTALS = {"o-1": "40", "o-2": "180", "o-3": "99.99", "o-4": "100.01", "o-5": "250", "o-6": "12"}


@pytest.fixture
def names(
    new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    found = {"SH_SERVICE": f"charges-{uuid.uuid4().hex[:8]}", "SH_ORDERS": new_topic("orders", 3),
             "SH_CHARGES": new_topic("charges", 3)}  # fmt: skip
    for name, value in found.items():
        monkeypatch.setenv(name, value)
    yield found


def count(bootstrap: str, topic: str, expected: int) -> int:
    consumer = committed_consumer(bootstrap, topic)
    seen, idle = 0, 0
    while idle < 6 and seen <= expected:
        batch = consumer.consume(100, 1.0)
        idle = 0 if batch else idle + 1
        seen += sum(1 for m in batch if m.error() is None)
    consumer.close()
    return seen


def test_the_shadow_reports_exactly_the_orders_a_changed_fee_rule_affects(
    bootstrap_servers: str, registry_url: str, names: dict[str, str], tmp_path: Path
) -> None:
    config = ServiceConfig(bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                           state_dir=tmp_path, instance_id="a",
                           auto_register_schemas=True)  # fmt: skip
    live = Engine(app.live(), config)
    shadow = ShadowRun(app.new_fee_rule(), config, ignore={"payment_id"}, settle_s=2.0)
    assert shadow.outputs == {names["SH_CHARGES"]: f"{names['SH_CHARGES']}.shadow"}
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(shadow.run()), daemon=True)
    with engine_thread(live):
        runner.start()
        wait_for(lambda: len(live.partitions) == 3 and len(shadow.engine.partitions) == 3,
                 "both services assigned", seconds=60)  # fmt: skip
        publisher = EventPublisher({"bootstrap.servers": bootstrap_servers},
                                   AvroSerde(registry_url, auto_register=True), "shop")  # fmt: skip
        for key, total in TOTALS.items():
            publisher.publish(order_placed(key, total), key, topic=names["SH_ORDERS"])
        publisher.flush()
        wait_for(lambda: shadow.comparison.compared == len(TOTALS), "every order compared",
                 seconds=90)  # fmt: skip
        shadow.stop()
        runner.join(60)
    comparison = shadow.comparison
    assert comparison.differing == {"o-2", "o-4", "o-5"}  # over 100: the new rule's orders
    assert comparison.same == 3
    by_key = {d.key: d for d in comparison.differences}
    assert by_key["o-2"].kind == "fields"
    assert "PaymentAuthorized.amount: live '183.60', shadow '185.40'" in by_key["o-2"].detail
    assert sample(shadow, "choreograph_shadow_keys_differing_total") == 3
    assert sample(shadow, "choreograph_shadow_keys_compared_total") == len(TOTALS)
    # The live topic holds the live service's charges only; the shadow's are apart.
    assert count(bootstrap_servers, names["SH_CHARGES"], len(TOTALS)) == len(TOTALS)
    assert count(bootstrap_servers, f"{names['SH_CHARGES']}.shadow", len(TOTALS)) == len(TOTALS)


def sample(shadow: ShadowRun, name: str) -> float:
    registry = shadow.engine.metrics.registry
    return registry.get_sample_value(name, {"service": shadow.live_name}) or 0.0


def test_the_shadow_command_reports_over_the_history_and_exits_1_on_differences(
    bootstrap_servers: str, registry_url: str, names: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from choreograph.cli.main import main

    config = ServiceConfig(bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                           state_dir=tmp_path, instance_id="a",
                           auto_register_schemas=True)  # fmt: skip
    live = Engine(app.live(), config)
    with engine_thread(live):
        publisher = EventPublisher({"bootstrap.servers": bootstrap_servers},
                                   AvroSerde(registry_url, auto_register=True), "shop")  # fmt: skip
        for key, total in TOTALS.items():
            publisher.publish(order_placed(key, total), key, topic=names["SH_ORDERS"])
        publisher.flush()
        wait_for(lambda: count(bootstrap_servers, names["SH_CHARGES"], 6) == 6,
                 "the live charges", seconds=60)  # fmt: skip
    report = tmp_path / "report.json"
    code = main(["shadow", "tests.integration.runtime.shadow_app:new_fee_rule", "--from",
                 "earliest", "--ignore-field", "payment_id", "--settle-s", "2", "--duration",
                 "20", "--report", str(report), "--state-dir", str(tmp_path / "shadow"),
                 "--bootstrap", bootstrap_servers, "--registry", registry_url])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1, out.err
    found = json.loads(report.read_text())
    assert (found["compared"], found["same"]) == (6, 3)
    assert found["differing"] == ["o-2", "o-4", "o-5"]
    assert "differs" in out.out and "o-5" in out.out
