"""The contract catalog: `.avsc` files under schemas/avro/<domain>/ and the policy in schemas.yaml.

The files are the source of truth. Each record is published to one topic (by default
`<domain>.events`), so each has one registry subject, `<topic>-<full name>`
(TopicRecordNameStrategy), and one compatibility mode (by default FULL_TRANSITIVE).
Each .avsc is self-contained: shared types are inlined, so every file registers on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from choreograph.contracts.avro_model import Record, SchemaError, parse_schema
from choreograph.contracts.compatibility import Finding, Mode
from choreograph.contracts.diagnostics import LocatedError
from choreograph.contracts.json_positions import locate, value_positions

POLICY_FILE = "schemas.yaml"
DEFAULT_MODE = Mode.FULL_TRANSITIVE


class ContractError(LocatedError):
    """A contract or policy file cannot be read; says where."""


@dataclass(frozen=True)
class AllowedBreak:
    """A breaking change accepted on purpose, with the reason on record."""

    record: str
    rule: str
    reason: str
    path: str | None = None

    def covers(self, record: str, finding: Finding) -> bool:
        if record != self.record or finding.problem.rule != self.rule:
            return False
        return self.path is None or finding.path_in_new.startswith(self.path)


@dataclass(frozen=True)
class RecordPolicy:
    topic: str | None = None
    compatibility: Mode | None = None


@dataclass
class Policy:
    default_compatibility: Mode = DEFAULT_MODE
    records: dict[str, RecordPolicy] = field(default_factory=dict)
    allowed_breaks: list[AllowedBreak] = field(default_factory=list)
    pii_field_patterns: tuple[str, ...] = (
        "email",
        "phone",
        "name",
        "address",
        "birth",
        "ssn",
        "iban",
        "card",
        "passport",
        "ip_address",
    )
    domain_owners: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folder -> teams

    def allowed(self, record: str, finding: Finding) -> AllowedBreak | None:
        return next((a for a in self.allowed_breaks if a.covers(record, finding)), None)


@dataclass
class Contract:
    """One record schema as it stands in one .avsc file."""

    path: str
    domain: str
    text: str
    raw: dict[str, Any]
    schema: Record
    positions: dict[str, tuple[int, int]]
    topic: str
    compatibility: Mode

    @property
    def fullname(self) -> str:
        return self.schema.fullname

    @property
    def subject(self) -> str:
        return f"{self.topic}-{self.fullname}"

    @property
    def canonical(self) -> str:
        """Compact JSON of the schema as written, the text sent to the registry."""
        return json.dumps(self.raw, separators=(",", ":"))

    def where(self, pointer: str) -> tuple[int, int]:
        """Line and column of `pointer`; of its "name" when it is a field or named type."""
        base = "" if pointer == "/" else pointer
        if f"{base}/name" in self.positions:
            return self.positions[f"{base}/name"]
        return locate(self.positions, pointer)


def _mode(value: Any, where: str) -> Mode:
    try:
        return Mode(str(value).upper())
    except ValueError:
        names = ", ".join(m.value for m in Mode)
        raise ContractError(
            where, 1, 1, f"unknown compatibility {value!r}; use one of {names}"
        ) from None


def load_policy(path: Path) -> Policy:
    if not path.exists():
        return Policy()
    label = str(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ContractError(label, line, col, f"invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ContractError(label, 1, 1, "schemas.yaml must be a mapping")
    policy = Policy(
        default_compatibility=_mode(data.get("default_compatibility", DEFAULT_MODE), label)
    )
    for name, spec in (data.get("records") or {}).items():
        spec = spec or {}
        mode = spec.get("compatibility")
        policy.records[name] = RecordPolicy(spec.get("topic"), _mode(mode, label) if mode else None)
    for i, spec in enumerate(data.get("allowed_breaks") or []):
        missing = [k for k in ("record", "rule", "reason") if not (spec or {}).get(k)]
        if missing:
            raise ContractError(label, 1, 1, f"allowed_breaks[{i}] needs {', '.join(missing)}")
        policy.allowed_breaks.append(
            AllowedBreak(spec["record"], spec["rule"], spec["reason"], spec.get("path"))
        )
    if "pii_field_patterns" in data:
        policy.pii_field_patterns = tuple(data["pii_field_patterns"])
    for domain, spec in (data.get("domains") or {}).items():
        owners = (spec or {}).get("owners") or []
        if not isinstance(owners, list) or not all(isinstance(o, str) and o for o in owners):
            raise ContractError(label, 1, 1, f"domains.{domain}.owners is a list of team names")
        policy.domain_owners[str(domain)] = tuple(owners)
    return policy


def parse_contract(text: str, path: str, domain: str, policy: Policy) -> Contract:
    """Parse one .avsc text; raise ContractError pointing at the problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ContractError(path, err.lineno, err.colno, f"invalid JSON: {err.msg}") from None
    positions = value_positions(text)
    try:
        schema = parse_schema(raw)
    except SchemaError as err:
        line, col = locate(positions, err.path)
        raise ContractError(path, line, col, err.message) from None
    if not isinstance(schema, Record):
        raise ContractError(path, 1, 1, "a contract file must hold one record schema")
    rp = policy.records.get(schema.fullname, RecordPolicy())
    return Contract(
        path,
        domain,
        text,
        raw,
        schema,
        positions,
        rp.topic or f"{domain}.events",
        rp.compatibility or policy.default_compatibility,
    )


@dataclass
class Catalog:
    root: Path
    policy: Policy
    contracts: dict[str, Contract] = field(default_factory=dict)
    errors: list[ContractError] = field(default_factory=list)

    def by_path(self, path: str) -> Contract | None:
        return next((c for c in self.contracts.values() if c.path == path), None)

    def get(self, fullname: str) -> Contract:
        try:
            return self.contracts[fullname]
        except KeyError:
            raise KeyError(f"no contract named {fullname} under {self.root}") from None


def contract_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.avsc") if p.is_file())


def load_catalog(root: Path, display_base: Path | None = None) -> Catalog:
    """Load every contract under `root`; unreadable files are collected in `errors`, not raised."""
    policy = load_policy(root / POLICY_FILE)
    catalog = Catalog(root, policy)
    base = display_base or Path.cwd()
    for file in contract_files(root):
        label = _display(file, base)
        try:
            contract = parse_contract(file.read_text(), label, file.parent.name, policy)
        except ContractError as err:
            catalog.errors.append(err)
            continue
        twin = catalog.contracts.get(contract.fullname)
        if twin:
            catalog.errors.append(
                ContractError(label, 1, 1, f"{contract.fullname} is also defined in {twin.path}")
            )
            continue
        catalog.contracts[contract.fullname] = contract
    return catalog


def with_others(catalog: Catalog, others: Catalog) -> Catalog:
    """`catalog` (and its policy) with the contracts of `others` beside its own: a repository's
    contracts and those it pulled from other teams. A record in both is an error in `others`."""
    merged = Catalog(catalog.root, catalog.policy, dict(catalog.contracts), list(catalog.errors))
    merged.errors += others.errors
    for name, contract in others.contracts.items():
        twin = merged.contracts.get(name)
        if twin is not None:
            merged.errors.append(
                ContractError(contract.path, 1, 1, f"{name} is also defined in {twin.path}")
            )
            continue
        merged.contracts[name] = contract
    return merged


def _display(file: Path, base: Path) -> str:
    try:
        return str(file.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(file)
