"""Other teams' contracts in a team repository: pulled from the registry, pinned in a lock file.

A consumer reads another team's events with the writer's schema as it was when the consumer was
built (the pinned version: its reader schema). `pull` fetches subjects (by name or by domain)
into `schemas/pulled/<domain>/<Record>.avsc`, with a `schemas.yaml` naming each record's topic,
and records subject, version, id and a fingerprint in the lock file. `gate` compares each pinned
reader with the latest writer registered since: a producer's change that this consumer could not
read fails, naming the subject and the field.

The lock file is JSON (sorted, indented): reviewed in pull requests like any lock file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from choreograph.contracts.avro_model import parse_schema
from choreograph.contracts.catalog import POLICY_FILE
from choreograph.contracts.compatibility import Finding, Mode, check_compatibility

LOCK_VERSION = 1


class PullError(ValueError):
    """A subject cannot be pulled or checked; says which and why."""


@dataclass(frozen=True)
class Pinned:
    subject: str
    version: int
    schema_id: int
    fingerprint: str
    path: str  # the .avsc, relative to the repository

    @property
    def topic(self) -> str:
        return split_subject(self.subject)[0]

    @property
    def fullname(self) -> str:
        return split_subject(self.subject)[1]


@dataclass(frozen=True)
class Registered:
    """One version of a subject as the registry holds it."""

    subject: str
    version: int
    schema_id: int
    schema: dict[str, Any]


def split_subject(subject: str) -> tuple[str, str]:
    """`<topic>-<full name>` (TopicRecordNameStrategy): the full name has dots, no dash."""
    topic, dash, fullname = subject.rpartition("-")
    if not dash or not topic or "." not in fullname:
        raise PullError(
            f"{subject!r} is not a subject of the form <topic>-<record full name> "
            "(e.g. payments.events-com.acme.payments.PaymentAuthorized)"
        )
    return topic, fullname


def fingerprint(schema: dict[str, Any]) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def domain_of(fullname: str) -> str:
    """The last part of the namespace: the folder a contract lives in."""
    return fullname.rsplit(".", 2)[-2]


# -- the lock file -------------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, Pinned]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {
            subject: Pinned(subject, e["version"], e["id"], e["fingerprint"], e["path"])
            for subject, e in data["subjects"].items()
        }
    except (ValueError, KeyError, TypeError) as err:
        raise PullError(
            f"{path} is not a lock file this version reads ({err}); pull again to rewrite it"
        ) from None


def write_lock(path: Path, pinned: Iterable[Pinned]) -> None:
    subjects = {
        p.subject: {
            "version": p.version,
            "id": p.schema_id,
            "fingerprint": p.fingerprint,
            "path": p.path,
        }
        for p in sorted(pinned, key=lambda p: p.subject)
    }
    path.write_text(
        json.dumps({"lock_version": LOCK_VERSION, "subjects": subjects}, indent=2) + "\n"
    )


# -- the registry ---------------------------------------------------------------------------------


class Registry:
    """The few calls pulling needs, over confluent-kafka's registry client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def subjects(self) -> list[str]:
        return list(self.client.get_subjects())

    def version(self, subject: str, version: int | str = "latest") -> Registered:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            if version == "latest":
                found = self.client.get_latest_version(subject)
            else:
                found = self.client.get_version(subject, version)
        except SchemaRegistryError as err:
            if err.http_status_code in (401, 403):
                raise PullError(
                    f"the registry refused the credentials ({err.http_status_code}): set "
                    "CHOREOGRAPH_REGISTRY_USER_INFO (user:password)"
                ) from None
            if err.http_status_code == 404:
                what = "subject" if version == "latest" else f"version {version} of"
                raise PullError(f"the registry has no {what} {subject}") from None
            raise
        if found.schema.schema_type not in (None, "AVRO"):
            raise PullError(f"{subject} is {found.schema.schema_type}, not Avro")
        return Registered(
            subject, found.version, found.schema_id, json.loads(found.schema.schema_str)
        )


# -- pulling --------------------------------------------------------------------------------------


