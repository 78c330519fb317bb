"""The tally workload shared by benchmarks and reliability tests.

Avro `Tick` in, a per-key count and total in a RocksDB store, Avro `Tallied` out: the smallest
stateful workload that still proves exactly-once (one output per input id, gap-free counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from choreograph.contracts.catalog import Policy, parse_contract
from choreograph.contracts.codegen import bind_models
from choreograph.contracts.event import Event

HERE = Path(__file__).parent
_contracts = [
    parse_contract((HERE / f"{name}.avsc").read_text(), f"{name}.avsc", "workload", Policy())
    for name in ("Tick", "Tallied")
]
_models = bind_models(_contracts, "bench_workload_models")
Tick: Any = _models["bench.workload.Tick"]
Tallied: Any = _models["bench.workload.Tallied"]
MODELS: list[type[Event]] = [Tick, Tallied]


def topics(prefix: str) -> tuple[str, str]:
    """Input and output topic of a run."""
    return f"{prefix}.ticks", f"{prefix}.tallies"
