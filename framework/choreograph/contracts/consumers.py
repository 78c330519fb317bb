"""Who reads which contract, where every team's gate can see it: consumer-driven contract checks.

A consumer's gate publishes what it reads, per environment (`choreograph contracts publish
--env prod --team loyalty --service points`):

- each pinned reader schema (the producer's schema as the consumer was built against it), and
- for each process definition of the repository, the fields it reads of an event (its value at
  risk, its search attributes): a reader schema with just those fields, and no defaults, since a
  field the tracker reads and no longer finds is a break even where a default would decode.

They go to the schema registry itself, as versions of subjects named
`_readers.<env>.<team>.<service>.<subject>` (`<subject>`: the producer's `<topic>-<record>`),
with compatibility NONE: any registry with the Confluent API keeps them, and every gate reaches
them with the registry credentials it has already. The schema carries who reads it under the
property `choreograph.reader` (team, service, environment, and what it reads).

A producer's gate (`choreograph contracts check`) checks each of its contracts against every
registered reader of its subject and fails naming the consumer's team, service, subject and
field. Deployments are recorded the same way (`choreograph deployed SERVICE --to ENV --version
V`: a version of `_deployed.<env>.<service>` whose property `choreograph.deployment` lists the
subjects and schema ids the service writes and reads), and `choreograph can-i-deploy SERVICE
--to ENV` checks both directions against what runs in ENV.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from choreograph.contracts.avro_model import parse_schema
from choreograph.contracts.compatibility import Incompatibility, can_read
from choreograph.contracts.pulled import Registry

if TYPE_CHECKING:
    from choreograph.process.definition import ProcessDefinition
    from choreograph.project import Project

READERS = "_readers"
DEPLOYED = "_deployed"
READER_PROPERTY = "choreograph.reader"
DEPLOYMENT_PROPERTY = "choreograph.deployment"
TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PAGE = 1000  # subjects a registry lists at once (Apicurio's default cap when no limit is given)


class ConsumerError(ValueError):
    """A name or a registry answer that cannot be used; says which and why."""


def token(what: str, value: str) -> str:
    if not TOKEN.match(value):
        raise ConsumerError(
            f"{what} {value!r}: use lower-case letters, digits, - and _ (it is part of a "
            "registry subject name)"
        )
    return value


@dataclass(frozen=True)
class Reader:
    """One registered reader of a producer's subject."""

    env: str
    team: str
    service: str
    subject: str  # the producer's subject it reads
    reads: str  # what, in words: "the whole record", or the fields a definition reads
    schema: dict[str, Any]
    registered_as: str = ""  # its own subject

    def who(self) -> str:
        return f"team {self.team}, service {self.service} ({self.env})"


@dataclass(frozen=True)
class Deployment:
    env: str
    service: str
    team: str
    version: str
    writes: dict[str, int] = field(default_factory=dict)  # subject -> schema id
    reads: dict[str, int] = field(default_factory=dict)
    at: str = ""


@dataclass(frozen=True)
class Break:
    """A writer a reader cannot read: who, which subject, which field, and why."""

    reader: Reader
    writer_label: str  # the producer's side: "the new schema of X", "payments v3 in prod"
    problem: Incompatibility

    def message(self) -> str:
        p = self.problem
        return (
            f"{self.reader.who()} reads {self.reader.subject} ({self.reader.reads}) and cannot "
            f"read {self.writer_label}: {p.message}"
        )


def reader_subject(env: str, team: str, service: str, subject: str) -> str:
    return (
        f"{READERS}.{token('env', env)}.{token('team', team)}.{token('service', service)}.{subject}"
    )


def deployed_subject(env: str, service: str) -> str:
    return f"{DEPLOYED}.{token('env', env)}.{token('service', service)}"


# -- the registry's side ------------------------------------------------------------------------


def subjects(registry: Registry, prefix: str) -> list[str]:
    """Every subject starting with `prefix`, paged: a registry caps an unpaged list (Apicurio at
    1,000), and the client's `get_subjects` takes no paging."""
    rest = getattr(registry.client, "_rest_client", None)
    if rest is None:
        return [s for s in registry.subjects() if s.startswith(prefix)]
    found: list[str] = []
    offset = 0
    while True:
        page = rest.get("subjects", {"subjectPrefix": prefix, "offset": offset, "limit": PAGE})
        found += [s for s in page if isinstance(s, str) and s.startswith(prefix)]
        if len(page) < PAGE:
            return sorted(set(found))
        offset += len(page)


