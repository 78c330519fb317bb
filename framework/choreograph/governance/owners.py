"""Owners of every governed file, and the CODEOWNERS file written from them.

Every process definition names its owners (business and technical), every schema domain has
owners in `schemas/avro/schemas.yaml`, every policy names its owners. CODEOWNERS is generated from
those, so a change to a contract, a process or a policy needs its owners' review, and the contract
gate fails when the file no longer says what the owners say."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from choreograph.contracts.catalog import Catalog
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.governance.policies import PolicyError, parse_policy
from choreograph.process.definition import DefinitionError, load_definitions

HEADER = (
    "# Written by `choreograph governance codeowners` from the owners named in processes/,\n"
    "# schemas/avro/schemas.yaml (domains) and policies/. Do not edit: change the owners there.\n"
)


@dataclass(frozen=True)
class Layout:
    """Where the governed files are, relative to the repository root."""

    processes: str = "processes"
    schemas: str = "schemas/avro"
    policies: str = "policies"


def handle(owner: str, org: str) -> str:
    """A team name as CODEOWNERS wants it: @org/team (names already starting with @ are kept)."""
    return owner if owner.startswith("@") else f"@{org}/{owner}"


def owned(
    root: Path, catalog: Catalog, layout: Layout
) -> tuple[dict[str, list[str]], list[Diagnostic]]:
    """Path pattern -> owners, and a finding for everything governed that has none."""
    rules: dict[str, list[str]] = {}
    missing: list[Diagnostic] = []
    folders: dict[str, set[str]] = {}  # domain -> folders holding its files (links followed)
    for c in catalog.contracts.values():
        folders.setdefault(c.domain, {f"{layout.schemas}/{c.domain}"}).add(str(Path(c.path).parent))
    for domain in sorted(folders):
        owners = catalog.policy.domain_owners.get(domain)
        if owners:
            for folder in folders[domain]:
                rules[f"/{folder}/"] = list(owners)
        else:
            missing.append(Diagnostic(
                f"{layout.schemas}/schemas.yaml", 1, 1, "domain-owners", "error",
                f"schema domain {domain} has no owners",
                f"add to schemas.yaml: domains: {{{domain}: {{owners: [<team>]}}}}",
            ))  # fmt: skip
    processes = root / layout.processes
    if processes.is_dir():
        loaded, _ = load_definitions(processes, root)
        for item in loaded:
            d = item.definition
            rules[f"/{item.path}"] = list(dict.fromkeys([d.owners.technical, d.owners.business]))
    policies = root / layout.policies
    for file in sorted(policies.rglob("*.yaml")) if policies.is_dir() else []:
        label = str(file.relative_to(root))
        try:
            source = parse_policy(file.read_text(), label)
        except (PolicyError, DefinitionError):
            continue  # `policies lint` reports it
        if source.owners:
            rules[f"/{label}"] = list(source.owners)
        else:
            unowned = f"{source.id} names no owners"
            fix = "add owners: [<team>]"
            missing.append(Diagnostic(label, 1, 1, "policy-owners", "error", unowned, fix))
    return rules, missing


def codeowners(rules: dict[str, list[str]], org: str) -> str:
    lines = [f"{pattern} {' '.join(handle(o, org) for o in owners)}"
             for pattern, owners in sorted(rules.items())]  # fmt: skip
    return HEADER + "\n".join(lines) + "\n"
