"""`choreograph contracts`: other teams' contracts in this repository (see contracts.pulled).

    contracts pull SUBJECT...      pin the latest versions, write them, regenerate the models
    contracts pull --domain D      every subject of domain D
    contracts pull                 every pinned subject again, at its pinned version
    contracts check                the gate: pinned readers against the latest writers, and
                                   this repository's contracts against every registered reader
    contracts publish --env ENV --team TEAM --service SERVICE
                                   register what this repository reads, for producers' gates

Registry address and credentials as services take them (CHOREOGRAPH_REGISTRY_*), or --registry.
Exit codes: 0 clean, 1 a producer's change breaks this reader, 2 unreadable or unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from choreograph.cli.cluster import add_registry, cluster_config
from choreograph.cli.output import BREAKING, OK, UNREADABLE, finish
from choreograph.cli.schemas import regenerate
from choreograph.cli.tracker_client import TrackerAway, open_instances, tracker_from
from choreograph.contracts.catalog import load_catalog
from choreograph.contracts.consumers import (
    Break,
    ConsumerError,
    check_writers,
    publish_readers,
    readers_of,
    repository_reads,
)
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.contracts.pulled import PullError, Registry, fingerprint, gate, pull
from choreograph.project import Project, ProjectError, require_project


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("contracts", help="other teams' contracts: pull and gate them")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser("pull", help="pin subjects from the registry; generate models")
    fetch.add_argument(
        "subjects",
        nargs="*",
        metavar="SUBJECT",
        help="<topic>-<record full name>, e.g. payments.events-com.acme.payments.PaymentAuthorized",
    )
    fetch.add_argument(
        "--domain", action="append", default=[], help="every subject of this domain (repeatable)"
    )
    add_registry(fetch)
    fetch.add_argument("--format", choices=("text", "json"), default="text")
    fetch.set_defaults(run=run_pull)

    check = commands.add_parser(
        "check", help="pinned readers against the latest writers; own contracts against readers"
    )
    add_registry(check)
    check.add_argument("--env", help="only the readers of this environment (default: every one)")
    check.add_argument(
        "--tracker", help="the saga tracker's URL: add open instances and value at risk per step"
    )
    check.add_argument("--token", help="a bearer token for the tracker")
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.set_defaults(run=run_check)

    publish = commands.add_parser(
        "publish", help="register what this repository reads, so producers' gates check it"
    )
    add_registry(publish)
    publish.add_argument("--env", required=True, help="the environment, e.g. dev or prod")
    publish.add_argument("--team", required=True, help="the team that owns this repository")
    publish.add_argument("--service", required=True, help="the service that reads them")
    publish.add_argument("--format", choices=("text", "json"), default="text")
    publish.set_defaults(run=run_publish)


def _registry(args: argparse.Namespace) -> Registry:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return Registry(SchemaRegistryClient(cluster_config(args).registry_conf()))


def _guard(args: argparse.Namespace, command: str, work: Any) -> int:
    try:
        code: int = work()
        return code
    except (ProjectError, PullError, ConsumerError) as err:
        print(f"choreograph contracts {command}: {err}", file=sys.stderr)
        return UNREADABLE
    except Exception as err:  # the registry client's transport errors
        if type(err).__module__.startswith(("requests", "urllib3", "httpx", "confluent_kafka")):
            print(
                f"choreograph contracts {command}: cannot use the schema registry at "
                f"{args.registry}: {err}; check --registry (CHOREOGRAPH_REGISTRY_URL) and its "
                "credentials (CHOREOGRAPH_REGISTRY_USER_INFO)",
                file=sys.stderr,
            )
            return UNREADABLE
        raise


def run_pull(args: argparse.Namespace) -> int:
    def work() -> int:
        project = require_project("contracts pull")
        own = _own_domains(project)
        pinned = pull(
            _registry(args),
            project.root,
            project.pulled,
            project.lock,
            args.subjects,
            args.domain,
            own,
        )
        written = regenerate(project)
        if args.format == "json":
            print(
                json.dumps(
                    [
                        {
                            "subject": p.subject,
                            "version": p.version,
                            "id": p.schema_id,
                            "path": p.path,
                        }
                        for p in pinned
                    ],
                    indent=2,
                )
            )
        else:
            for p in pinned:
                print(f"pulled {p.subject} version {p.version} -> {p.path}")
            print(f"models: {len(written)} file(s) in {project.relative(project.generated)}")
        return OK

    return _guard(args, "pull", work)


def run_check(args: argparse.Namespace) -> int:
    def work() -> int:
        project = require_project("contracts check")
        from choreograph.contracts.pulled import read_lock

        pinned = read_lock(project.lock)
        findings = gate(_registry(args), project.root, project.lock) if pinned else []
        diagnostics = [
            Diagnostic(
                f.pinned.path,
                1,
                1,
                "reader-broken" if f.severity == "error" else "newer-writer",
                f.severity,
                f.message,
                f.fix,
            )
            for f in findings
        ]
        writers = own_writers(project)
        registry = _registry(args)
        broken, readers = check_writers(registry, writers, args.env)
        diagnostics += [break_diagnostic(b, project.relative(project.contracts)) for b in broken]
        summary = (
            f"compared {len(pinned)} pinned reader(s) with the latest writers, and "
            f"{len(writers)} own contract(s) with {readers} registered reader(s), at "
            f"{args.registry}"
        )
        changed = {s: w for s, w in writers.items() if _changed(registry, s, w)}
        if changed:
            impact(registry, changed, args.env, args.tracker, args.token, args.format)
        code = finish(diagnostics, [], args.format, summary)
        return BREAKING if code == BREAKING else OK

    return _guard(args, "check", work)


def run_publish(args: argparse.Namespace) -> int:
    def work() -> int:
        project = require_project("contracts publish")
        reads = repository_reads(project, args.service)
        done = publish_readers(_registry(args), args.env, args.team, args.service, reads)
        if args.format == "json":
            print(json.dumps([{"subject": r.subject, "service": r.service, "reads": r.reads,
                               "registered_as": d} for r, d in zip(
                               sorted(reads, key=lambda r: (r.subject, r.service)), done,
                               strict=True)], indent=2))  # fmt: skip
        else:
            for read in sorted(reads, key=lambda r: (r.subject, r.service)):
                print(f"published {read.service} reads {read.subject}: {read.reads}")
            print(f"{len(done)} reader(s) of team {args.team} in {args.env} at {args.registry}")
        return OK

    return _guard(args, "publish", work)


def own_writers(project: Project) -> dict[str, dict[str, Any]]:
    """This repository's contracts, by subject, as it would register them."""
    if not project.contracts.is_dir():
        return {}
    catalog = load_catalog(project.contracts)
    return {f"{c.topic}-{c.fullname}": c.raw for c in catalog.contracts.values()}


