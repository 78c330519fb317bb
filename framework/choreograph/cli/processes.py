"""`choreograph processes`: check process definitions against the contracts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from choreograph.cli.output import UNREADABLE, catalog_beside, finish
from choreograph.cli.paths import default
from choreograph.contracts.history import GitError, git, toplevel
from choreograph.process.change_control import check_in_place, describe, render_diff
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
    diff.add_argument("--format", choices=("text", "json"), default="text")
    diff.set_defaults(run=run_diff)


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
    if args.format == "json":
        print(json.dumps({
            "process": after.name, "before": {"version": before.version, "source": args.before},
            "after": {"version": after.version, "source": args.after},
            "changes": describe(before, after),
        }, indent=2))  # fmt: skip
        return 0
    print(render_diff(before, after, (args.before, args.after)))
    return 0
