"""The Faust bridge: codec, envelope reading, and a send that waits for the broker."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from choreograph import AvroSerde, Envelope, EnvelopeError, SerdeError
from choreograph.integrations.faust import AvroCodec, FaustBridge
from choreograph_examples.contracts.inventory import StockReserved
from choreograph_examples.shipping.app import tracking_code


def serde() -> AvroSerde:
    client = SchemaRegistryClient.new_client({"url": f"mock://bridge-{uuid.uuid4().hex}"})
    return AvroSerde(client, models=[StockReserved], auto_register=True)


def test_codec_round_trips_contract_events_in_wire_format() -> None:
    codec = AvroCodec(serde(), "inventory.events")
    event = StockReserved(order_id="o-1", warehouse="dc")
    data = codec.dumps(event)
    assert data[0] == 0  # Confluent wire format: magic byte, then the schema id
    assert codec.loads(data) == event


def test_codec_refuses_what_is_not_a_contract_and_bytes_it_cannot_read() -> None:
    codec = AvroCodec(serde(), "inventory.events")
    with pytest.raises(TypeError, match="not a contract event"):
        codec.dumps({"order_id": "o-1"})
    with pytest.raises(SerdeError):
        codec.loads(b"plain json")


def test_envelope_and_key_come_from_the_faust_event() -> None:
    sent = Envelope.new("com.acme.inventory.StockReserved", "inventory", "o-1")
    headers = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in sent.to_headers()}
    event = SimpleNamespace(headers=headers, key=b"o-1")
    got = FaustBridge.envelope(event)  # type: ignore[arg-type]
    assert (got.id, got.correlation_id, got.type) == (sent.id, sent.correlation_id, sent.type)
    assert FaustBridge.key(event) == "o-1"  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError):
        FaustBridge.envelope(SimpleNamespace(headers={}, key=b"x"))  # type: ignore[arg-type]


def test_tracking_codes_are_stable_per_order() -> None:
    assert tracking_code("o-1") == tracking_code("o-1") != tracking_code("o-2")


class FlakyTopic:
    """A topic whose first `failures` sends are refused by the broker after they were queued."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.sent: list[dict[str, object]] = []

    def get_topic_name(self) -> str:
        return "shipping.events"

    async def send(self, **kwargs: object) -> asyncio.Future[object]:
        self.sent.append(kwargs)
        delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.failures:
            delivery.set_exception(self.failures.pop(0))
        else:
            delivery.set_result("acknowledged")
        return delivery


def test_send_waits_for_the_acknowledgement_and_sends_the_same_record_again_after_a_fault() -> None:
    from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

    topic = FlakyTopic([NotLeaderForPartitionError(), KafkaTimeoutError()])
    bridge = FaustBridge(serde(), source="shipping")
    event = StockReserved(order_id="o-1", warehouse="dc")
    envelope = asyncio.run(bridge.send(topic, event, "o-1"))  # type: ignore[arg-type]
    assert len(topic.sent) == 3
    assert all(sent["force"] is True for sent in topic.sent)  # sent now, not attached
    assert len({str(sent["headers"]) for sent in topic.sent}) == 1  # same event id each time
    assert (envelope.id.encode()) in dict(topic.sent[0]["headers"]).values()  # type: ignore[call-overload]


def test_a_record_the_broker_refuses_raises_into_the_agent() -> None:
    from aiokafka.errors import MessageSizeTooLargeError

    topic = FlakyTopic([MessageSizeTooLargeError()])
    bridge = FaustBridge(serde(), source="shipping")
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(bridge.send(topic, StockReserved(order_id="o", warehouse="d"), "o"))  # type: ignore[arg-type]
    assert len(topic.sent) == 1
