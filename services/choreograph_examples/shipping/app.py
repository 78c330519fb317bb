"""The shipping team's Faust app. It was a Faust app before the platform and stays one: the only
changes are the topic codecs and the send (`choreograph.integrations.faust`), so its events are
contract-checked Avro with the envelope the saga tracker follows.

It dispatches a parcel for every order whose stock is reserved, at most once per order (a Faust
table remembers which orders it has shipped)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import faust

from choreograph.contracts.serde import AvroSerde
from choreograph.integrations.faust import FaustBridge
from choreograph_examples.contracts.inventory import StockReserved
from choreograph_examples.contracts.shipping import ShipmentDispatched


def tracking_code(order_id: str) -> str:
    return "TRK-" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()


def create_app(
    bootstrap: str,
    registry_url: str,
    data_dir: str,
    partitions: int,
    name: str = "shipping",
    inbound: str = "inventory.events",
    outbound: str = "shipping.events",
) -> faust.App:
    """`partitions`: those of `inbound`, which the `shipped` table must match."""
    app = faust.App(
        name,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=data_dir,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=partitions,
    )
    bridge = FaustBridge(AvroSerde(registry_url, models=[StockReserved]), source=name)
    reserved = bridge.topic(app, inbound)
    dispatched = bridge.topic(app, outbound)
    shipped = app.Table("shipped", default=bool)
    # Written once the table is recovered and the streams resume: the fleet places orders only
    # then. A record fetched while Faust recovers can be dropped from its queues without being
    # acknowledged (faust-streaming issue 596): it comes again only after a restart.
    ready = Path(data_dir) / "ready"
    ready.unlink(missing_ok=True)

    @app.on_rebalance_complete.connect
    async def recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()

    @app.agent(reserved)
    async def ship(stream: Any) -> None:
        async for event in stream.events():
            if not isinstance(event.value, StockReserved):
                continue  # other inventory events are not shipping's business
            envelope = await bridge.admit(app, event)
            if envelope is None:
                continue  # not what it claims: dead-lettered
            key = bridge.key(event)
            if shipped[key]:
                continue
            parcel = ShipmentDispatched(
                order_id=key, tracking_code=tracking_code(key), delivery_address="on file"
            )
            await bridge.send(dispatched, parcel, key, parent=envelope)
            shipped[key] = True  # after the send: a crash between the two ships twice, not never

    return app


app = create_app(
    os.environ.get("CHOREOGRAPH_BOOTSTRAP", "127.0.0.1:9092"),
    os.environ.get("CHOREOGRAPH_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
    os.environ.get("CHOREOGRAPH_STATE_DIR", "./state/shipping"),
    int(os.environ.get("CHOREOGRAPH_PARTITIONS", "3")),
)
