"""The process definitions the tracker follows: new instances start on the latest version of a
process, running ones stay on the version they started with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from choreograph.contracts.catalog import Catalog, load_catalog, with_others
from choreograph.contracts.codegen import bind_models
from choreograph.contracts.event import Event
from choreograph.process.definition import ProcessDefinition, load_definitions
from saga_tracker.instance import ProcessRules


@dataclass(frozen=True)
class ProcessFacts:
    """What the pages and the API need to know of the processes, from their definitions (any
    version): who owns each, its steps and its search attributes."""

    owners: dict[str, list[str]] = field(default_factory=dict)
    steps: dict[str, list[str]] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def all_steps(self) -> list[str]:
        return sorted({s for names in self.steps.values() for s in names})

    def all_attributes(self) -> list[str]:
        return sorted({a for names in self.attributes.values() for a in names})


class DefinitionsUnreadable(Exception):
    """The tracker refuses to start on definitions it cannot read."""


class Definitions:
    def __init__(self, definitions: Iterable[ProcessDefinition]) -> None:
        self.rules = {(d.name, d.version): ProcessRules(d) for d in definitions}
        latest: dict[str, int] = {}
        for name, version in self.rules:
            latest[name] = max(version, latest.get(name, 0))
        self.latest = {name: self.rules[(name, version)] for name, version in latest.items()}
        self.processes = sorted(latest)

    @classmethod
    def load(cls, folder: Path) -> Definitions:
        loaded, errors = load_definitions(folder)
        if errors:
            raise DefinitionsUnreadable("; ".join(str(e) for e in errors))
        return cls(item.definition for item in loaded)

    def starting(self, event_type: str) -> list[ProcessRules]:
        """Latest version of every process this event type starts."""
        return [r for r in self.latest.values() if r.definition.start == event_type]

    def pinned(self, process: str, version: int) -> ProcessRules | None:
        return self.rules.get((process, version))

    def event_types(self) -> set[str]:
        return {t for rules in self.rules.values() for t in rules.definition.event_types()}

    def bodies_read(self) -> set[str]:
        """Event types whose body the tracker reads: starts of processes with a value at risk,
        and events carrying a search attribute. Every other followed event is tracked from its
        envelope alone."""
        found: set[str] = set()
        for rules in self.rules.values():
            d = rules.definition
            if d.value_at_risk:
                found.add(d.start)
            found |= {a.event_or(d.start) for a in d.search_attributes.values()}
        return found

    def facts(self) -> ProcessFacts:
        """Per process (any version): the teams that own it (who maintains it and who answers
        for its outcome), its steps, its search attributes."""
        facts = ProcessFacts()
        for (name, _), rules in sorted(self.rules.items()):
            d = rules.definition
            for found, new in (
                (facts.owners, [d.owners.technical, d.owners.business]),
                (facts.steps, [step.name for step in d.steps]),
                (facts.attributes, list(d.search_attributes)),
            ):
                known = found.setdefault(name, [])
                known += [item for item in new if item not in known]
        return facts


def contracts_of(schemas: Path) -> Catalog:
    """The contracts in `schemas` and, beside it, other teams' contracts a team repository
    pulled (`schemas/pulled` next to `schemas/avro`, as `choreograph contracts pull` and the
    image lay them out): a team's tracker follows both."""
    catalog = load_catalog(schemas)
    pulled = schemas.parent / "pulled"
    if pulled.is_dir() and pulled.resolve() != schemas.resolve():
        return with_others(catalog, load_catalog(pulled))
    return catalog


def command_and_incident_models(schemas: Path) -> dict[str, type[Event]]:
    """Models for every contract: the tracker builds compensation commands and incidents."""
    catalog = contracts_of(schemas)
    if catalog.errors:
        raise DefinitionsUnreadable("; ".join(str(e) for e in catalog.errors))
    return bind_models(catalog.contracts.values(), "saga_tracker_models")


# What the tracker reads beside the domain events its definitions follow: the services'
# decision records and approval requests.
TRACKER_TOPICS = ("choreograph.decisions", "choreograph.approvals")


def tracked_inputs(
    definitions: Definitions, schemas: Path, given: list[str] | None = None
) -> list[str]:
    """The topics the router consumes: those of every event type a definition follows (from the
    contracts), and TRACKER_TOPICS. With `given` (an explicit --inputs), those, once each
    followed type's topic is among them. Refuses, naming definition, type and topic, what would
    leave a process waiting forever for events the tracker never reads."""
    catalog = contracts_of(schemas)
    problems: list[str] = []
    needed: dict[str, list[tuple[str, str]]] = {}  # topic -> (process vN, event type)
    for (name, version), rules in sorted(definitions.rules.items()):
        for event_type in sorted(rules.definition.event_types()):
            contract = catalog.contracts.get(event_type)
            if contract is None:
                problems.append(
                    f"process {name} v{version} follows {event_type}, which has no contract in "
                    f"{schemas}: add it, or pull it from its producer (`choreograph contracts "
                    "pull`), or correct the definition"
                )
                continue
            needed.setdefault(contract.topic, []).append((f"{name} v{version}", event_type))
    if given is not None:
        for topic, followers in sorted(needed.items()):
            if not any(_carries(given_topic, topic) for given_topic in given):
                process, event_type = followers[0]
                problems.append(
                    f"process {process} follows {event_type} on {topic}, which --inputs "
                    f"({', '.join(given) or 'none'}) does not include: add {topic}, or leave "
                    "--inputs out to follow the definitions' topics"
                )
    if problems:
        raise DefinitionsUnreadable("; ".join(problems))
    if given is not None:
        return given
    return [*sorted(needed), *TRACKER_TOPICS]


def _carries(given: str, topic: str) -> bool:
    """Whether input `given` carries the events of contract topic `topic`: it is that topic, a
    copy under a prefix (a replay sandbox, `<prefix>orders.events`), or a copy under a suffix
    (`orders.events.<run>`)."""
    return given == topic or given.endswith(topic) or given.startswith(f"{topic}.")
