"""`replay publish` into a sandbox on the real broker: each record once, however often it runs,
with fresh correlation ids on request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from choreograph.contracts.envelope import Envelope
from choreograph.replay.capture import Capture, CapturedRecord
from choreograph.replay.sandbox import REPLAY_OF, publish
from choreograph.replay.source import read_topics

pytestmark = pytest.mark.integration


def test_publishing_twice_writes_each_record_once(bootstrap_servers: str) -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    records = []
    for n in range(6):
        env = Envelope.new("com.acme.orders.OrderPlaced", "shop", f"o-{n}",
                           correlation_id=f"p-{n % 2}", now=at)  # fmt: skip
        headers = [
            (k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in env.to_headers()
        ]
        records.append(
            CapturedRecord(
                "orders.events",
                n % 2,
                n,
                1_700_000_000_000 + n,
                f"o-{n}".encode(),
                b"\x00body",
                headers,
            )
        )  # type: ignore[arg-type]
    capture = Capture(records, {}, masked=True)
    prefix = f"sandbox-{uuid.uuid4().hex[:6]}."
    assert publish(capture, bootstrap_servers, prefix, fresh_ids=True) == (6, 0)
    assert publish(capture, bootstrap_servers, prefix, fresh_ids=True) == (0, 6)
    written = list(read_topics(bootstrap_servers, [prefix + "orders.events"]))
    assert len(written) == 6
    assert {r.header(REPLAY_OF) for r in written} == {
        f"orders.events:{n % 2}:{n}" for n in range(6)
    }
    fresh = {r.header("ce_correlationid") for r in written}
    assert len(fresh) == 2 and not fresh & {"p-0", "p-1"}  # two instances, new ids
    assert {r.partition for r in written} == {0, 1}  # each record in its recorded partition
