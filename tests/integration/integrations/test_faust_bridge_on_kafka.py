"""A Faust app joined through the bridge, on the real broker and registry: records it cannot
read are dead-lettered with the platform's headers and the agent goes on with the next ones."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.publisher import EventPublisher, encode_event
from choreograph.contracts.serde import AvroSerde
from choreograph.runtime.dlq import read_dead_letters, summary
from choreograph_examples.contracts.inventory import StockReserved
from choreograph_examples.contracts.shipping import ShipmentDispatched
from tests.integration.saga_tracker.helpers import collect

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def test_unreadable_records_are_dead_lettered_and_the_agent_goes_on(
    bootstrap_servers: str, registry_url: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    inbound, outbound = new_topic("inventory.events"), new_topic("shipping.events")
    name = f"shipping-{uuid.uuid4().hex[:8]}"
    not_avro = b'{"order_id": "o-json"}'
    unknown_id = b"\x00" + struct.pack(">I", 2_000_000_000) + b"\x02x"  # no such schema id
    raw = Producer({"bootstrap.servers": bootstrap_servers})
    raw.produce(inbound, key=b"o-json", value=not_avro)
    raw.produce(inbound, key=b"o-lost", value=unknown_id)
    raw.flush(10)
    serde = AvroSerde(registry_url, auto_register=True)
    serde.schema_id(outbound, ShipmentDispatched)  # what `choreograph schemas register` does
    publisher = EventPublisher({"bootstrap.servers": bootstrap_servers}, serde, "inv")
    # A StockReserved body under StockReleased headers: shipping must not ship on a lie.
    _, lie_value, _ = encode_event(
        serde, StockReserved(order_id="o-lie", warehouse="dc"), "o-lie", "inv"
    )
    lie = Envelope.new("com.acme.inventory.StockReleased", "inv", "o-lie")
    raw.produce(inbound, key=b"o-lie", value=lie_value, headers=lie.to_headers())
    raw.flush(10)
    reserved = publisher.publish(
        StockReserved(order_id="o-1", warehouse="dc"), "o-1", topic=inbound
    )
    publisher.flush()

    env = {
        **os.environ,
        "CHOREOGRAPH_BOOTSTRAP": bootstrap_servers,
        "CHOREOGRAPH_REGISTRY_URL": registry_url,
        "CHOREOGRAPH_STATE_DIR": str(tmp_path / "faust"),
        "FAUST_NAME": name,
        "FAUST_IN": inbound,
        "FAUST_OUT": outbound,
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.integrations.faust_worker", "worker"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        shipped = collect(
            bootstrap_servers,
            registry_url,
            outbound,
            {reserved.correlation_id},
            seconds=90,
            until=lambda found: len(found) >= 1,
        )
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert [event["order_id"] for _, event in shipped] == ["o-1"], worker_log[-3000:]
    assert shipped[0][0].causation_id == reserved.id  # the bridge follows the event in hand

    letters = [
        (r.key, r.value, summary(r)) for _, r in read_dead_letters(bootstrap_servers, f"{name}.dlq")
    ]
    assert [(key, value) for key, value, _ in letters] == [
        (b"o-json", not_avro),
        (b"o-lost", unknown_id),
        (b"o-lie", lie_value),
    ]  # unchanged, so a replay after the fix sends the same bytes
    for offset, (_, _, letter) in enumerate(letters):
        assert letter["origin_topic"] == inbound and letter["origin_offset"] == str(offset)
        assert letter["reason"] == "contract" and letter["service"] == name
    assert "unknown to the registry" in letters[1][2]["error_message"]
    assert "ce_type says com.acme.inventory.StockReleased" in letters[2][2]["error_message"]
    assert "dead-lettered" in worker_log
