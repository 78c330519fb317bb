"""`choreograph deployed` and `choreograph can-i-deploy`: what runs where, and whether a service
may join it (see choreograph.contracts.consumers).

    choreograph deployed points --to prod --version 1.4.2 --team loyalty
    choreograph can-i-deploy points --to prod --team loyalty

Run in the service's team repository: what it writes are the repository's own contracts, what
it reads its pinned readers and its process definitions' fields. `can-i-deploy` checks both
directions against ENV: its writers against every reader published for ENV, its readers against
the writers the services deployed in ENV run. Exit codes: 0 it may, 1 it may not (the reasons
as text, JSON or GitHub annotations), 2 unreadable or the registry unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from choreograph.cli.cluster import add_registry
from choreograph.cli.contracts import _guard, _registry, break_diagnostic, own_writers
from choreograph.cli.output import BREAKING, OK, finish
from choreograph.contracts.consumers import (
    Break,
    ConsumerError,
    Deployment,
    Reader,
    breaks,
    check_writers,
    deployments,
    record_deployment,
    repository_reads,
    schema_by_id,
)
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.contracts.pulled import Registry, read_lock
from choreograph.project import Project, require_project


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    done = groups.add_parser(
        "deployed", help="record that a service runs in an environment, and what it writes"
    )
    done.add_argument("service", help="the service's name")
    done.add_argument("--to", dest="env", required=True, help="the environment, e.g. prod")
    done.add_argument("--version", required=True, help="the version (image tag) deployed")
    done.add_argument("--team", default="", help="the team that owns it")
    add_registry(done)
    done.add_argument("--format", choices=("text", "json"), default="text")
    done.set_defaults(run=run_deployed)

    may = groups.add_parser(
        "can-i-deploy", help="may this service run in an environment: readers and writers there"
    )
    may.add_argument("service", help="the service's name")
    may.add_argument("--to", dest="env", required=True, help="the environment, e.g. prod")
    may.add_argument("--team", default="", help="the team that owns it (to name it)")
    add_registry(may)
    may.add_argument("--format", choices=("text", "json", "github"), default="text")
    may.set_defaults(run=run_can_i_deploy)


def run_deployed(args: argparse.Namespace) -> int:
    def work() -> int:
        project = require_project("deployed")
        registry = _registry(args)
        writes = _registered_ids(registry, own_writers(project))
        reads = {pin.subject: pin.schema_id for pin in read_lock(project.lock).values()}
        deployment = Deployment(args.env, args.service, args.team, args.version, writes, reads)
        record_deployment(registry, deployment)
        if args.format == "json":
            recorded = {"env": args.env, "service": args.service, "version": args.version,
                        "writes": writes, "reads": reads}  # fmt: skip
            print(json.dumps(recorded))
        else:
            print(f"{args.service} {args.version} recorded in {args.env}: writes "
                  f"{len(writes)} subject(s), reads {len(reads)}")  # fmt: skip
        return OK

    return _guard(args, "deployed", work)


def run_can_i_deploy(args: argparse.Namespace) -> int:
    def work() -> int:
        project = require_project("can-i-deploy")
        registry = _registry(args)
        writers = own_writers(project)
        broken, readers = check_writers(registry, writers, args.env)
        where = project.relative(project.contracts)
        diagnostics = [break_diagnostic(b, where) for b in broken]
        running = [d for d in deployments(registry, args.env) if d.service != args.service]
        mine, checked = _readers_against(project, args, registry, running)
        diagnostics += mine
        summary = (
            f"{args.service} in {args.env}: {len(writers)} contract(s) it writes against "
            f"{readers} reader(s) there; {checked} subject(s) it reads against the writers of "
            f"{len(running)} deployed service(s)"
        )
        code = finish(diagnostics, [], args.format, summary)
        if args.format == "text":
            verdict = "no" if code == BREAKING else "yes"
            print(f"can {args.service} be deployed to {args.env}? {verdict}", file=sys.stderr)
        return BREAKING if code == BREAKING else OK

    return _guard(args, "can-i-deploy", work)


def _readers_against(
    project: Project, args: argparse.Namespace, registry: Registry, running: list[Deployment]
) -> tuple[list[Diagnostic], int]:
    """This service's readers against the writer each deployed producer runs."""
    writers: dict[str, tuple[Deployment, int]] = {}
    for deployment in running:
        for subject, schema_id in deployment.writes.items():
            writers[subject] = (deployment, int(schema_id))
    found: list[Diagnostic] = []
    checked = 0
    for read in repository_reads(project, args.service):
        if read.subject not in writers:
            found.append(Diagnostic(
                str(project.relative(project.lock)), 1, 1, "no-producer", "warning",
                f"{read.service} reads {read.subject}, which no service deployed in {args.env} "
                "writes", "deploy its producer first, or record it (`choreograph deployed`)",
            ))  # fmt: skip
            continue
        checked += 1
        producer, schema_id = writers[read.subject]
        me = Reader(args.env, args.team or "this team", read.service, read.subject, read.reads,
                    read.schema, "this repository")  # fmt: skip
        label = f"what {producer.service} {producer.version} writes in {args.env}"
        for problem in breaks(me, schema_by_id(registry, schema_id), label):
            found.append(_reader_diagnostic(project, problem))
    return found, checked


def _reader_diagnostic(project: Project, broken: Break) -> Diagnostic:
    return Diagnostic(
        str(project.relative(project.lock)), 1, 1, "reader-broken", "error", broken.message(),
        "pull the producer's current version and adapt (`choreograph contracts pull`), or wait "
        "for the producer to restore what it dropped",
    )  # fmt: skip


def _registered_ids(registry: Registry, writers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The registry's id of each contract as this repository has it: what the service writes."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    ids = {}
    for subject, schema in sorted(writers.items()):
        try:
            found = registry.client.lookup_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as err:
            raise ConsumerError(
                f"{subject} as this repository has it is not registered ({err}): register the "
                "contracts first (`choreograph schemas register`)"
            ) from None
        ids[subject] = int(found.schema_id)
    return ids