def break_diagnostic(broken: Break, where: Path) -> Diagnostic:
    reader = broken.reader
    return Diagnostic(
        str(where), 1, 1, "consumer-broken", "error", broken.message(),
        f"keep what {reader.service} of team {reader.team} reads (deprecate it in the doc "
        f"first), or agree with them that they stop reading it and publish again "
        "(`choreograph contracts publish`)",
    )  # fmt: skip


def _changed(registry: Registry, subject: str, schema: dict[str, Any]) -> bool:
    """Whether `schema` differs from the latest registered version of `subject` (or is new)."""
    try:
        return fingerprint(registry.version(subject).schema) != fingerprint(schema)
    except PullError:
        return True


def impact(
    registry: Registry,
    changed: dict[str, dict[str, Any]],
    env: str | None,
    tracker_url: str | None,
    token: str | None,
    fmt: str,
) -> None:
    """For reviewers: who reads each changed contract and, with the tracker's URL, the open
    instances and value at risk per step of the processes that read it, as they stand now."""
    report: list[dict[str, Any]] = []
    tracker = tracker_from(tracker_url, token) if tracker_url else None
    for subject in sorted(changed):
        readers = readers_of(registry, subject, env)
        entry: dict[str, Any] = {
            "subject": subject,
            "readers": [
                {"team": r.team, "service": r.service, "env": r.env, "reads": r.reads}
                for r in readers
            ],
            "processes": [],
        }
        processes = sorted({r.service.split("-process-", 1)[1] for r in readers
                            if "-process-" in r.service})  # fmt: skip
        for process in processes if tracker is not None else []:
            assert tracker is not None
            try:
                reply = tracker.call("GET", "/api/instances/totals", process=process)
            except TrackerAway as err:
                print(f"impact: the tracker does not answer: {err}", file=sys.stderr)
                break
            totals = reply.json() if reply.status_code == 200 else {}
            entry["processes"].append({
                "process": process,
                "open_instances": open_instances(totals),
                "by_step": [r for r in totals.get("by_step", []) if r.get("count")],
            })  # fmt: skip
        report.append(entry)
    if fmt == "json":
        print(json.dumps({"impact": report}), file=sys.stderr)
        return
    for entry in report:
        print(f"impact: {entry['subject']} changes; {len(entry['readers'])} reader(s)",
              file=sys.stderr)  # fmt: skip
        for r in entry["readers"]:
            print(f"  read by team {r['team']}, {r['service']} ({r['env']}): {r['reads']}",
                  file=sys.stderr)  # fmt: skip
        for row in entry["processes"]:
            print(f"  process {row['process']}: {row['open_instances']} open instance(s)",
                  file=sys.stderr)  # fmt: skip
            for step in row["by_step"]:
                print(f"    at {step['step']} ({step['step_status']}): {step['count']}, value "
                      f"at risk {step['value']:,.2f}", file=sys.stderr)  # fmt: skip


def _own_domains(project: Project) -> set[str]:
    if not project.contracts.is_dir():
        return set()
    catalog = load_catalog(project.contracts)
    return {c.domain for c in catalog.contracts.values()} | set(catalog.policy.domain_owners)