def register(registry: Registry, subject: str, schema: dict[str, Any]) -> int:
    """Register `schema` under `subject` (compatibility NONE: a reader may change any way);
    the same schema again gives the id it has."""
    from confluent_kafka.schema_registry import Schema

    client = registry.client
    client.set_compatibility(subject_name=subject, level="NONE")
    return int(client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))


@dataclass(frozen=True)
class Read:
    """What a service reads of one producer's subject, to publish."""

    subject: str
    service: str  # the service, or `<service>-process-<name>` for a definition's fields
    schema: dict[str, Any]
    reads: str


def publish_readers(
    registry: Registry, env: str, team: str, service: str, reads: list[Read]
) -> list[str]:
    """Register what a team's service reads, in `env`; the subjects registered. What the
    service published before and reads no more (a definition that stopped reading a field) is
    withdrawn: its producers may change it."""
    done = []
    for read in sorted(reads, key=lambda r: (r.subject, r.service)):
        label = {"env": env, "team": team, "service": read.service, "subject": read.subject,
                 "reads": read.reads}  # fmt: skip
        labelled = {**read.schema, READER_PROPERTY: label}
        name = reader_subject(env, team, read.service, read.subject)
        register(registry, name, labelled)
        done.append(name)
    mine = f"{READERS}.{token('env', env)}.{token('team', team)}.{token('service', service)}"
    for stale in subjects(registry, mine):
        if stale not in done and stale.startswith((f"{mine}.", f"{mine}-process-",
                                                    f"{mine}-policy-")):  # fmt: skip
            registry.client.delete_subject(stale)
    return done


def readers_of(registry: Registry, subject: str, env: str | None = None) -> list[Reader]:
    """Every registered reader of `subject` (in `env`, or in any)."""
    prefix = f"{READERS}.{env}." if env else f"{READERS}."
    found = []
    for name in subjects(registry, prefix):
        if not name.endswith(f".{subject}"):
            continue
        got = registry.version(name)
        label = got.schema.get(READER_PROPERTY)
        if not isinstance(label, dict) or label.get("subject") != subject:
            continue
        found.append(
            Reader(
                str(label.get("env")),
                str(label.get("team")),
                str(label.get("service")),
                subject,
                str(label.get("reads", "")),
                _without(got.schema),
                name,
            )
        )
    return found


def record_deployment(registry: Registry, deployment: Deployment) -> int:
    schema = {
        "type": "record",
        "name": "Deployment",
        "namespace": "dev.choreograph.deployments",
        "doc": f"{deployment.service} {deployment.version} in {deployment.env}",
        "fields": [],
        DEPLOYMENT_PROPERTY: {
            "env": deployment.env, "service": deployment.service, "team": deployment.team,
            "version": deployment.version, "writes": deployment.writes,
            "reads": deployment.reads,
            "at": deployment.at or datetime.now(UTC).isoformat(),
        },
    }  # fmt: skip
    return register(registry, deployed_subject(deployment.env, deployment.service), schema)


def deployments(registry: Registry, env: str) -> list[Deployment]:
    """What runs in `env`: each service's latest recorded deployment."""
    found = []
    for name in subjects(registry, f"{DEPLOYED}.{env}."):
        label = registry.version(name).schema.get(DEPLOYMENT_PROPERTY)
        if isinstance(label, dict):
            found.append(
                Deployment(
                    str(label["env"]),
                    str(label["service"]),
                    str(label.get("team", "")),
                    str(label["version"]),
                    dict(label.get("writes", {})),
                    dict(label.get("reads", {})),
                    str(label.get("at", "")),
                )
            )
    return found


def schema_by_id(registry: Registry, schema_id: int) -> dict[str, Any]:
    found = registry.client.get_schema(schema_id)
    return dict(json.loads(found.schema_str))


# -- checks -----------------------------------------------------------------------------------


def breaks(reader: Reader, writer: dict[str, Any], writer_label: str) -> list[Break]:
    """What stops `reader` from reading data written with `writer`."""
    try:
        problems = can_read(parse_schema(reader.schema), parse_schema(writer))
    except ValueError as err:
        raise ConsumerError(
            f"{reader.registered_as} is not a schema this gate reads: {err}"
        ) from None
    return [Break(reader, writer_label, p) for p in problems if not p.strict]


