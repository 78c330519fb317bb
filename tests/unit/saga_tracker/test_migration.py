"""Moving open instances to a newer definition version, driven in memory: the check replays
each instance's recorded history under both versions, moves only what is safe (with a decision
record naming who, from, to and the evidence), and a moved instance then runs as the new
version says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from choreograph.contracts.serde import AvroSerde
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, digest
from saga_tracker.actions import ActionDesk
from saga_tracker.migration import check_migration
from saga_tracker.service import build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_batches import V3, action, placed
from tests.unit.saga_tracker.test_console_repair import TOKENS, call
from tests.unit.saga_tracker.test_tracker_service import MODELS, T0, definitions, instance, send

RESERVATION = "    deadline: 10m\n    on_timeout: compensate\n    # An operator's redrive"


def version(number: int, reservation: str) -> str:
    """order-fulfilment v3 as version `number`, its reservation deadline `reservation`."""
    changed = V3.replace("version: 3", f"version: {number}")
    return changed.replace(RESERVATION, RESERVATION.replace("10m", reservation))


V4 = version(4, "30m")  # the fix: reservations may take half an hour
V5 = version(5, "5m")  # stricter: some open instances are past it already


def started_on_v3() -> TestKit:
    """A tracker that knows v3 alone: its instances start on v3 (newer versions come by
    `kit.deploy`, as a release does)."""
    return TestKit(build_tracker(definitions(V3), MODELS), start=T0)


def migrate(kit: TestKit, corr: str, to: int) -> None:
    action(kit, corr, "migrate", to_version=to)


def audit(kit: TestKit) -> list[Any]:
    return [e.event for e in kit.emitted(topic="choreograph.audit")]


def test_a_safe_instance_moves_and_then_runs_as_the_new_version_says() -> None:
    kit = started_on_v3()
    placed(kit, "c-1")
    kit.advance(timedelta(minutes=1))
    send(kit, "com.acme.payments.PaymentAuthorized", "c-1")  # reservation: 10 min under v3
    kit.advance(timedelta(minutes=2))
    kit.deploy(build_tracker(definitions(V3, V4), MODELS))  # v4 released
    migrate(kit, "c-1", 4)
    inst = instance(kit)
    assert inst.version == 4
    assert inst.steps["reservation"].deadline == T0 + timedelta(minutes=31)
    assert inst.timeline[-1].kind == "migration"
    assert inst.timeline[-1].note == "migrated v3 -> v4 by alice: repair"
    [entry] = audit(kit)
    assert (entry.action, entry.outcome) == ("migrate", "APPLIED")
    [decision] = [d.event for d in kit.emitted(topic="choreograph.decisions")]
    assert (decision.kind, decision.version, decision.actor, decision.actor_kind) == (
        "migration",
        4,
        "alice",
        "operator",
    )
    assert decision.reason == "migrated v3 -> v4: repair"
    [evidence] = decision.rules
    assert (evidence.rule, evidence.version, evidence.result) == (
        "migration-check",
        "v3->v4",
        "true",
    )
    assert evidence.inputs["steps"] == (
        '{"payment": "completed", "reservation": "running", "shipping": "pending"}'
    )
    kit.advance(timedelta(minutes=10))  # v3's reservation deadline has passed: nothing happens
    assert instance(kit).status == "running" and not kit.emitted(topic="payments.commands")
    kit.advance(timedelta(minutes=20))  # v4's has: the reservation is undone as v4 says
    inst = instance(kit)
    assert inst.status == "compensating" and inst.steps["reservation"].status == "compensating"
    [timeout] = [e for e in inst.timeline if e.kind == "timeout"]
    assert (timeout.step, timeout.at) == ("reservation", T0 + timedelta(minutes=31))
    assert [c.event.reason for c in kit.emitted(topic="payments.commands")] == [
        "step reservation timed out"
    ]


def test_what_is_not_safe_stays_where_it_is_with_the_reason_audited() -> None:
    kit = started_on_v3()
    placed(kit, "late")  # reservation running 6 min: v5's 5 min have passed
    send(kit, "com.acme.payments.PaymentAuthorized", "late")
    placed(kit, "early")  # payment running: v5 changes nothing it went through
    kit.advance(timedelta(minutes=6))
    kit.deploy(build_tracker(definitions(V3, V5), MODELS))
    migrate(kit, "late", 5)
    migrate(kit, "early", 5)
    assert instance(kit, "late").version == 3 and instance(kit, "early").version == 5
    refused, applied = audit(kit)
    assert (refused.target, refused.outcome) == ("late", "REFUSED")
    assert refused.detail == (
        "not safe to move to v5: deadline already passed under the new rules: reservation "
        "(would be compensating, is running)"
    )
    assert (applied.target, applied.outcome) == ("early", "APPLIED")


def test_a_version_not_loaded_or_not_newer_is_refused() -> None:
    kit = started_on_v3()
    placed(kit, "c-1")
    migrate(kit, "c-1", 4)
    migrate(kit, "c-1", 3)
    unknown, same = audit(kit)
    assert unknown.detail == "v4 of order-fulfilment is not loaded here: release it to the " \
        "tracker first"  # fmt: skip
    assert same.detail == (
        "not safe to move to v3: it runs on v3 already: move it only to a newer version"
    )


def test_paused_acted_on_and_ended_instances_are_not_moved() -> None:
    kit = started_on_v3()
    for corr in ("paused", "retried", "done"):
        placed(kit, corr)
    action(kit, "paused", "pause")
    send(kit, "com.acme.payments.PaymentAuthorized", "retried")
    send(kit, "com.acme.inventory.StockReserved", "retried")
    kit.advance(timedelta(minutes=61))  # shipping is late: on-call is paged
    action(kit, "retried", "retry", "shipping")
    send(kit, "com.acme.orders.OrderCancelled", "done")
    loaded = definitions(V3, V4)
    v3, v4 = loaded.pinned("order-fulfilment", 3), loaded.pinned("order-fulfilment", 4)
    assert v3 is not None and v4 is not None
    reasons = {
        corr: check_migration(instance(kit, corr), v3, v4, kit.now).reason
        for corr in ("paused", "retried", "done")
    }
    assert reasons["paused"].startswith("paused: resume it first")
    assert reasons["retried"].startswith("an operator acted on it (retry shipping by alice")
    assert reasons["done"] == f"ended ({instance(kit, 'done').status}): nothing to migrate"
    assert instance(kit, "done").ended


def test_a_new_version_that_follows_new_events_cannot_judge_the_history() -> None:
    kit = started_on_v3()
    placed(kit, "c-1")
    extra = V4.replace(
        "success: [com.acme.orders.OrderCompleted]",
        "success: [com.acme.orders.OrderCompleted, com.acme.orders.GoodwillRefundApproved]",
    )
    loaded = definitions(V3, extra)
    v3, v4 = loaded.pinned("order-fulfilment", 3), loaded.pinned("order-fulfilment", 4)
    assert v3 is not None and v4 is not None
    check = check_migration(instance(kit), v3, v4, kit.now)
    assert not check.safe and check.reason.startswith(
        "v4 follows com.acme.orders.GoodwillRefundApproved, which v3 did not record"
    )


def test_a_batch_action_moves_an_instance_once() -> None:
    kit = started_on_v3()
    placed(kit, "c-1")
    kit.deploy(build_tracker(definitions(V3, V4), MODELS))
    for _ in range(2):  # redelivered
        action(kit, "c-1", "migrate", to_version=4, batch_id="b-1", action_id="b-1/0")
    inst = instance(kit)
    assert inst.version == 4 and [e.kind for e in inst.timeline].count("migration") == 1
    done = [e.event for e in kit.emitted(topic="saga-tracker.batches")]
    assert [d.applied for d in done] == [True]


def test_the_api_dry_run_lists_each_instance_with_its_verdict() -> None:
    kit = started_on_v3()
    placed(kit, "paid")
    send(kit, "com.acme.payments.PaymentAuthorized", "paid")
    kit.advance(timedelta(minutes=6))  # paid: its reservation is past v5's 5 minutes
    placed(kit, "new")
    loaded = definitions(V3, V5)
    desk = ActionDesk({"bootstrap.servers": "127.0.0.1:9"}, AvroSerde("http://127.0.0.1:9"),
                      loaded, MODELS, repartition="r", transactional_id="t",
                      clock=lambda: kit.now)  # fmt: skip
    server = TraceServer(committed_instances(lambda: kit.tasks), access=Access(TOKENS),
                         desk=desk, facts=loaded.facts()).start()  # fmt: skip
    try:
        url = f"{server.url}/api/batches"
        body = {"query": {"process": "order-fulfilment", "status": "running"},
                "action": "migrate", "to_version": 5, "reason": "stricter reservations",
                "dry_run": True}  # fmt: skip
        status, plan = call(url, "platform", body)
        assert status == 200 and plan["dry_run"] is True
        assert (plan["count"], plan["chosen"], plan["safe"], plan["not_safe"]) == (1, 2, 1, 1)
        verdicts = {i["correlation_id"]: (i["safe"], i["reason"]) for i in plan["instances"]}
        assert verdicts == {
            "new": (True, "same states, no deadline passed, nothing new to send"),
            "paid": (
                False,
                "deadline already passed under the new rules: reservation "
                "(would be compensating, is running)",
            ),
        }
        assert plan["to_version"] == 5
        status, missing = call(url, "platform", {**body, "to_version": 7})
        assert status == 409 and missing["error"].startswith("v7 of order-fulfilment is not "
                                                             "loaded here")  # fmt: skip
        page_url = (f"{server.url}/batches/new?process=order-fulfilment&status=running"
                    "&action=migrate&to_version=5")  # fmt: skip
        status, page = call(page_url, "platform")
        assert status == 200 and '<strong id="safe">1</strong> of 2 can move safely' in page
        assert '<td class="failed">not safe</td><td>deadline already passed' in page
        status, plain = call(page_url.replace("&action=migrate&to_version=5", ""), "platform")
        assert '<input type="hidden" name="action" value="migrate">' in plain  # the check form
        platform = TOKENS[digest("platform")]

        def asked(changed: dict[str, Any]) -> Any:  # refused before anything is audited
            return desk.batch(platform, {**body, **changed}, lambda most: [],
                              lambda: {}, lambda n: [], "")  # fmt: skip

        wrong = asked({"to_version": "5"})
        assert wrong.status == 400 and wrong.body["error"].startswith("a migration names")
        assert asked({"action": "pause"}).body["error"] == "to_version is for migrate alone"
    finally:
        server.stop()
