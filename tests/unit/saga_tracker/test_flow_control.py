"""Flow control of the tracker's commands, driven in memory: 500 refunds that fall due at once
go out at the declared rate, each exactly once, the rest waiting in a queue that outlives a
redeploy and shows in the queued gauge; a least interval per key spaces commands about one key."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from choreograph.contracts.catalog import load_catalog
from choreograph.process.definition import parse_definition
from choreograph.process.lint import lint_definitions
from choreograph.testing.testkit import TestKit
from saga_tracker.flow import QueuedCommands, limits_of
from saga_tracker.service import build_tracker
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, V1, definitions, send

REPO = Path(__file__).resolve().parents[3]
RATE = 5
LIMITED = V1.replace(
    "steps:\n", f"flow_control:\n  payments.commands: {{per_second: {RATE}}}\nsteps:\n", 1
)


def queued(kit: TestKit) -> float:
    registry = CollectorRegistry()
    registry.register(QueuedCommands(lambda: kit.tasks))
    return registry.get_sample_value("choreograph_saga_commands_queued",
                                     {"topic": "payments.commands"}) or 0.0  # fmt: skip


def test_overdue_refunds_go_out_at_the_declared_rate_each_once() -> None:
    kit = TestKit(build_tracker(definitions(LIMITED), MODELS), start=T0, partitions=3)
    for i in range(500):  # payments is away: none of them is ever authorized
        send(kit, "com.acme.orders.OrderPlaced", corr=f"c-{i}", key=f"o-{i}")
    kit.advance(timedelta(minutes=15, seconds=1))  # every payment deadline passes at once
    first = kit.emitted(topic="payments.commands")
    assert 0 < len(first) <= 3 * 2  # the first slot of each partition, not 500
    assert queued(kit) == 500 - len(first)

    kit.advance(timedelta(seconds=40))
    kit.deploy(build_tracker(definitions(LIMITED), MODELS))  # a release mid-way: the queue stays
    kit.advance(timedelta(minutes=3))
    refunds = kit.emitted(topic="payments.commands")
    assert sorted(r.key for r in refunds) == sorted(f"o-{i}" for i in range(500))  # each once
    assert queued(kit) == 0
    times = sorted(r.envelope.time for r in refunds)
    took = (times[-1] - times[0]).total_seconds()
    assert took >= (500 - 3) / RATE  # no faster than declared
    per_window = Counter(int((t - times[0]).total_seconds() // 10) for t in times)
    assert max(per_window.values()) <= RATE * 10 + 3  # any 10 s: the rate, one slot per task
    assert all(r.envelope.correlation_id == f"c-{r.key[2:]}" for r in refunds)  # its instance


def test_a_least_interval_per_key_spaces_commands_about_one_key() -> None:
    spaced = V1.replace(
        "steps:\n",
        "flow_control:\n  payments.commands: {per_second: 100, per_key_interval: 30s}\nsteps:\n",
        1,
    )
    [limit] = limits_of([definitions(spaced).latest["order-fulfilment"].definition]).values()
    assert (limit.per_second, limit.per_key_interval) == (100, timedelta(seconds=30))
    kit = TestKit(build_tracker(definitions(spaced), MODELS), start=T0, partitions=1)
    send(kit, "com.acme.orders.OrderPlaced", corr="c-1", key="o-1")
    send(kit, "com.acme.orders.OrderPlaced", corr="c-2", key="o-1")  # another instance, same key
    kit.advance(timedelta(minutes=15, seconds=1))
    kit.advance(timedelta(minutes=1))
    times = [r.envelope.time for r in kit.emitted(topic="payments.commands")]
    assert len(times) == 2 and times[1] - times[0] >= timedelta(seconds=30)


def test_the_stricter_of_two_limits_on_a_topic_holds() -> None:
    a = LIMITED
    b = LIMITED.replace("name: order-fulfilment", "name: other").replace(
        f"per_second: {RATE}", "per_second: 2"
    )
    loaded = definitions(a, b)
    limits = limits_of(r.definition for r in loaded.rules.values())
    assert limits["payments.commands"].per_second == 2


def test_a_limit_on_a_topic_the_process_never_sends_to_is_a_lint_warning() -> None:
    catalog = load_catalog(REPO / "schemas/avro")
    wrong = LIMITED.replace("payments.commands: {", "shipping.commands: {")
    [found] = [f for f in lint_definitions([parse_definition(wrong, "p.yaml")], catalog)
               if f.rule == "flow-control-unused"]  # fmt: skip
    assert found.severity == "warning" and "inventory.commands, payments.commands" in found.fix
    fine = lint_definitions([parse_definition(LIMITED, "p.yaml")], catalog)
    assert not [f for f in fine if f.rule == "flow-control-unused"]


def test_held_commands_that_come_due_together_after_downtime_keep_the_rate() -> None:
    kit = TestKit(build_tracker(definitions(LIMITED), MODELS), start=T0, partitions=1)
    for i in range(50):
        send(kit, "com.acme.orders.OrderPlaced", corr=f"c-{i}", key=f"o-{i}")
    kit.advance(timedelta(minutes=15))  # 50 refunds due: 1 sent, 49 held
    assert len(kit.emitted(topic="payments.commands")) == 1
    kit.outage(timedelta(minutes=1))  # every held slot passes while the tracker is down
    after = [r for r in kit.emitted(topic="payments.commands")]
    assert len(after) <= 2  # not the 49 at once: each took a fresh slot
    kit.advance(timedelta(seconds=15))
    refunds = kit.emitted(topic="payments.commands")
    assert sorted(r.key for r in refunds) == sorted(f"o-{i}" for i in range(50))
    late = sorted(r.envelope.time for r in refunds[1:])
    assert (late[-1] - late[0]).total_seconds() >= (len(late) - 1) / RATE - 0.01
