"""`choreograph machines status --service NAME`: a running service's state-machine instances,
per machine, version and state, read from the machines' changelogs (the stores' own record,
the latest value per key). With `--against MODULE:ATTR`, also which stored instances a new build
of the service could not run: the start-up check the engine makes after its restore, before the
deploy instead of at it (exit 1 when any would be stranded)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from choreograph.cli.cluster import add_bootstrap, reached
from choreograph.machines.machine import StateMachine, StrandedInstances
from choreograph.replay.source import read_topics
from choreograph.state.store import decode_value

CHANGELOG = ".changelog"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("machines", help="state-machine instances of a running service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="instances per machine, version and state")
    status.add_argument("--service", required=True, help="the service's name (its group id)")
    status.add_argument(
        "--machine", action="append", help="only this machine (repeat for more; default: all)"
    )
    status.add_argument(
        "--against",
        metavar="MODULE:ATTR",
        help="a new build of the service: list the stored instances it could not run (exit 1)",
    )
    status.add_argument("--format", choices=("text", "json"), default="text")
    add_bootstrap(status)
    status.set_defaults(run=run_status)


def stored(bootstrap: str, topic: str, client: dict[str, Any]) -> list[dict[str, Any]]:
    """The instances a machine's changelog holds: the latest value of each key, deleted ones
    left out."""
    latest: dict[bytes | None, bytes | None] = {}
    for record in read_topics(bootstrap, [topic], client=client):
        latest[record.key] = record.value
    found = []
    for value in latest.values():
        if value:
            instance = decode_value(value)
            if isinstance(instance, dict) and "state" in instance:
                found.append(instance)
    return found


def census(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Counts per version and state, open and ended apart, by version then state."""
    counts: dict[tuple[int, str], list[int]] = {}
    for instance in instances:
        row = counts.setdefault((instance.get("version", 1), instance["state"]), [0, 0])
        row[0 if instance.get("outcome") is None else 1] += 1
    return [
        {"version": version, "state": state, "open": n_open, "ended": n_ended}
        for (version, state), (n_open, n_ended) in sorted(counts.items())
    ]


def run_status(args: argparse.Namespace) -> int:
    config = reached(args, "machines status")
    if config is None:
        return 2
    from confluent_kafka.admin import AdminClient

    prefix = f"{args.service}.machine."
    topics = sorted(
        t
        for t in AdminClient(config.client_conf()).list_topics(timeout=30).topics
        if t.startswith(prefix) and t.endswith(CHANGELOG)
    )
    names = {t[len(prefix) : -len(CHANGELOG)]: t for t in topics}
    wanted = args.machine or sorted(names)
    missing = [m for m in wanted if m not in names]
    if missing or not names:
        known = ", ".join(sorted(names)) or "none"
        print(f"choreograph machines status: {args.service} has no stored machine "
              f"{', '.join(missing) or 'at all'} on {config.bootstrap_servers} "
              f"(machines with a changelog: {known})", file=sys.stderr)  # fmt: skip
        return 2
    builds: dict[str, StateMachine] = {}
    if args.against:
        from choreograph.cli.check import load

        service, _ = load(args.against)
        builds = {m.name: m for m in service.machines}
    report: list[dict[str, Any]] = []
    for name in wanted:
        instances = stored(config.bootstrap_servers, names[name], config.client_conf())
        entry: dict[str, Any] = {"machine": name, "instances": census(instances)}
        if args.against:
            build = builds.get(name)
            if build is None:
                entry["stranded"] = census([i for i in instances if i.get("outcome") is None])
                entry["refusal"] = f"the new build has no machine {name!r}"
            else:
                counts = build.stranded(instances)
                entry["stranded"] = [
                    {"version": v, "state": s, "open": n, "ended": 0}
                    for (v, s), n in sorted(counts.items())
                ]
                entry["refusal"] = str(StrandedInstances(build, counts)) if counts else ""
        report.append(entry)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        for entry in report:
            print(f"machine {entry['machine']}")
            print(f"  {'version':>7}  {'state':<24} {'open':>8} {'ended':>8}")
            for row in entry["instances"]:
                print(f"  {'v' + str(row['version']):>7}  {row['state']:<24} "
                      f"{row['open']:>8} {row['ended']:>8}")  # fmt: skip
            if entry.get("refusal"):
                print(f"  {args.against} would refuse to start: {entry['refusal']}")
            elif args.against:
                print(f"  {args.against} runs every stored instance")
    return 1 if any(entry.get("refusal") for entry in report) else 0
