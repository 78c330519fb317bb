"""Batch operations and the repairs behind them, driven in memory: the runner dispatches a
batch's actions at its rate, the tracker applies each once and reports back, a cancel stops the
rest; search attributes come from the bodies the tracker reads; a redrive's command is caused by
the operator's decision; ended instances leave after their retention unless on hold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph.testing.testkit import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from saga_tracker.batches import (
    BATCHES,
    STATE,
    TARGETS,
    action_id,
    build_batch_runner,
    chunks_of,
)
from saga_tracker.service import ACTION, REPARTITION, build_tracker
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, definitions, instance, send

REPO = Path(__file__).resolve().parents[3]
V3 = (REPO / "processes/order-fulfilment.v3.yaml").read_text()
REQUESTED = MODELS["dev.choreograph.BatchRequested"]
CANCELLED = MODELS["dev.choreograph.BatchCancelled"]


def placed(kit: TestKit, corr: str, customer: str = "cust-1", total: str = "12.50") -> None:
    order = OrderPlaced(
        order_id=f"o-{corr}",
        customer_id=customer,
        customer_email="a@example.com",
        lines=[OrderLine(sku="MUG-1", quantity=1)],
        total=Decimal(total),
        currency="CHF",
        placed_at=kit.now,
    )
    kit.send(order, corr, topic=REPARTITION, correlation_id=corr)


def action(kit: TestKit, corr: str, kind: str, step: str | None = None, **more: Any) -> None:
    fields = {"action_id": f"a-{corr}-{kind}", "action": kind.upper(), "correlation_id": corr,
              "process": "order-fulfilment", "step": step, "actor": "alice",
              "reason": "repair", "requested_at": kit.now, **more}  # fmt: skip
    kit.send(MODELS[ACTION].from_avro(fields), corr, topic=REPARTITION, correlation_id=corr)


@pytest.fixture
def tracker() -> TestKit:
    return TestKit(
        build_tracker(definitions(V3), MODELS, retention=timedelta(days=1)), start=T0, partitions=3
    )


def test_search_attributes_come_from_the_start_events_body(tracker: TestKit) -> None:
    placed(tracker, "c-1", customer="cust-9", total="99.90")
    inst = instance(tracker)
    assert inst.attributes == {"customer_id": "cust-9", "total": 99.9, "currency": "CHF"}
    assert inst.value == 99.9


def test_a_redrive_sends_the_steps_command_caused_by_the_operators_decision(
    tracker: TestKit,
) -> None:
    placed(tracker, "c-1", customer="cust-9")
    send(tracker, "com.acme.payments.PaymentAuthorized")  # reservation starts
    action(tracker, "c-1", "redrive", "reservation")
    [command] = tracker.emitted(topic="inventory.commands")
    assert command.event.to_avro() == {
        "order_id": "c-1",  # the business key (here the key it was sent under)
        "customer_id": "cust-9",
        "reason": "redrive reservation requested by alice: repair",
    }
    [decision] = [
        d
        for d in tracker.emitted(topic="choreograph.decisions")
        if d.event.kind == "operator-action"
    ]
    assert command.envelope.causation_id == decision.envelope.id
    assert command.envelope.correlation_id == "c-1"
    [audit] = tracker.emitted(topic="choreograph.audit")
    assert (audit.event.outcome, audit.event.action) == ("APPLIED", "redrive")


def test_an_ended_instance_leaves_after_its_retention_unless_on_hold(tracker: TestKit) -> None:
    placed(tracker, "c-1")
    placed(tracker, "c-2")
    for corr in ("c-1", "c-2"):
        action(tracker, corr, "cancel")
    action(tracker, "c-2", "hold")
    tracker.advance(timedelta(days=29))
    assert instance(tracker, "c-1").status == "cancelled"  # the definition keeps 30 days
    tracker.advance(timedelta(days=1, seconds=1))
    assert tracker.store("instances").get("c-1/order-fulfilment") is None
    assert instance(tracker, "c-2").held == "alice: repair"  # on hold: kept
    action(tracker, "c-2", "release")
    tracker.advance(timedelta(seconds=1))  # its retention has passed already: deleted now
    assert tracker.store("instances").get("c-2/order-fulfilment") is None


def test_storage_stays_bounded_under_a_steady_stream_of_ended_instances() -> None:
    v1 = (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    kit = TestKit(
        build_tracker(definitions(v1), MODELS, retention=timedelta(hours=1)), start=T0, partitions=2
    )
    kept = []
    for minute in range(8 * 60):  # 8 hours, an instance a minute, each ends at once
        corr = f"c-{minute}"
        send(kit, "com.acme.orders.OrderPlaced", corr=corr, key=corr)
        action(kit, corr, "cancel")
        kit.advance(timedelta(minutes=1))
        if minute % 60 == 59:
            kept.append(len(kit.store("instances").items()))
    assert max(kept) <= 61 and min(kept) >= 59  # an hour's worth, however long it runs


def runner_kit() -> TestKit:
    return TestKit(build_batch_runner(MODELS, repartition=REPARTITION), start=T0, partitions=2)


def request(runner: TestKit, batch: str, targets: list[tuple[str, str]], **more: Any) -> None:
    chunks = chunks_of(targets)
    for number, chunk in enumerate(chunks):
        fields = {"batch_id": batch, "action": "pause", "step": None, "reason": "deploy",
                  "actor": "alice", "query": "status=running", "rate_per_s": 50,
                  "total": len(targets), "chunk": number, "chunks": len(chunks),
                  "targets": [{"correlation_id": c, "process": p} for c, p in chunk],
                  "requested_at": runner.now, **more}  # fmt: skip
        runner.send(REQUESTED.from_avro(fields), batch, topic=BATCHES)


def relay(source: TestKit, topic: str, target: TestKit, since: int) -> int:
    """Deliver what `source` emitted to `topic` (from output `since` on) to `target`."""
    outputs = source.outputs[since:]
    for out in outputs:
        if out.topic == topic:
            target.send(out.event, out.key, topic=topic, correlation_id=out.envelope.correlation_id)
    return len(source.outputs)


def test_a_batch_acts_on_every_chosen_instance_once_at_its_rate(tracker: TestKit) -> None:
    runner = runner_kit()
    chosen = []
    for i in range(25):
        placed(tracker, f"c-{i}")
        chosen.append((f"c-{i}", "order-fulfilment"))
    chosen.append(("gone", "order-fulfilment"))  # ended and deleted since the query: refused
    request(runner, "b-1", chosen)
    runner.advance(timedelta(0))  # the first tick is due at once
    assert [a.key for a in runner.emitted(topic=REPARTITION)] == [f"c-{i}" for i in range(10)]
    seen_runner = seen_tracker = 0
    for _ in range(3):  # 50 a second: 10 a tick
        seen_runner = relay(runner, REPARTITION, tracker, seen_runner)
        seen_tracker = relay(tracker, BATCHES, runner, seen_tracker)
        runner.advance(timedelta(milliseconds=200))
    seen_runner = relay(runner, REPARTITION, tracker, seen_runner)
    relay(tracker, BATCHES, runner, seen_tracker)
    ids = [a.event.action_id for a in runner.emitted(topic=REPARTITION)]
    assert ids == [action_id("b-1", i) for i in range(26)]  # once each, in order
    state = runner.store(STATE).get("b-1")
    assert (state["status"], state["applied"], state["refused"]) == ("done", 25, 1)
    assert state["refusals"] == [
        {"correlation_id": "gone", "detail": "no instance gone of order-fulfilment"}
    ]
    assert runner.store(TARGETS).items() == []  # the chunks go once all is dispatched
    assert all(instance(tracker, f"c-{i}").paused for i in range(25))
    audits = [a.event for a in tracker.emitted(topic="choreograph.audit")]
    assert {a.batch_id for a in audits} == {"b-1"} and len(audits) == 26
    assert all(a.actor == "alice" for a in audits)
    # The same action again (a redelivery): applied once, reported once.
    before = len(tracker.outputs)
    again = runner.emitted(topic=REPARTITION)[0]
    tracker.send(again.event, again.key, topic=REPARTITION, correlation_id=again.key)
    assert tracker.outputs[before:] == []


def test_a_cancelled_batch_dispatches_nothing_more() -> None:
    runner = runner_kit()
    request(runner, "b-2", [(f"c-{i}", "p") for i in range(2500)], rate_per_s=100)
    assert len(runner.store(TARGETS).items()) == 3  # 1000 a chunk
    runner.advance(timedelta(0))
    runner.advance(timedelta(milliseconds=200))
    sent = len(runner.emitted(topic=REPARTITION))
    assert sent == 40  # 20 a tick
    cancel = {"batch_id": "b-2", "actor": "bob", "reason": "wrong query", "at": runner.now}
    runner.send(CANCELLED.from_avro(cancel), "b-2", topic=BATCHES)
    runner.advance(timedelta(seconds=5))
    assert len(runner.emitted(topic=REPARTITION)) == sent
    state = runner.store(STATE).get("b-2")
    assert (state["status"], state["dispatched"], state["cancelled_by"]) == (
        "cancelled",
        40,
        "bob: wrong query",
    )


def test_a_batch_starts_once_all_its_chunks_are_in_whatever_their_order() -> None:
    runner = runner_kit()
    targets = [(f"c-{i}", "p") for i in range(1500)]
    chunks = chunks_of(targets)
    for number in (1, 0, 1):  # the second chunk first, and once more
        fields = {"batch_id": "b-3", "action": "resume", "step": None, "reason": "r",
                  "actor": "a", "query": "", "rate_per_s": 5000, "total": 1500,
                  "chunk": number, "chunks": 2,
                  "targets": [{"correlation_id": c, "process": p} for c, p in chunks[number]],
                  "requested_at": runner.now}  # fmt: skip
        runner.send(REQUESTED.from_avro(fields), "b-3", topic=BATCHES)
    runner.advance(timedelta(seconds=2))
    keys = [a.key for a in runner.emitted(topic=REPARTITION)]
    assert keys == [c for c, _ in targets]  # in order, each once, at most 1000 a second
    assert runner.store(STATE).get("b-3")["rate_per_s"] == 1000
