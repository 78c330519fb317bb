"""A team service of the reference choreography run on regenerated contracts: `OrderPlaced` at
its next compatible version (see order_placed_v2), as the team's code is after `choreograph
schemas codegen` picked that version up. `python -m tests.reliability.regenerated TEAM`."""

from __future__ import annotations

import runpy
import sys

from choreograph_examples.contracts import orders
from tests.reliability.order_placed_v2 import OrderPlacedV2

orders.OrderPlaced = OrderPlacedV2  # what the service module imports from now on
print(f"regenerated: OrderPlaced fields {sorted(OrderPlacedV2.model_fields)}", flush=True)
runpy.run_module(f"choreograph_examples.{sys.argv[1]}", run_name="__main__", alter_sys=True)
