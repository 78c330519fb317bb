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

A record the codec cannot read (bytes that are not the wire format, a schema id the registry
does not know) goes to the dead-letter topic `<source>.dlq` with the platform's `dlq_*` headers,
so `choreograph dlq inspect|replay` work on it, and the agent carries on. Faust's own default is
to raise into the agent, which stops it for good while the worker looks alive.

Needs the `faust` extra (faust-streaming).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.types import AppT, EventT, Message, TopicT

from choreograph.contracts.envelope import Envelope, EnvelopeError, record_key
from choreograph.contracts.event import Event
from choreograph.contracts.publisher import encode_event
from choreograph.contracts.serde import AvroSerde, MislabelledRecord, SerdeError
from choreograph.runtime.dlq import dead_letter_headers

log = logging.getLogger("choreograph.faust")


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


class DeadLetteringTopic(faust.Topic):
    """A Faust topic that sends the records it cannot decode to `dead_letters` and goes on.

    Faust acknowledges such a record before it calls these hooks, so it is written to the
    dead-letter topic (and waited for) before the agent moves past it."""

    def __init__(self, *args: Any, dead_letters: str, service: str, **kwargs: Any) -> None:
        self.dead_letters = dead_letters
        self.service = service
        self._declared = False
        super().__init__(*args, **kwargs)

    def _clone_args(self) -> Mapping[str, Any]:  # the agent iterates over a clone
        return {**super()._clone_args(), "dead_letters": self.dead_letters, "service": self.service}

    async def on_key_decode_error(self, exc: Exception, message: Message) -> None:
        await self._dead_letter(exc, message)

    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        await self._dead_letter(exc, message)

    async def _dead_letter(self, exc: Exception, message: Message) -> None:
        if not self._declared:
            await self.app.topic(self.dead_letters).maybe_declare()
            self._declared = True
        await dead_letter(self.app, self.dead_letters, self.service, exc, message)


async def dead_letter(
    app: AppT, dead_letters: str, service: str, exc: BaseException, message: Message
) -> None:
    """Write a consumed record to `dead_letters` with the reason, as platform services do."""
    error = exc.__cause__ or exc  # Faust wraps the codec's SerdeError
    headers = dead_letter_headers(
        _header_list(message.headers),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        service=service,
        reason="contract",
        error=error,
        attempts=1,
    )
    await app.producer.send_and_wait(
        dead_letters,
        message.key,
        message.value,
        partition=None,
        timestamp=None,
        headers=_as_bytes(headers),
    )
    log.warning(
        "dead-lettered %s[%d]@%d to %s: %s",
        message.topic,
        message.partition,
        message.offset,
        dead_letters,
        error,
    )


class FaustBridge:
    def __init__(self, serde: AvroSerde, source: str) -> None:
        self.serde = serde
        self.source = source

    @property
    def dead_letters(self) -> str:
        """Where records the app cannot read go: `<source>.dlq`, as for platform services."""
        return f"{self.source}.dlq"

    def topic(self, app: AppT, name: str, reader: type[Event] | None = None) -> TopicT:
        """A Faust topic with UTF-8 business keys and contract values; records it cannot read
        are dead-lettered instead of stopping the agent."""
        return DeadLetteringTopic(
            app,
            topics=[name],
            key_serializer="raw",
            value_serializer=AvroCodec(self.serde, name, reader),
            dead_letters=self.dead_letters,
            service=self.source,
        )

    async def admit(self, app: AppT, event: EventT[Any]) -> Envelope | None:
        """The envelope of a consumed event, when the record is what it claims: a valid
        envelope, a text key, and a body written as the type `ce_type` names. Otherwise the
        record is dead-lettered and None returned, so the agent never acts on it."""
        try:
            envelope = self.envelope(event)
            record_key(event.key if isinstance(event.key, bytes) else str(event.key).encode())
            value = event.value
            if isinstance(value, Event) and value.__avro_name__ != envelope.type:
                raise MislabelledRecord(envelope.type, value.__avro_name__)
        except (EnvelopeError, SerdeError) as error:
            await app.topic(self.dead_letters).maybe_declare()
            await dead_letter(app, self.dead_letters, self.source, error, event.message)
            return None
        return envelope

    @staticmethod
    def envelope(event: EventT[Any]) -> Envelope:
        """The envelope of a consumed Faust event (raises EnvelopeError without one)."""
        key = event.key
        text = key.decode(errors="replace") if isinstance(key, bytes) else str(key or "")
        return Envelope.from_headers(list((event.headers or {}).items()), text)

    @staticmethod
    def key(event: EventT[Any]) -> str:
        key = event.key
        return key.decode() if isinstance(key, bytes) else str(key)

    async def send(
        self, topic: TopicT, event: Event, key: str, *, parent: Envelope | None = None
    ) -> Envelope:
        """Send `event` keyed by its business key with the envelope; returns the envelope once
        the broker has acknowledged the record, so the agent acknowledges its event after.

        A transient broker fault is a pause: the same record is sent again until acknowledged."""
        _, value, envelope = encode_event(
            self.serde, event, key, self.source, topic=topic.get_topic_name(), parent=parent
        )
        headers = _as_bytes(envelope.to_headers())
        delay = _FIRST_RETRY_S
        while True:
            try:
                # `force`: sent now and awaited here. An attached send (Faust's default inside
                # an agent) is waited for at commit with `asyncio.wait`, which drops its error:
                # the offset is committed and the event is lost.
                pending = await topic.send(
                    key=key.encode(), value=value, value_serializer="raw", headers=headers,
                    force=True,
                )  # fmt: skip
                await pending
                return envelope
            except KafkaError as error:
                if not _transient(error):
                    raise
                log.warning(
                    "%s to %s not acknowledged (%r); sending it again in %.1f s",
                    envelope.type, topic.get_topic_name(), error, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LAST_RETRY_S)


_FIRST_RETRY_S, _LAST_RETRY_S = 0.2, 5.0


def _transient(error: KafkaError) -> bool:
    """A broker that is away or has moved a leader: a pause, sent again with the same envelope
    (same event id, so readers that deduplicate see one event). A record the broker refuses
    (too large, not authorised) is not transient and raises into the agent."""
    return bool(error.retriable) or isinstance(error, KafkaTimeoutError)


def _header_list(headers: Any) -> list[tuple[str, str | bytes | None]]:
    items = headers.items() if isinstance(headers, Mapping) else headers or []
    return [(str(k), v) for k, v in items]


def _as_bytes(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes]]:
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in headers]
