"""Checks of process definitions against the contracts in schemas/avro and against each other.

Rules: every event type named exists as a contract; compensation and retry commands exist, go to
a `.commands` topic, and their payload templates fill every required field with known placeholders;
step names are unique; a step that compensates on timeout has something to compensate; step
deadlines fit in the process deadline; the value-at-risk field is a number of the start event;
the file is named `<name>.v<version>.yaml`; no name and version is defined twice; an event that
completes two steps is flagged.
"""

from __future__ import annotations

import difflib
from pathlib import PurePath
from typing import Any

from choreograph.contracts.avro_model import Enum, Primitive, Union
from choreograph.contracts.catalog import Catalog
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.process.definition import (
    PLACEHOLDERS,
    SCHEDULE_PLACEHOLDERS,
    LoadedDefinition,
    render_template,
)

NUMERIC = {"int", "long", "float", "double"}


class _Linter:
    def __init__(self, loaded: LoadedDefinition, catalog: Catalog) -> None:
        self.loaded = loaded
        self.catalog = catalog
        self.found: list[Diagnostic] = []

    def add(self, pointer: str, rule: str, message: str, fix: str, severity: str = "error") -> None:
        line, col = self.loaded.where(pointer)
        self.found.append(Diagnostic(self.loaded.path, line, col, rule, severity, message, fix))

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.catalog.contracts), n=1, cutoff=0.6)
        return f"did you mean {close[0]}? " if close else ""

    def event(self, pointer: str, name: str) -> None:
        if name not in self.catalog.contracts:
            self.add(
                pointer,
                "unknown-event",
                f"no contract named {name} in {self.catalog.root}",
                f"{self.suggest(name)}use the full Avro name of a record in schemas/avro, "
                "or add the contract",
            )

    def run(self) -> list[Diagnostic]:
        d = self.loaded.definition
        expected = f"{d.name}.v{d.version}.yaml"
        if PurePath(self.loaded.path).name != expected:
            self.add(
                "/name", "file-name", f"file should be named {expected}", f"rename it to {expected}"
            )
        self.event("/start", d.start)
        if "on_timeout" in d.model_fields_set and d.deadline is None:
            self.add(
                "/on_timeout",
                "timeout-without-deadline",
                "the process has on_timeout but no deadline, so it can never time out",
                "add a deadline (e.g. deadline: 2h), or remove on_timeout",
            )
        for key in ("success", "failure"):
            for i, name in enumerate(getattr(d, key)):
                self.event(f"/{key}/{i}", name)
        sent = {
            contract.topic
            for step in d.steps
            for c in (step.compensation, step.settle, step.retry, step.redrive)
            if c is not None and (contract := self.catalog.contracts.get(c.command)) is not None
        }
        for topic in d.flow_control:
            if topic not in sent:
                self.add(
                    f"/flow_control/{topic}",
                    "flow-control-unused",
                    f"flow_control limits {topic}, to which this process sends no command",
                    f"name a topic its commands go to ({', '.join(sorted(sent)) or 'none'})",
                    severity="warning",
                )
        if d.schedule is not None:  # its start event is built from the payload
            self.payload("/schedule/payload", d.start, d.schedule.payload, SCHEDULE_PLACEHOLDERS)
        seen: dict[str, str] = {}
        completes: dict[str, str] = {}
        for i, step in enumerate(d.steps):
            at = f"/steps/{i}"
            if step.name in seen:
                self.add(
                    f"{at}/name",
                    "duplicate-step",
                    f"step {step.name} is defined twice",
                    "give every step its own name",
                )
            seen[step.name] = at
            if "on_timeout" in step.model_fields_set and step.deadline is None:
                self.add(
                    f"{at}/on_timeout",
                    "timeout-without-deadline",
                    f"step {step.name} has on_timeout but no deadline, so it can never time out",
                    "add a deadline to the step (e.g. deadline: 15m), or remove on_timeout",
                )
            for key in ("starts_on", "completes_on", "fails_on"):
                for j, name in enumerate(getattr(step, key)):
                    self.event(f"{at}/{key}/{j}", name)
            for j, name in enumerate(step.completes_on):
                if name in completes:
                    self.add(
                        f"{at}/completes_on/{j}",
                        "ambiguous-completion",
                        f"{name} also completes step {completes[name]}",
                        "let each event complete one step",
                        severity="warning",
                    )
                completes.setdefault(name, step.name)
            if step.compensation is not None:
                self.command(f"{at}/compensation/command", step.compensation.command)
                self.payload(
                    f"{at}/compensation/payload",
                    step.compensation.command,
                    step.compensation.payload,
                )
                for j, name in enumerate(step.compensation.completes_on):
                    self.event(f"{at}/compensation/completes_on/{j}", name)
            if step.settle is not None:
                self.command(f"{at}/settle/command", step.settle.command)
                self.payload(f"{at}/settle/payload", step.settle.command, step.settle.payload)
                for key in ("voided_on", "done_on"):
                    for j, name in enumerate(getattr(step.settle, key)):
                        self.event(f"{at}/settle/{key}/{j}", name)
            for key in ("retry", "redrive"):
                sent = getattr(step, key)
                if sent is not None:
                    self.command(f"{at}/{key}/command", sent.command)
                    self.payload(f"{at}/{key}/payload", sent.command, sent.payload)
            if step.on_timeout == "compensate" and not any(
                s.compensation for s in d.steps[: i + 1]
            ):
                self.add(
                    f"{at}/on_timeout",
                    "nothing-to-compensate",
                    f"step {step.name} compensates on timeout, but neither it nor an earlier "
                    "step has a compensation",
                    "add a compensation, or use alert or fail",
                )
            if step.deadline and d.deadline and step.deadline > d.deadline:
                self.add(
                    f"{at}/deadline",
                    "step-deadline-exceeds-process",
                    f"step {step.name} may take {step.deadline}, the process only {d.deadline}",
                    "shorten the step deadline or lengthen the process deadline",
                    severity="warning",
                )
        if d.value_at_risk:
            self.value_field(d.start, d.value_at_risk)
        for name, attribute in d.search_attributes.items():
            self.attribute(name, attribute.event_or(d.start), attribute.field)
        return self.found

    def attribute(self, name: str, event: str, field_name: str) -> None:
        """A search attribute is a scalar field of an event the process follows."""
        d = self.loaded.definition
        at = f"/search_attributes/{name}"
        if event not in d.event_types():
            self.add(
                f"{at}/event",
                "attribute-event",
                f"search attribute {name} reads {event}, which process {d.name} does not follow",
                "name an event the process starts, advances, completes or fails on",
            )
            return
        contract = self.catalog.contracts.get(event)
        if contract is None:
            return  # already reported as unknown-event
        field = contract.schema.field_named(field_name)
        kind = _non_null(field.type) if field else None
        scalar = isinstance(kind, Enum) or (
            isinstance(kind, Primitive)
            and kind.type != "null"
            and (kind.type != "bytes" or kind.logical == "decimal")
        )
        if field is None or not scalar:
            fields = ", ".join(f.name for f in contract.schema.fields)
            self.add(
                f"{at}/field",
                "attribute-field",
                f"search attribute {name}: {event} has no "
                f"{'field' if field is None else 'text, number, boolean or enum field'} "
                f"{field_name}",
                f"name a top-level text, number, boolean or enum field of {event}: {fields}",
            )

    def command(self, pointer: str, name: str) -> None:
        contract = self.catalog.contracts.get(name)
        if contract is None:
            self.add(
                pointer,
                "unknown-command",
                f"no contract named {name} in {self.catalog.root}",
                f"{self.suggest(name)}add the command's contract under schemas/avro",
            )
        elif not contract.topic.endswith(".commands"):
            self.add(
                pointer,
                "command-topic",
                f"{name} is published to {contract.topic}: the tracker would send a command on an "
                "events topic, where every consumer would take it for something that happened",
                f"use a command contract on {contract.domain}.commands (set its topic in "
                "schemas.yaml)",
            )

    def payload(
        self,
        pointer: str,
        command: str,
        payload: dict[str, str],
        placeholders: tuple[str, ...] = PLACEHOLDERS,
    ) -> None:
        contract = self.catalog.contracts.get(command)
        if contract is None:
            return  # already reported as unknown-command
        fields = {f.name: f for f in contract.schema.fields}
        for name in payload:
            if name not in fields:
                self.add(
                    f"{pointer}/{name}",
                    "command-payload",
                    f"{command} has no field {name}",
                    f"use fields of {command}: {', '.join(fields)}",
                )
        for name, f in fields.items():
            if name not in payload and not f.has_default:
                self.add(
                    pointer,
                    "command-payload",
                    f"{command} needs {name}, which the payload does not give",
                    f'add {name}: "{{business_key}}" (or {{reason}}, {{correlation_id}}...)',
                )
        known = (
            set(self.loaded.definition.search_attributes) if placeholders == PLACEHOLDERS else set()
        )
        for name, template in payload.items():
            try:
                render_template(template, dict.fromkeys(placeholders, ""), {}, known)
            except (KeyError, IndexError, ValueError, AttributeError) as err:
                attributes = ", ".join(f"{{attributes.{a}}}" for a in sorted(known))
                self.add(
                    f"{pointer}/{name}",
                    "command-payload",
                    f"template {template!r} uses an unknown placeholder: {err}",
                    "use "
                    + ", ".join(f"{{{p}}}" for p in placeholders)
                    + (f", or a search attribute: {attributes}" if attributes else ""),
                )

    def value_field(self, start: str, field_name: str) -> None:
        contract = self.catalog.contracts.get(start)
        if contract is None:
            return  # already reported as unknown-event
        field = contract.schema.field_named(field_name)
        kind = _non_null(field.type) if field else None
        numeric = isinstance(kind, Primitive) and (
            kind.type in NUMERIC or kind.logical == "decimal"
        )
        if not numeric:
            self.add(
                "/value_at_risk",
                "value-at-risk-field",
                f"{start} has no numeric field {field_name}",
                "name a numeric (int, long, float, double or decimal) field of the start event",
            )


def _non_null(kind: Any) -> Any:
    """A field's type, or the branch of an optional one (a union with null) that is not null."""
    if isinstance(kind, Union):
        return next(
            (b for b in kind.branches if not (isinstance(b, Primitive) and b.type == "null")),
            None,
        )
    return kind


def lint_definitions(loaded: list[LoadedDefinition], catalog: Catalog) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    versions: dict[tuple[str, int], str] = {}
    for item in loaded:
        found += _Linter(item, catalog).run()
        key = (item.definition.name, item.definition.version)
        if key in versions:
            line, col = item.where("/version")
            found.append(
                Diagnostic(
                    item.path,
                    line,
                    col,
                    "duplicate-version",
                    "error",
                    f"{key[0]} v{key[1]} is also defined in {versions[key]}",
                    "give the new definition the next version number",
                )
            )
        versions.setdefault(key, item.path)
    return found
