"""`choreograph policies lint`: every policy file compiles and type-checks against the Avro
contract it reads, and names its owners."""

from __future__ import annotations

from pathlib import Path

from choreograph.contracts.catalog import Catalog
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.governance.policies import PolicyError, PolicySource, bind, parse_policy


def _error(err: PolicyError, rule: str, fix: str = "") -> Diagnostic:
    return Diagnostic(err.path, err.line, err.col, rule, "error", err.message, fix)


def lint_policies(root: Path, catalog: Catalog, display: Path | None = None) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    seen: dict[str, PolicySource] = {}
    for file in sorted(root.rglob("*.yaml")):
        label = str(file.relative_to(display)) if display else str(file)
        try:
            source = parse_policy(file.read_text(), label)
        except PolicyError as err:
            found.append(_error(err, "policy-unreadable"))
            continue
        twin = seen.get(source.id)
        if twin is not None:
            found.append(Diagnostic(label, 1, 1, "policy-duplicate", "error",
                                    f"{source.id} is also defined in {twin.path}"))  # fmt: skip
            continue
        seen[source.id] = source
        if not source.owners:
            found.append(Diagnostic(label, 1, 1, "policy-owners", "error",
                                    f"{source.id} names no owners",
                                    "add owners: [<team>]"))  # fmt: skip
        contract = catalog.contracts.get(source.reads)
        if contract is None:
            unknown = f"{source.id} reads {source.reads}, which has no contract in the catalog"
            line, col = source.reads_at
            fix = "name an event type of schemas/avro"
            found.append(Diagnostic(label, line, col, "policy-reads", "error", unknown, fix))
            continue
        try:
            bind(source, contract.raw)
        except PolicyError as err:
            found.append(_error(err, "policy-type"))
    return found
