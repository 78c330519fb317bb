"""Flow control on the real stack: payments is away, 500 orders' payment deadlines pass and 500
refunds fall due at once; the tracker sends them at the rate the definition declares, each
exactly once (read_committed), although it is killed (kill -9) in the middle of the queue and
restarted: the queue is durable, and what came due while it was down takes fresh slots."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from tests.integration.saga_tracker.helpers import order_placed, wait_for
from tests.reliability.test_batch_operations import answers, tracker_env
from tests.reliability.test_tracker_replicas import tracker_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ORDERS = 500
RATE = 20  # refunds a second to payments.commands, all tracker partitions together
COMMANDS = "payments.commands"  # the RefundPayment contract's topic


def limited(v1: str) -> str:
    payment = (
        "    deadline: 15m\n    on_timeout: compensate\n    compensation:\n"
        "      command: com.acme.payments.RefundPayment"
    )
    assert payment in v1
    text = v1.replace(payment, payment.replace("15m", "5s"))
    return text.replace(
        "steps:\n", f"flow_control:\n  {COMMANDS}: {{per_second: {RATE}}}\nsteps:\n", 1
    )


class Refunds:
    """RefundPayment commands of this run's orders, as committed, with their timestamps."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fc-{prefix}",
                                  "isolation.level": "read_committed",
                                  "enable.auto.commit": False})  # fmt: skip
        metadata = self.consumer.list_topics(COMMANDS, timeout=10).topics[COMMANDS]
        ends = []
        for p in metadata.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(COMMANDS, p), timeout=10)
            ends.append(TopicPartition(COMMANDS, p, high))
        self.consumer.assign(ends)
        self.prefix = prefix.encode()
        self.seen: list[tuple[str, int]] = []  # key, timestamp ms

    def read(self) -> int:
        for msg in self.consumer.consume(1000, 0.5):
            if msg.error() is None and (msg.key() or b"").startswith(self.prefix):
                self.seen.append(((msg.key() or b"").decode(), msg.timestamp()[1]))
        return len(self.seen)

    def close(self) -> None:
        self.consumer.close()


def test_overdue_refunds_go_out_at_the_declared_rate_each_once_through_a_kill(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"flow-{run}"
    env, topics = tracker_env(bootstrap_servers, registry_url, new_topic, tmp_path)
    definition = tmp_path / "processes/order-fulfilment.v1.yaml"
    definition.write_text(limited(definition.read_text()))
    args = ["run", "--auto-register-schemas"]
    refunds = Refunds(bootstrap_servers, f"F{run}-")
    try:
        with tracker_process(name, "a", tmp_path, env, args) as (first, api, log):
            wait_for(lambda: answers(api, "/api/instances?limit=1") is not None, "the API", 120)
            publisher = EventPublisher(
                {"bootstrap.servers": bootstrap_servers, "linger.ms": 20},
                AvroSerde(registry_url, auto_register=True),
                "shop",
            )
            for i in range(ORDERS):  # payments is away: no payment ever comes
                order = f"F{run}-{i}"
                publisher.publish(order_placed(order, "10.00"), order, topic=topics["orders"])
            publisher.flush()
            wait_for(lambda: refunds.read() >= ORDERS * 2 // 5, "refunds under way", 120)
            first.send_signal(signal.SIGKILL)  # in the middle of the queue
            first.wait(10)
            at_kill = refunds.read()
            assert at_kill < ORDERS, "the queue drained before the kill"
        with tracker_process(name, "a", tmp_path, env, args) as (second, api, log):
            wait_for(lambda: refunds.read() >= ORDERS, "every refund, after the restart", 180)
            time.sleep(5)
            refunds.read()
            assert second.poll() is None, log.read_text()[-3000:]
    finally:
        refunds.close()
    keys = Counter(key for key, _ in refunds.seen)
    assert len(keys) == ORDERS and set(keys.values()) == {1}, keys.most_common(3)  # exactly once
    stamps = sorted(ms for _, ms in refunds.seen)
    per_window = Counter((ms - stamps[0]) // 5000 for ms in stamps)
    partitions = 4  # the repartition topic's, each with its share of the rate
    assert max(per_window.values()) <= RATE * 5 + partitions, per_window  # never a burst
    assert (stamps[-1] - stamps[0]) / 1000 >= (ORDERS - partitions) / RATE - 1
    print(f"{ORDERS} refunds at <= {RATE}/s; killed with {at_kill} sent; busiest 5 s: "
          f"{max(per_window.values())}")  # fmt: skip
