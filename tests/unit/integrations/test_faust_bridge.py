"""The Faust bridge's codec and envelope reading (the send path runs in the demo on Kafka)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from choreograph import AvroSerde, Envelope, EnvelopeError, SerdeError
from choreograph.integrations.faust import AvroCodec, FaustBridge
from examples.contracts.inventory import StockReserved
from examples.shipping.app import tracking_code


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
