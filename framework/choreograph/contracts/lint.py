"""Policy lint for contracts: what the compatibility rules cannot see but reviewers care about.

Rules: every record, enum and field documented; namespace ends with the domain folder; file named
after its record; PascalCase type names, snake_case fields, UPPER_SNAKE enum symbols; fields whose
names look personal carry a boolean `pii` tag; enums have a default so new symbols stay readable.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from choreograph.contracts.avro_model import Enum, Field, Named, Record, named_types
from choreograph.contracts.catalog import Contract, Policy
from choreograph.contracts.diagnostics import Diagnostic

PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


class _Linter:
    def __init__(self, contract: Contract, policy: Policy) -> None:
        self.contract = contract
        self.policy = policy
        self.found: list[Diagnostic] = []

    def add(self, pointer: str, rule: str, message: str, fix: str, severity: str = "error") -> None:
        line, col = self.contract.where(pointer)
        self.found.append(Diagnostic(self.contract.path, line, col, rule, severity, message, fix))

    def run(self) -> list[Diagnostic]:
        top, domain = self.contract.schema, self.contract.domain
        if top.namespace.rsplit(".", 1)[-1] != domain:
            self.add(
                "/namespace",
                "namespace-folder",
                f"namespace {top.namespace or '(none)'} does not end with the folder name {domain}",
                f"set the namespace to <org>.{domain} or move the file",
            )
        file = PurePath(self.contract.path)
        if file.stem != top.name:
            self.add(
                "/name",
                "file-name",
                f"file is named {file.name}, record is {top.name}",
                f"rename the file to {top.name}.avsc",
            )
        for named in named_types(top):
            self.named(named)
            if isinstance(named, Record):
                for field in named.fields:
                    self.field(named, field)
        return self.found

    def named(self, named: Named) -> None:
        kind = type(named).__name__.lower()
        if not named.doc:
            self.add(
                named.path,
                "doc-missing",
                f"{kind} {named.fullname} has no doc",
                'add "doc": "<what it is>"',
            )
        if not PASCAL.match(named.name):
            self.add(
                named.path,
                "type-name-case",
                f"{kind} name {named.name} is not PascalCase",
                f'rename it in PascalCase and keep "aliases": ["{named.fullname}"]',
            )
        if isinstance(named, Enum):
            for symbol in named.symbols:
                if not UPPER_SNAKE.match(symbol):
                    self.add(
                        named.path,
                        "enum-symbol-case",
                        f"enum symbol {symbol} is not UPPER_SNAKE_CASE",
                        "use UPPER_SNAKE_CASE symbols",
                    )
            if named.default is None:
                self.add(
                    named.path,
                    "enum-default-missing",
                    f"enum {named.fullname} has no default: adding a symbol later breaks "
                    "consumers still on the old schema",
                    'add "default": "<fallback symbol>" (e.g. UNKNOWN or OTHER)',
                    severity="warning",
                )

    def field(self, record: Record, field: Field) -> None:
        if not field.doc:
            self.add(
                field.path,
                "doc-missing",
                f"field {record.name}.{field.name} has no doc",
                'add "doc": "<what it means and why it exists>"',
            )
        if not SNAKE.match(field.name):
            self.add(
                field.path,
                "field-name-case",
                f"field {field.name} is not snake_case",
                'rename it in snake_case and keep the old name in "aliases"',
            )
        tag = field.attrs.get("pii")
        if tag is not None and not isinstance(tag, bool):
            self.add(
                field.path,
                "pii-tag-invalid",
                f"field {field.name}: pii must be true or false",
                '"pii": true (personal data) or "pii": false (looks personal, is not)',
            )
        elif tag is None and any(p in field.name.lower() for p in self.policy.pii_field_patterns):
            self.add(
                field.path,
                "pii-untagged",
                f"field {field.name} looks like personal data and is not tagged",
                'add "pii": true, or "pii": false if it is not personal data',
            )


def lint_contract(contract: Contract, policy: Policy) -> list[Diagnostic]:
    return _Linter(contract, policy).run()
