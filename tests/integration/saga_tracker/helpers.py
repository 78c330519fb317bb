"""Shared by the tracker's integration tests: read a topic, ask Alertmanager, wait."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from choreograph.contracts.envelope import Envelope
from choreograph.contracts.serde import AvroSerde
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from tests.kafka_helpers import committed_consumer


def collect(
    bootstrap: str,
    registry: str,
    topic: str,
    correlations: set[str],
    seconds: float,
    until: Callable[[list[tuple[Envelope, Any]]], bool] | None = None,
) -> list[tuple[Envelope, Any]]:
    """Records of `topic` (read_committed) that belong to `correlations`, for up to `seconds`
    or until `until` says enough."""
    consumer = committed_consumer(bootstrap, topic)
    serde = AvroSerde(registry)
    found: list[tuple[Envelope, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until(found)):
        msg = consumer.poll(0.3)
        if msg is None or msg.error() is not None:
            continue
        envelope = Envelope.from_headers(msg.headers())
        if envelope.correlation_id in correlations:
            found.append((envelope, serde.deserialize(msg.value()).event))
    consumer.close()
    return found


def alerts(alertmanager_url: str, incident_id: str, active: bool) -> list[dict[str, Any]]:
    query = f"filter=incident_id%3D%22{urllib.parse.quote(incident_id, safe='')}%22"
    flags = (
        "&active=true&silenced=false&inhibited=false&unprocessed=true"
        if active
        else "&active=false"
    )
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/alerts?{query}{flags}") as reply:
        result: list[dict[str, Any]] = json.load(reply)
        return result


def wait_for(predicate: Callable[[], Any], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def order_placed(order_id: str, total: str) -> OrderPlaced:
    """A one-line order of `total`, placed now."""
    return OrderPlaced(
        order_id=order_id,
        customer_id="c",
        customer_email="e@x",
        total=Decimal(total),
        lines=[OrderLine(sku="s", quantity=1)],
        placed_at=datetime.now(UTC),
    )
