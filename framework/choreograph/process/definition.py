"""A process definition: which events start, advance, complete or fail an end-to-end process, with
deadlines, what to do on timeout, compensations, and who owns it.

    name: order-fulfilment
    version: 1
    owners: {business: commerce-ops, technical: team-orders, on_call: orders-oncall}
    start: com.acme.orders.OrderPlaced
    deadline: 2h
    success: [com.acme.orders.OrderCompleted]
    failure: [com.acme.orders.OrderCancelled]
    steps:
      - name: payment
        completes_on: [com.acme.payments.PaymentAuthorized]
        fails_on: [com.acme.payments.PaymentFailed]
        deadline: 15m
        on_timeout: compensate
        compensation: {command: com.acme.payments.RefundPayment, deadline: 10m}

Definitions are versioned files, `processes/<name>.v<version>.yaml`; an instance stays on the
version that was current when it started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from choreograph.contracts.diagnostics import LocatedError
from choreograph.contracts.json_positions import locate
from choreograph.runtime.schedules import expression_problem

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
NAME_RE = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


def parse_duration(value: Any) -> timedelta:
    """`15m`, `2h`, `1h30m`, `500ms`, `1d`, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like 15m, 2h, 1h30m, 500ms or 1d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Outcome = Literal["alert", "compensate", "fail"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owners(_Strict):
    business: str = Field(min_length=1, description="accountable for the process outcome")
    technical: str = Field(min_length=1, description="team that maintains the definition")
    on_call: str = Field(
        min_length=1, description="alert route (Alertmanager receiver / PagerDuty)"
    )


class Command(_Strict):
    """A command the tracker sends, built from a payload template."""

    command: str = Field(description="command event type")
    payload: dict[str, str] = Field(
        default_factory=dict,
        description="command fields; values may use {business_key}, {reason}, "
        "{correlation_id}, {process}, {step} and the instance's recorded search attributes as "
        "{attributes.NAME} (a value that is that placeholder alone keeps the attribute's type)",
    )


PLACEHOLDERS = ("business_key", "reason", "correlation_id", "process", "step")
_WHOLE_ATTRIBUTE = re.compile(r"^\{attributes\.([a-z][a-z0-9_]*)\}$")


class _Attributes:
    """`{attributes.NAME}` in a template: a recorded attribute, "" when it was not recorded."""

    def __init__(self, values: dict[str, Any], known: set[str] | None) -> None:
        self._values = values
        self._known = known

    def __getattr__(self, name: str) -> Any:
        if self._known is not None and name not in self._known:
            raise KeyError(f"attributes.{name}")
        value = self._values.get(name)
        return "" if value is None else value


def render_template(
    template: str,
    values: dict[str, str],
    attributes: dict[str, Any],
    known: set[str] | None = None,
) -> Any:
    """A payload template filled in. A template that is one `{attributes.NAME}` alone gives the
    attribute's value as recorded (a number stays a number; None when not recorded). `known`:
    the attribute names allowed (others raise KeyError), None for any. Raises KeyError,
    IndexError or ValueError for a template that cannot be filled."""
    whole = _WHOLE_ATTRIBUTE.match(template)
    if whole:
        if known is not None and whole.group(1) not in known:
            raise KeyError(f"attributes.{whole.group(1)}")
        return attributes.get(whole.group(1))
    return template.format(**values, attributes=_Attributes(attributes, known))


class Compensation(Command):
    deadline: Duration | None = Field(None, description="time the compensation has to complete")
    completes_on: list[str] = Field(default_factory=list, description="events confirming it")


class Settle(Command):
    """What the tracker asks a step's owner when the step timed out before it reported: void it
    if it was not done (and never do it afterwards), and answer which. The owner knows; the
    tracker does not guess."""

    deadline: Duration | None = Field(
        None, description="time the owner has to answer; past it the step is undone as in doubt"
    )
    voided_on: list[str] = Field(
        min_length=1,
        description="answers: it was not done and never will be; what completed is compensated",
    )
    done_on: list[str] = Field(
        min_length=1,
        description="answers: it was done already; the process goes on, late, awaiting its report",
    )


class Step(_Strict):
    name: str = Field(pattern=NAME_RE)
    owner: str | None = None
    starts_on: list[str] = Field(
        default_factory=list,
        description="events that start the step; empty: it starts when the process starts",
    )
    completes_on: list[str] = Field(min_length=1)
    fails_on: list[str] = Field(default_factory=list)
    deadline: Duration | None = None
    on_timeout: Outcome = "alert"
    compensation: Compensation | None = None
    retry: Command | None = Field(
        None, description="command an operator's retry sends to run the step again"
    )
    redrive: Command | None = Field(
        None,
        description="command an operator's redrive sends to run the step again from the "
        "instance's recorded inputs ({attributes.NAME} in its payload)",
    )
    settle: Settle | None = Field(
        None,
        description="asked of the step's owner when it times out before it reported, instead "
        "of compensating a step that may never have happened",
    )

    @model_validator(mode="after")
    def _settled_steps_compensate(self) -> Step:
        if self.settle is not None and self.compensation is None:
            raise ValueError(
                f"step {self.name} has settle but no compensation: settling decides between "
                "compensating and going on; add the compensation, or remove settle"
            )
        return self


class FlowLimit(_Strict):
    """How fast the tracker may send commands to one topic: a partner coming back after an
    outage gets its overdue compensations at this pace, not all at once."""

    per_second: float = Field(gt=0, description="commands a second to the topic, at most")
    per_key_interval: Duration | None = Field(
        None, description="least time between two commands about the same business key"
    )


SCHEDULE_PLACEHOLDERS = ("occurrence", "date", "process", "business_key")


class ProcessSchedule(_Strict):
    """The process starts on a schedule: at each occurrence the tracker publishes the start
    event, built from `payload`, once (whichever replica owns the schedule), and an instance
    starts from it as from any other start event; the teams' services react to it."""

    cron: str = Field(description="five fields: minute hour day-of-month month day-of-week")
    tz: str = Field("UTC", description="IANA time zone the expression is read in")
    missed: Literal["latest", "all", "skip"] = Field(
        "latest", description="occurrences missed while the tracker was down: latest, all or skip"
    )
    payload: dict[str, str] = Field(
        default_factory=dict,
        description="start event fields; values may use {occurrence} (RFC 3339), {date}, "
        "{process} and {business_key} (the process name and the occurrence)",
    )

    @model_validator(mode="after")
    def _readable(self) -> ProcessSchedule:
        problem = expression_problem(self.cron, self.tz)
        if problem:
            raise ValueError(problem)
        return self


ATTRIBUTE_RE = r"^[a-z][a-z0-9_]*$"


class SearchAttribute(_Strict):
    """A field of one of the process's events, recorded on each instance to search by, count
    and sum (and to build redrive commands from)."""

    field: str = Field(min_length=1, description="a top-level field of the event")
    event: str | None = Field(None, description="the event type carrying it; default: the start")

    def event_or(self, start: str) -> str:
        return self.event or start


def _attribute(value: Any) -> Any:
    """`name: field` is short for `name: {field: field}` (a field of the start event)."""
    return {"field": value} if isinstance(value, str) else value


class ProcessDefinition(_Strict):
    name: str = Field(pattern=NAME_RE)
    version: int = Field(ge=1)
    description: str = ""
    owners: Owners
    start: str
    deadline: Duration | None = None
    on_timeout: Outcome = "alert"
    success: list[str] = Field(min_length=1)
    failure: list[str] = Field(default_factory=list)
    sla: Duration | None = Field(
        None, description="target time to completion; defaults to the process deadline"
    )
    value_at_risk: str | None = Field(None, description="numeric field of the start event")
    search_attributes: dict[
        Annotated[str, Field(pattern=ATTRIBUTE_RE)],
        Annotated[SearchAttribute, BeforeValidator(_attribute)],
    ] = Field(
        default_factory=dict,
        description="fields of the process's events kept on each instance, to search by",
    )
    retention: Duration | None = Field(
        None,
        description="how long an ended instance is kept before the tracker deletes it; "
        "default: the tracker's setting",
    )
    steps: list[Step] = Field(min_length=1)
    schedule: ProcessSchedule | None = Field(
        None, description="start an instance at each occurrence of a cron expression"
    )
    flow_control: dict[str, FlowLimit] = Field(
        default_factory=dict,
        description="per command topic, how fast the tracker may send to it (a durable queue "
        "holds the rest)",
    )

    def event_types(self) -> set[str]:
        """Every event type the definition listens to."""
        found = {self.start, *self.success, *self.failure}
        for step in self.steps:
            found |= {*step.starts_on, *step.completes_on, *step.fails_on}
            if step.compensation:
                found |= set(step.compensation.completes_on)
            if step.settle:
                found |= {*step.settle.voided_on, *step.settle.done_on}
        return found


class DefinitionError(LocatedError):
    """A definition file cannot be read; says where."""


def yaml_positions(text: str) -> dict[str, tuple[int, int]]:
    """1-based (line, column) of every value in a YAML document, by JSON pointer."""
    out: dict[str, tuple[int, int]] = {}

    def walk(node: yaml.Node, pointer: str) -> None:
        out[pointer] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, f"{pointer}/{key.value}")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{pointer}/{i}")

    root = yaml.compose(text)
    if root is not None:
        walk(root, "")
    return out


