"""`choreograph contracts`: other teams' contracts in this repository (see contracts.pulled).

    contracts pull SUBJECT...      pin the latest versions, write them, regenerate the models
    contracts pull --domain D      every subject of domain D
    contracts pull                 every pinned subject again, at its pinned version
    contracts check                the gate: pinned readers against the latest writers

Registry address and credentials as services take them (CHOREOGRAPH_REGISTRY_*), or --registry.
Exit codes: 0 clean, 1 a producer's change breaks this reader, 2 unreadable or unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from choreograph.cli.cluster import add_registry, cluster_config
from choreograph.cli.output import BREAKING, OK, UNREADABLE, finish
from choreograph.cli.schemas import regenerate
from choreograph.contracts.catalog import load_catalog
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.contracts.pulled import PullError, Registry, gate, pull
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

    check = commands.add_parser("check", help="pinned readers against the latest writers")
    add_registry(check)
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.set_defaults(run=run_check)


def _registry(args: argparse.Namespace) -> Registry:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return Registry(SchemaRegistryClient(cluster_config(args).registry_conf()))


def _guard(args: argparse.Namespace, command: str, work: Any) -> int:
    try:
        code: int = work()
        return code
    except (ProjectError, PullError) as err:
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
        summary = (
            f"compared {len(pinned)} pinned reader(s) with the latest writers at {args.registry}"
        )
        code = finish(diagnostics, [], args.format, summary)
        return BREAKING if code == BREAKING else OK

    return _guard(args, "check", work)


def _own_domains(project: Project) -> set[str]:
    if not project.contracts.is_dir():
        return set()
    catalog = load_catalog(project.contracts)
    return {c.domain for c in catalog.contracts.values()} | set(catalog.policy.domain_owners)