def check_writers(
    registry: Registry, writers: dict[str, dict[str, Any]], env: str | None = None
) -> tuple[list[Break], int]:
    """Each of `writers` (subject -> the producer's schema, as it would be registered) against
    every registered reader of its subject; the breaks, and how many readers were checked."""
    found: list[Break] = []
    checked = 0
    for subject, schema in sorted(writers.items()):
        for reader in readers_of(registry, subject, env):
            checked += 1
            found += breaks(reader, schema, f"the new schema of {subject}")
    return found, checked


def projection(schema: dict[str, Any], fields: list[str]) -> dict[str, Any] | None:
    """A reader of `schema` that reads `fields` alone, without defaults (None when the record
    has none of them)."""
    kept = [
        {k: v for k, v in f.items() if k != "default"}
        for f in schema.get("fields", [])
        if f.get("name") in fields
    ]
    if not kept:
        return None
    return {**{k: v for k, v in schema.items() if k != "fields"}, "fields": kept}


def _without(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in (READER_PROPERTY, DEPLOYMENT_PROPERTY)}


# -- a team repository's side -------------------------------------------------------------------


def repository_reads(project: Project, service: str) -> list[Read]:
    """What a team repository reads: every pinned reader (the whole record, as pinned), and for
    each process definition, the fields it reads of each event (value at risk, search
    attributes), with the event's role (the start, or the steps it moves)."""
    from choreograph.contracts.catalog import load_catalog
    from choreograph.contracts.pulled import read_lock
    from choreograph.process.definition import load_definitions

    reads = []
    for pin in read_lock(project.lock).values():
        file = project.root / pin.path
        if file.is_file():
            schema = json.loads(file.read_text())
            reads.append(Read(pin.subject, service, schema,
                              f"the whole record, as pinned at version {pin.version}"))  # fmt: skip
    contracts = {}
    for root in project.contract_roots:
        contracts.update(load_catalog(root).contracts)
    reads += _policy_reads(project, service, contracts)
    if not project.processes.is_dir():
        return reads
    loaded, errors = load_definitions(project.processes)
    if errors:
        raise ConsumerError(
            "the process definitions cannot be read, so what they read is unknown: "
            + "; ".join(str(e) for e in errors)
        )
    for item in loaded:
        d = item.definition
        wanted: dict[str, list[str]] = {}
        if d.value_at_risk:
            wanted.setdefault(d.start, []).append(d.value_at_risk)
        for attribute in d.search_attributes.values():
            wanted.setdefault(attribute.event_or(d.start), []).append(attribute.field)
        for event_type, fields in sorted(wanted.items()):
            contract = contracts.get(event_type)
            reader = projection(contract.raw, fields) if contract is not None else None
            if contract is None or reader is None:
                continue
            roles = _roles(d, event_type)
            reads.append(Read(
                f"{contract.topic}-{event_type}", f"{service}-process-{d.name}", reader,
                f"process {d.name} v{d.version} reads {', '.join(sorted(set(fields)))} of "
                f"{event_type} ({roles})",
            ))  # fmt: skip
    return reads


def _policy_reads(project: Project, service: str, contracts: dict[str, Any]) -> list[Read]:
    """Each policy of the repository: the top-level fields its expression reads of its event."""
    from choreograph.governance.policies import PolicyBook, PolicyError

    if not project.policies.is_dir():
        return []
    try:
        book = PolicyBook.load(project.policies)
    except PolicyError as err:
        raise ConsumerError(
            f"the policies cannot be read, so what they read is unknown: {err}"
        ) from None
    found = []
    for policy in sorted(book.sources.values(), key=lambda p: p.id):
        contract = contracts.get(policy.reads)
        fields = sorted({path.split(".")[0] for path in policy.fields_read})
        reader = projection(contract.raw, fields) if contract is not None else None
        if contract is None or reader is None:
            continue
        found.append(Read(
            f"{contract.topic}-{policy.reads}",
            f"{service}-policy-{token('policy', _slug(policy.id))}",
            reader, f"policy {policy.id} v{policy.version} reads {', '.join(fields)} of "
            f"{policy.reads}",
        ))  # fmt: skip
    return found


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "policy"


def _roles(definition: ProcessDefinition, event_type: str) -> str:
    roles = ["the start"] if event_type == definition.start else []
    for step in definition.steps:
        moves = (*step.starts_on, *step.completes_on, *step.fails_on)
        if event_type in moves:
            roles.append(f"step {step.name}")
    return ", ".join(roles) or "followed"
