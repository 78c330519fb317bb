"""`choreograph check module:attr ...`: build services as the runtime would and check how they
are put together, for CI. A service's own construction checks handled types against its inputs
and machines' names; this adds what needs the service whole: every input and output topic has a
contract in the catalog, every handled type is one of them, and every state machine its module
defines is added to it."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from choreograph.cli.paths import catalog_of, default, importable
from choreograph.machines.machine import StateMachine
from choreograph.runtime.errors import TopologyError
from choreograph.runtime.service import Service


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("check", help="check how services are put together (for CI)")
    parser.add_argument(
        "services", nargs="+", metavar="MODULE:ATTR", help="a Service, or a function building one"
    )
    parser.add_argument("--schemas", type=Path, default=default("contracts"))
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run_check)


def load(spec: str) -> tuple[Service, list[str]]:
    """The service, and problems only the module can show (machines defined, never added)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    found: Any = getattr(module, attr or "build")
    service = found() if callable(found) and not isinstance(found, Service) else found
    if not isinstance(service, Service):
        raise TopologyError(f"{spec} is not a Service nor a function that builds one")
    added = {id(v) for m in service.machines for v in (m, *m.older.values())}
    forgotten = [
        f"{service.name}: state machine {value.name!r} ({module_name}.{name}) is defined but "
        "not added; service.add_machine(...) it, or it never runs"
        for name, value in vars(module).items()
        if isinstance(value, StateMachine) and id(value) not in added
    ]
    return service, forgotten


def problems(service: Service, topics: set[str], contracts: set[str]) -> list[str]:
    found = []
    for topic in service.inputs + service.outputs:
        if topics and topic not in topics and not topic.endswith(".repartition"):
            found.append(f"{service.name}: no contract in the catalog is published on {topic}")
    for name in service.models:
        if contracts and name not in contracts:
            found.append(f"{service.name}: handles {name}, which has no contract in the catalog")
    return found


def run_check(args: argparse.Namespace) -> int:
    importable()
    catalog = catalog_of(args.schemas) if args.schemas.is_dir() else None
    topics = {c.topic for c in catalog.contracts.values()} if catalog else set()
    contracts = set(catalog.contracts) if catalog else set()
    failed = 0
    results: list[dict[str, Any]] = []
    for spec in args.services:
        try:
            service, forgotten = load(spec)
        except (TopologyError, ImportError, AttributeError, ValueError) as err:
            results.append({"spec": spec, "ok": False, "problems": [str(err)]})
            if args.format == "text":
                print(f"{spec}: {err}", file=sys.stderr)
            failed += 1
            continue
        found = forgotten + problems(service, topics, contracts)
        failed += bool(found)
        results.append({
            "spec": spec, "service": service.name, "ok": not found, "problems": found,
            "inputs": service.inputs, "outputs": service.outputs,
            "handled_types": sorted(service.models), "machines": [m.name for m in service.machines],
        })  # fmt: skip
        if args.format == "json":
            continue
        for problem in found:
            print(problem, file=sys.stderr)
        if not found:
            print(
                f"ok  {service.name}: {len(service.inputs)} inputs, {len(service.outputs)} "
                f"outputs, {len(service.models)} handled types, {len(service.machines)} machines"
            )
    if args.format == "json":
        print(json.dumps(results, indent=2))
    return 1 if failed else 0