@dataclass(frozen=True)
class LoadedDefinition:
    """A parsed definition and where its parts stand in its file."""

    path: str
    definition: ProcessDefinition
    positions: dict[str, tuple[int, int]]

    def where(self, pointer: str) -> tuple[int, int]:
        return locate(self.positions, pointer)


def parse_definition(text: str, path: str) -> LoadedDefinition:
    try:
        raw = yaml.safe_load(text)
        positions = yaml_positions(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise DefinitionError(
            path, line, col, f"invalid YAML: {getattr(err, 'problem', err)}"
        ) from None
    if not isinstance(raw, dict):
        raise DefinitionError(path, 1, 1, "a process definition is a YAML mapping")
    try:
        definition = ProcessDefinition.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        line, col = locate(positions, "".join(f"/{part}" for part in first["loc"]))
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise DefinitionError(path, line, col, f"{where}: {first['msg']}") from None
    return LoadedDefinition(path, definition, positions)


def load_definitions(
    root: Path, display_base: Path | None = None
) -> tuple[list[LoadedDefinition], list[DefinitionError]]:
    """Every `*.yaml` under `root`; unreadable files are returned as errors, not raised."""
    base = display_base or Path.cwd()
    loaded, errors = [], []
    for file in sorted(root.glob("*.yaml")):
        try:
            label = str(file.resolve().relative_to(base.resolve()))
        except ValueError:
            label = str(file)
        try:
            loaded.append(parse_definition(file.read_text(), label))
        except DefinitionError as err:
            errors.append(err)
    return loaded, errors
