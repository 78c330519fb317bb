"""Join the platform from an existing Faust app: the same contracts, wire format and envelope.

A Faust team keeps its app, agents and tables. It swaps its topic serializers for `AvroCodec`
(Confluent wire format through the schema registry, into the generated contract models) and sends
with `FaustBridge.send`, which adds the CloudEvents headers the saga tracker correlates on,
following the event in hand (same correlation id, causation = its id, same trace)::

    bridge = FaustBridge(AvroSerde(registry_url, models=[StockReserved]), source="shipping")
    reserved = bridge.topic(app, "inventory.events")
    dispatched = bridge.topic(app, "shipping.events")

    @app.agent(reserved)
    async def ship(stream):
        async for event in stream.events():
            if isinstance(event.value, StockReserved):
                parent = bridge.envelope(event)
                await bridge.send(dispatched, ShipmentDispatched(...), key, parent=parent)

Needs the `faust` extra (faust-streaming).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AppT, EventT, TopicT

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.event import Event
from choreograph.contracts.publisher import encode_event
from choreograph.contracts.serde import AvroSerde


class AvroCodec(faust.Codec):
    """Values of one topic: decoded into the generated model of the writer's record (or `reader`,
    or a plain dict when no model is known); encoded from a generated model. Bad bytes raise
    `SerdeError`, so Faust's own error handling sees them."""

    def __init__(self, serde: AvroSerde, topic: str, reader: type[Event] | None = None) -> None:
        self.serde = serde
        self.topic_name = topic
        self.reader = reader
        super().__init__()

    def _loads(self, s: bytes) -> Any:
        return self.serde.deserialize(s, self.reader).event

    def _dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, Event):
            raise TypeError(f"{type(obj).__name__} is not a contract event; send a generated model")
        return self.serde.serialize(obj, self.topic_name)


class FaustBridge:
    def __init__(self, serde: AvroSerde, source: str) -> None:
        self.serde = serde
        self.source = source

    def topic(self, app: AppT, name: str, reader: type[Event] | None = None) -> TopicT:
        """A Faust topic with UTF-8 business keys and contract values."""
        return app.topic(
            name, key_serializer="raw", value_serializer=AvroCodec(self.serde, name, reader)
        )

    @staticmethod
    def envelope(event: EventT[Any]) -> Envelope:
        """The envelope of a consumed Faust event (raises EnvelopeError without one)."""
        return Envelope.from_headers(list((event.headers or {}).items()))

    @staticmethod
    def key(event: EventT[Any]) -> str:
        key = event.key
        return key.decode() if isinstance(key, bytes) else str(key)

    async def send(
        self, topic: TopicT, event: Event, key: str, *, parent: Envelope | None = None
    ) -> Envelope:
        """Send `event` keyed by its business key with the envelope; returns the envelope."""
        _, value, envelope = encode_event(
            self.serde, event, key, self.source, topic=topic.get_topic_name(), parent=parent
        )
        headers = _as_bytes(envelope.to_headers())
        await topic.send(key=key.encode(), value=value, value_serializer="raw", headers=headers)
        return envelope


def _as_bytes(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes]]:
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in headers]
