"""Policies as code: compliance rules in versioned files, one place every workflow invokes.

    # policies/payments/card-limit.yaml
    id: payments.card-limit
    version: 2
    description: Card payments above the limit are declined.
    owners: [team-payments]
    reads: com.acme.orders.OrderPlaced
    expression: event.total <= 1000.0

The expression is CEL (Common Expression Language), evaluated with cel-expr-python, the CEL
project's own Python runtime (cel-cpp underneath): it implements the specification's type
checker, so a policy is checked against the Avro contract it `reads` (`event` is that record;
see cel_types for the mapping) and must yield a bool; an unknown field or a wrong type is an
error with file:line:col, in `choreograph policies lint` and at service start-up alike. A
machine guard or a handler names a policy by id; every evaluation lands in a decision record
with the policy's version and the fields it read (PII-tagged values masked).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cel_expr_python.cel as cel
import yaml

from choreograph.contracts.diagnostics import LocatedError
from choreograph.contracts.event import Event
from choreograph.governance.cel_types import ContractTypes, UnsupportedContract, fullname
from choreograph.governance.decisions import RuleEvaluation
from choreograph.replay.capture import mask_value, pii_fields

ID_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$")
_KEYS = {"id", "version", "description", "owners", "reads", "expression"}
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")
_READS = re.compile(r"\bevent((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


class PolicyError(LocatedError):
    """A policy file that cannot be used, with where and what to change."""


@dataclass(frozen=True)
class PolicySource:
    """A policy as written: not yet checked against a contract."""

    id: str
    version: int
    reads: str
    expression: str
    path: str
    line: int  # where the expression starts in the file (1-based)
    col: int
    block: bool  # a block scalar (| or >): the expression's own lines follow `expression:`
    description: str = ""
    owners: tuple[str, ...] = ()
    reads_at: tuple[int, int] = (1, 1)  # where `reads` names the event type

    def where(self, line: int, col: int) -> tuple[int, int]:
        """The file position of a position in the expression."""
        if self.block:
            return self.line + line - 1, self.col + col - 1
        return self.line + line - 1, (self.col + col - 1) if line == 1 else col

    @cached_property
    def fields_read(self) -> tuple[str, ...]:
        """Dotted paths under `event` that the expression names."""
        without_strings = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", self.expression)
        return tuple(sorted({m.group(1)[1:] for m in _READS.finditer(without_strings)}))


def parse_policy(text: str, path: str) -> PolicySource:
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError(path, line, col, f"not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(node, yaml.MappingNode):
        raise PolicyError(path, 1, 1, "a policy is a mapping with id, version, reads, expression")
    marks = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}

    def at(key: str) -> tuple[int, int]:
        found = marks.get(key)
        return (found.start_mark.line + 1, found.start_mark.column + 1) if found else (1, 1)

    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise PolicyError(path, *at(unknown[0]), f"unknown key {unknown[0]!r}; a policy has "
                          f"{', '.join(sorted(_KEYS))}")  # fmt: skip
    for key in ("id", "version", "reads", "expression"):
        if key not in raw:
            raise PolicyError(path, 1, 1, f"missing {key!r}")
    if not isinstance(raw["id"], str) or not ID_RE.match(raw["id"]):
        raise PolicyError(
            path, *at("id"), "id is <domain>.<name>, lower case, e.g. payments.card-limit"
        )
    if (
        not isinstance(raw["version"], int)
        or isinstance(raw["version"], bool)
        or raw["version"] < 1
    ):
        raise PolicyError(path, *at("version"), "version is a whole number from 1")
    if not isinstance(raw["reads"], str):
        raise PolicyError(
            path, *at("reads"), "reads names the event type, e.g. com.acme.orders.OrderPlaced"
        )
    if not isinstance(raw["expression"], str) or not raw["expression"].strip():
        raise PolicyError(path, *at("expression"), "expression is a CEL expression as text")
    owners = raw.get("owners") or []
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise PolicyError(path, *at("owners"), "owners is a list of team names")
    value = marks["expression"]
    block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
    if block:
        lines = text.splitlines()
        first = value.start_mark.line + 1  # the line after `expression: |`
        while first < len(lines) and not lines[first].strip():
            first += 1
        indent = len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
        line, col = first + 1, indent + 1
    else:
        quoted = isinstance(value, yaml.ScalarNode) and value.style in ("'", '"')
        line, col = value.start_mark.line + 1, value.start_mark.column + 1 + (1 if quoted else 0)
    return PolicySource(
        raw["id"], raw["version"], raw["reads"], raw["expression"].strip(), path, line, col,
        block, str(raw.get("description") or ""), tuple(owners), at("reads"),
    )  # fmt: skip


@dataclass
class BoundPolicy:
    """A policy checked against the contract of the event it reads, ready to evaluate."""

    source: PolicySource
    types: ContractTypes
    program: cel.Expression
    pii: frozenset[str]
    secret: bytes = field(
        default_factory=lambda: os.environ.get("CHOREOGRAPH_MASK_KEY", "").encode()
    )

    @property
    def id(self) -> str:
        return self.source.id

    def evaluate(self, event: Event) -> RuleEvaluation:
        """Evaluate on `event`, with the fields it read (PII masked) for the decision record."""
        values = event.to_avro()
        message = self.types.message(self.types.root, values)
        result = self.program.eval(data={"event": message}).value()
        return RuleEvaluation(
            self.source.id, str(self.source.version), result, self._inputs(values)
        )

    def allows(self, event: Event) -> tuple[bool, RuleEvaluation]:
        evaluation = self.evaluate(event)
        return evaluation.result is True, evaluation

    def _inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for named in self.source.fields_read:
            value: Any = values
            walked: list[str] = []
            for part in named.split("."):
                if isinstance(value, Mapping) and part in value:
                    value = value[part]
                    walked.append(part)
                else:
                    break  # a method call (event.name.startsWith) or beyond a list: stop here
            path = ".".join(walked)
            if not path:
                continue
            if path in self.pii or any(path.startswith(p + ".") for p in self.pii):
                value = mask_value(value, self.secret or b"choreograph")
            found[path] = _plain(value)
        return found


def _plain(value: Any) -> Any:
    """A JSON-ready copy (decimals and times as text)."""
    return json.loads(json.dumps(value, default=str))


def bind(source: PolicySource, schema: dict[str, Any]) -> BoundPolicy:
    """Check `source` against the Avro `schema` of the event it reads; PolicyError says where
    it goes wrong (file:line:col) and what to change."""
    reads = fullname(schema)
    if reads != source.reads:
        raise PolicyError(source.path, source.line, source.col,
                          f"{source.id} reads {source.reads}, not {reads}")  # fmt: skip
    try:
        types = ContractTypes(schema)
    except UnsupportedContract as err:
        raise PolicyError(source.path, source.line, source.col, str(err)) from None
    env = cel.NewEnv(types.pool, variables={"event": cel.Type(types.root)})
    try:
        program = env.compile(source.expression)
    except RuntimeError as err:
        found = _CEL_POSITION.search(str(err))
        if found is None:
            raise PolicyError(source.path, source.line, source.col, str(err)) from None
        line, col = source.where(int(found.group(1)), int(found.group(2)))
        message = found.group(3).replace(f"'{types.root}'", source.reads)
        raise PolicyError(source.path, line, col, message) from None
    returns = program.return_type().name()
    if returns != "BOOL":
        yields = f"{source.id} yields {returns.lower()}; a policy must yield a bool"
        raise PolicyError(source.path, source.line, source.col, yields)
    return BoundPolicy(source, types, program, frozenset(pii_fields(schema)))


class PolicyBook:
    """The policies a service may name, by id."""

    def __init__(self, sources: Iterable[PolicySource] = ()) -> None:
        self.sources: dict[str, PolicySource] = {}
        for source in sources:
            twin = self.sources.get(source.id)
            if twin is not None:
                raise PolicyError(source.path, 1, 1, f"{source.id} is also defined in {twin.path}")
            self.sources[source.id] = source
        self._bound: dict[tuple[str, str], BoundPolicy] = {}

    @classmethod
    def load(cls, root: Path | str) -> PolicyBook:
        """Every `*.yaml` under `root`; the first problem raises PolicyError."""
        base = Path(root)
        if not base.is_dir():
            raise PolicyError(str(base), 1, 1, "no such folder of policies")
        return cls(parse_policy(p.read_text(), str(p)) for p in sorted(base.rglob("*.yaml")))

    def bind(self, policy_id: str, model: type[Event], where: str) -> BoundPolicy:
        """The policy checked against `model`'s contract; `where` says who names it, for the
        error when it does not exist or reads another event."""
        source = self.sources.get(policy_id)
        if source is None:
            known = ", ".join(sorted(self.sources)) or "none"
            raise PolicyError("<service>", 1, 1, f"{where} names policy {policy_id!r}, which is "
                              f"not among the service's policies ({known})")  # fmt: skip
        if source.reads != model.__avro_name__:
            raise PolicyError(source.path, source.line, source.col,
                              f"{where} applies {policy_id} to {model.__avro_name__}, but it "
                              f"reads {source.reads}")  # fmt: skip
        key = (policy_id, model.__avro_name__)
        if key not in self._bound:
            schema = getattr(model, "__avro_schema__", None)
            if not isinstance(schema, dict):
                raise PolicyError(source.path, 1, 1, f"{model.__name__} has no Avro schema")
            self._bound[key] = bind(source, schema)
        return self._bound[key]