def pull(
    registry: Registry,
    root: Path,
    pulled: Path,
    lock: Path,
    subjects: list[str],
    domains: list[str],
    own_domains: set[str],
) -> list[Pinned]:
    """Fetch `subjects` and every subject of `domains` at their latest versions (or, asked for
    nothing, every pinned subject again at its pinned version); write them and the lock."""
    pinned = read_lock(lock)
    for subject in subjects:
        split_subject(subject)  # says what a subject looks like before asking the registry
    wanted: dict[str, int | str] = {s: "latest" for s in subjects}
    if domains:
        found = [s for s in registry.subjects() if _in_domains(s, domains)]
        missing = [d for d in domains if not any(_in_domains(s, [d]) for s in found)]
        if missing:
            raise PullError(f"the registry has no subject of domain {', '.join(missing)}")
        wanted.update({s: "latest" for s in found})
    if not wanted:
        wanted = {s: p.version for s, p in pinned.items()}
    fetched = [registry.version(subject, version) for subject, version in sorted(wanted.items())]
    for got in fetched:
        domain = domain_of(split_subject(got.subject)[1])
        if domain in own_domains:
            raise PullError(
                f"{got.subject} is of domain {domain}, which this repository owns: its contracts "
                "are in the repository already, not pulled"
            )
    for got in fetched:
        fullname = split_subject(got.subject)[1]
        if got.schema.get("type") != "record" or _fullname(got.schema) != fullname:
            raise PullError(f"{got.subject} holds {_fullname(got.schema)}, not {fullname}")
        file = pulled / domain_of(fullname) / f"{got.schema['name']}.avsc"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(got.schema, indent=2) + "\n")
        pinned[got.subject] = Pinned(
            got.subject,
            got.version,
            got.schema_id,
            fingerprint(got.schema),
            file.resolve().relative_to(root.resolve()).as_posix(),
        )
    _write_policy(pulled, pinned.values(), root)
    write_lock(lock, pinned.values())
    return [pinned[g.subject] for g in fetched]


def _in_domains(subject: str, domains: list[str]) -> bool:
    try:
        return domain_of(split_subject(subject)[1]) in domains
    except (PullError, IndexError):
        return False


def _fullname(schema: dict[str, Any]) -> str:
    name = str(schema.get("name", ""))
    space = schema.get("namespace")
    return name if "." in name or not space else f"{space}.{name}"


def _write_policy(pulled: Path, pinned: Iterable[Pinned], root: Path) -> None:
    """The topics of pulled records, so their subjects are the producers' subjects. Each record
    is checked as what it is here, a reader: BACKWARD against newer writers."""
    records = {}
    for p in sorted(pinned, key=lambda p: p.fullname):
        if (root / p.path).is_file():
            records[p.fullname] = {"topic": p.topic}
    policy = {
        "default_compatibility": Mode.BACKWARD.value,
        "records": records,
    }
    header = (
        "# Written by `choreograph contracts pull`: other teams' contracts this repository reads.\n"
        "# Do not edit; pull again (see contracts.lock for what is pinned).\n"
    )
    pulled.mkdir(parents=True, exist_ok=True)
    (pulled / POLICY_FILE).write_text(header + yaml.safe_dump(policy, sort_keys=True))


# -- the gate -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateFinding:
    pinned: Pinned
    severity: str  # error, notice
    message: str
    fix: str = ""


def gate(registry: Registry, root: Path, lock: Path) -> list[GateFinding]:
    """Each pinned reader against the latest registered writer of its subject."""
    found: list[GateFinding] = []
    for pin in read_lock(lock).values():
        file = root / pin.path
        if not file.is_file():
            found.append(
                GateFinding(
                    pin,
                    "error",
                    f"{pin.path} is missing",
                    "run `choreograph contracts pull` to restore it",
                )
            )
            continue
        reader_raw = json.loads(file.read_text())
        if fingerprint(reader_raw) != pin.fingerprint:
            found.append(
                GateFinding(
                    pin,
                    "error",
                    f"{pin.path} was edited after it was pulled",
                    "pulled contracts are the producer's: pull again, don't edit",
                )
            )
            continue
        try:
            latest = registry.version(pin.subject)
        except PullError as err:
            found.append(GateFinding(pin, "error", str(err), "ask its producer why it went"))
            continue
        if latest.version == pin.version:
            continue
        reader = parse_schema(reader_raw)
        findings: list[Finding] = check_compatibility(
            reader, [(latest.version, parse_schema(latest.schema))], Mode.BACKWARD
        )
        for finding in findings:
            found.append(
                GateFinding(
                    pin,
                    "error",
                    f"{pin.subject}: version {latest.version} of its producer breaks this "
                    f"reader (pinned version {pin.version}): {finding.problem.message}",
                    "agree the change with the producer (a default for the field), or adapt "
                    "this repository's code and pull the new version",
                )
            )
        if not findings:
            found.append(
                GateFinding(
                    pin,
                    "notice",
                    f"{pin.subject}: version {latest.version} is registered and readable "
                    f"(pinned {pin.version})",
                    f"`choreograph contracts pull {pin.subject}` to use its new fields",
                )
            )
    return found
