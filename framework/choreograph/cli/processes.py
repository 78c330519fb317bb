"""`choreograph processes`: check process definitions against the contracts, and move open
instances to a newer version through the saga tracker (`migrate`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from choreograph.cli.instances import connection_options, filter_options, query_of, run_batch
from choreograph.cli.instances import run as run_with_tracker
from choreograph.cli.output import UNREADABLE, catalog_beside, finish
from choreograph.cli.paths import default
from choreograph.contracts.history import GitError, git, toplevel
from choreograph.process.change_control import (
    affected_steps,
    check_in_place,
    describe,
    render_diff,
)
from choreograph.process.definition import (
    DefinitionError,
    ProcessDefinition,
    load_definitions,
    parse_definition,
)
from choreograph.process.lint import lint_definitions


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("processes", help="check process (saga) definitions")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lint = commands.add_parser("lint", help="definitions against schemas/avro and each other")
    lint.add_argument("--root", type=Path, default=default("processes"), help="definitions folder")
    lint.add_argument("--schemas", type=Path, default=default("contracts"), help="contracts folder")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text")
    lint.set_defaults(run=run_lint)
    check = commands.add_parser(
        "check", help="released versions (on the base ref) must not change in place"
    )
    check.add_argument("--against", required=True, help="base git ref, e.g. origin/main")
    check.add_argument("--root", type=Path, default=default("processes"), help="definitions folder")
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.set_defaults(run=run_check)
    diff = commands.add_parser("diff", help="what changes from one definition to another")
    diff.add_argument("before", help="a file, or REF:PATH for a version in git")
    diff.add_argument("after", help="a file, or REF:PATH")
    diff.add_argument(
        "--tracker", help="the saga tracker's URL: the open instances the change touches"
    )
    diff.add_argument("--token", help="a bearer token for the tracker")
    diff.add_argument("--format", choices=("text", "json"), default="text")
    diff.set_defaults(run=run_diff)
    migrate = commands.add_parser(
        "migrate",
        help="move open instances to a newer version: each checked on its history, the safe "
        "ones moved as one audited batch",
    )
    migrate.add_argument("process", help="the process definition's name")
    migrate.add_argument("--to", dest="to_version", type=int, required=True,
                         help="the version to move to (released to the tracker)")  # fmt: skip
    migrate.add_argument("--reason", required=True, help="why: it goes to the audit log")
    filter_options(migrate, process=False)
    migrate.add_argument("--dry-run", action="store_true", help="check each; move nothing")
    migrate.add_argument("--yes", action="store_true", help="move the safe ones without asking")
    migrate.add_argument("--rate", type=int, default=50, help="moves a second (50)")
    migrate.add_argument("--wait", action="store_true", help="follow the batch to its end")
    connection_options(migrate)
    migrate.set_defaults(run=run_migrate, action="migrate", action_step=None)


def run_lint(args: argparse.Namespace) -> int:
    catalog = catalog_beside("processes", args.root, args.schemas)
    if catalog is None:
        return UNREADABLE
    loaded, errors = load_definitions(args.root)
    unreadable = [e.diagnostic() for e in [*catalog.errors, *errors]]
    return finish(lint_definitions(loaded, catalog), unreadable, args.format)


def run_check(args: argparse.Namespace) -> int:
    try:
        repo = toplevel(args.root if args.root.is_dir() else Path.cwd())
        folder = str(args.root.resolve().relative_to(repo))
        found = check_in_place(repo, args.against, folder)
    except (GitError, ValueError) as err:
        print(f"choreograph processes: {err}", file=sys.stderr)
        return UNREADABLE
    return finish(found, [], args.format, f"released versions on {args.against} unchanged")


def _definition(spec: str) -> ProcessDefinition:
    path = Path(spec)
    if not path.exists() and ":" in spec:  # REF:PATH, a version in git
        ref, _, name = spec.partition(":")
        return parse_definition(git(Path.cwd(), "show", f"{ref}:{name}"), spec).definition
    return parse_definition(path.read_text(), spec).definition


def run_diff(args: argparse.Namespace) -> int:
    try:
        before, after = _definition(args.before), _definition(args.after)
    except (OSError, DefinitionError, GitError) as err:
        print(f"choreograph processes: {err}", file=sys.stderr)
        return UNREADABLE
    touched = _impact(before, after, args) if args.tracker else None
    if args.format == "json":
        print(json.dumps({
            "process": after.name, "before": {"version": before.version, "source": args.before},
            "after": {"version": after.version, "source": args.after},
            "changes": describe(before, after), "impact": touched,
        }, indent=2))  # fmt: skip
        return 0
    print(render_diff(before, after, (args.before, args.after)))
    if touched is not None:
        print(f"impact: {touched['open_instances']} open instance(s) of {after.name}; at the "
              f"steps the change touches ({', '.join(touched['steps']) or 'none'}):")  # fmt: skip
        for row in touched["by_step"]:
            print(f"  {row['step']} ({row['step_status']}): {row['count']} instance(s), value "
                  f"at risk {row['value']:,.2f}")  # fmt: skip
    return 0


def _impact(
    before: ProcessDefinition, after: ProcessDefinition, args: argparse.Namespace
) -> dict[str, Any] | None:
    """Open instances of the process, and those at the steps the change touches (as the tracker
    has them now), for the reviewers of a definition change."""
    from choreograph.cli.tracker_client import TrackerAway, open_instances, tracker_from

    steps = affected_steps(before, after)
    try:
        reply = tracker_from(args.tracker, args.token).call(
            "GET", "/api/instances/totals", process=before.name
        )
    except TrackerAway as err:
        print(f"choreograph processes: impact unknown: {err}", file=sys.stderr)
        return None
    if reply.status_code != 200:
        print(f"choreograph processes: impact unknown: the tracker answered "
              f"{reply.status_code}", file=sys.stderr)  # fmt: skip
        return None
    totals = reply.json()
    rows = [r for r in totals.get("by_step", []) if r.get("step") in steps and r.get("count")]
    return {"open_instances": open_instances(totals), "steps": steps, "by_step": rows}


def run_migrate(args: argparse.Namespace) -> int:
    """The tracker checks every chosen instance (running ones unless --status says otherwise):
    its recorded history run under its version and the new one. The dry run lists each with
    its verdict; the run moves the safe ones, as one batch, and names the rest."""
    query = {**query_of(args), "process": args.process}
    query.setdefault("status", "running")
    return run_with_tracker(
        args,
        lambda tracker: run_batch(
            tracker, args, query, extra={"to_version": args.to_version}, show=_print_migration
        ),
    )


def _print_migration(plan: dict[str, object], fmt: str, dry_run: bool) -> None:
    if fmt == "json":
        print(json.dumps(plan))
        return
    listed = plan.get("instances")
    print(f"moving to v{plan['to_version']}: {plan['safe']} of {plan['chosen']} instance(s) "
          f"chosen by {plan['query']} are safe")  # fmt: skip
    for verdict in listed if isinstance(listed, list) else []:
        said = "safe" if verdict["safe"] else "not safe"
        print(f"  {verdict['correlation_id']}  v{verdict['from_version']}  {said}: "
              f"{verdict['reason']}")  # fmt: skip
    if dry_run:
        print("dry run: nothing moved", file=sys.stderr)
    elif plan["not_safe"]:
        print(f"{plan['not_safe']} not safe: left on their version", file=sys.stderr)
