"""The framework's own contracts (decision records, approvals), as models.

Their .avsc files live in this package, so an installed framework has them; the repository's
contract catalog links to the same files, so the registry, the compatibility gate and codegen
see exactly what the framework writes."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

from choreograph.contracts.catalog import Policy as CatalogPolicy
from choreograph.contracts.catalog import parse_contract
from choreograph.contracts.codegen import bind_models
from choreograph.contracts.event import Event

CONTRACTS = Path(__file__).parent / "contracts"
DECISIONS_TOPIC = "choreograph.decisions"
# Requests and decisions share a topic, keyed by the instance that waits: the decision reaches
# the partition that asked.
APPROVALS_TOPIC = "choreograph.approvals"
TOPICS = {
    "dev.choreograph.DecisionRecord": DECISIONS_TOPIC,
    "dev.choreograph.ApprovalRequested": APPROVALS_TOPIC,
    "dev.choreograph.ApprovalDecided": APPROVALS_TOPIC,
}


@cache
def governance_models() -> dict[str, type[Event]]:
    contracts = []
    for file in sorted(CONTRACTS.glob("*.avsc")):
        contract = parse_contract(file.read_text(), str(file), "choreograph", CatalogPolicy())
        contracts.append(dataclasses.replace(contract, topic=TOPICS[contract.fullname]))
    return bind_models(contracts, "choreograph_governance_models")


def model(fullname: str) -> type[Event]:
    return governance_models()[fullname]
