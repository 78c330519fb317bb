"""The shadow form of a service writes nowhere the live service writes (its ACLs say so), and
its comparison settles keys as outputs stop coming, naming what differs."""

from __future__ import annotations

from choreograph import Context, Service
from choreograph.governance.acls import derive
from choreograph.shadow.build import shadowed
from choreograph.shadow.compare import Comparison
from choreograph_examples.contracts.orders import OrderPlaced
from choreograph_examples.payments.service import build as payments


def test_a_shadow_has_its_own_name_and_publishes_only_to_shadow_topics() -> None:
    live = payments()
    shadow = shadowed(payments())
    assert shadow.name == f"{live.name}-shadow"
    assert shadow.outputs == live.outputs  # handlers still name the declared topics
    assert shadow.published_as == {t: f"{t}.shadow" for t in live.outputs}
    live_topics = (
        set(live.outputs) | {live.dlq_topic} | {live.changelog_topic(s) for s in live.store_names()}
    )
    writes = {
        a.name for a in derive(shadow) if a.resource_type == "topic" and a.operation == "Write"
    }
    assert writes and not writes & live_topics  # its ACLs grant no write to a live topic
    assert {f"{t}.shadow" for t in live.outputs} <= writes
    assert {a.name for a in derive(shadow) if a.resource_type == "group"} == {shadow.name}


def test_a_shadows_repartition_topics_are_its_own() -> None:
    service = Service("points", ["orders.events"], stores=["points"])
    by_customer = service.group_by(OrderPlaced, key=lambda e: e.customer_id)

    @by_customer.handle
    def add(ctx: Context, event: OrderPlaced) -> None:
        ctx.store("points").put(ctx.key, 1)

    shadow = shadowed(service)
    [internal] = shadow.rekeyed
    assert internal == "points.orderplaced-by-key.repartition.shadow"
    assert internal in shadow.inputs and internal in shadow.outputs
    assert shadow.rekeyed[internal].topic == internal
    assert internal not in shadow.published_as  # read back by the shadow itself, as named


def test_keys_are_compared_once_settled_and_differences_named() -> None:
    comparison = Comparison(ignore={"payment_id"}, settle_s=5)
    paid = "com.acme.payments.PaymentAuthorized"
    comparison.seen("live", "charges", "o-1", paid, {"amount": "10.20", "payment_id": "a"}, 0)
    comparison.seen("shadow", "charges", "o-1", paid, {"amount": "10.20", "payment_id": "b"}, 1)
    comparison.seen("live", "charges", "o-2", paid, {"amount": "183.60", "payment_id": "c"}, 0)
    comparison.seen("shadow", "charges", "o-2", paid, {"amount": "185.40", "payment_id": "d"}, 2)
    comparison.seen("live", "charges", "o-3", paid, {"amount": "1.00", "payment_id": "e"}, 0)
    assert comparison.settle(4) == []  # nothing settled yet
    [missing] = comparison.settle(6.5)  # o-1 (ids ignored: the same) and o-3 settled
    assert (missing.key, missing.kind) == ("o-3", "only-live")
    assert comparison.compared == 2 and comparison.same == 1 and "o-2" in comparison.pending
    [fields] = comparison.settle(7.5)
    assert (fields.key, fields.kind) == ("o-2", "fields")
    assert fields.detail == "PaymentAuthorized.amount: live '183.60', shadow '185.40'"
    assert comparison.differing == {"o-2", "o-3"} and not comparison.pending
