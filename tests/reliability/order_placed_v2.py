"""`OrderPlaced` at its next compatible version: an optional gift note (null by default), bound
as `choreograph schemas codegen` binds a contract. What the shop moves to mid-run, and what the
consumers regenerate to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from choreograph.contracts.catalog import Policy, parse_contract
from choreograph.contracts.codegen import bind_models

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "schemas/avro/orders/OrderPlaced.avsc"
GIFT_NOTE = {"name": "gift_note", "type": ["null", "string"], "default": None,
             "doc": "A note to print on the delivery slip."}  # fmt: skip


def schema() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(SOURCE.read_text())
    found["fields"] = [*found["fields"], GIFT_NOTE]
    return found


_contract = parse_contract(json.dumps(schema()), "OrderPlaced.avsc", "orders", Policy())
OrderPlacedV2: Any = bind_models([_contract], "order_placed_v2_models")[
    "com.acme.orders.OrderPlaced"
]
