"""`choreograph processes`: check process definitions against the contracts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from choreograph.cli.output import UNREADABLE, finish
from choreograph.contracts.catalog import ContractError, load_catalog
from choreograph.process.definition import load_definitions
from choreograph.process.lint import lint_definitions


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("processes", help="check process (saga) definitions")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lint = commands.add_parser("lint", help="definitions against schemas/avro and each other")
    lint.add_argument("--root", type=Path, default=Path("processes"), help="definitions folder")
    lint.add_argument("--schemas", type=Path, default=Path("schemas/avro"), help="contracts folder")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text")
    lint.set_defaults(run=run_lint)


def run_lint(args: argparse.Namespace) -> int:
    for folder in (args.root, args.schemas):
        if not folder.is_dir():
            print(f"choreograph processes: no folder at {folder}", file=sys.stderr)
            return UNREADABLE
    try:
        catalog = load_catalog(args.schemas)
    except ContractError as err:
        print(f"choreograph processes: {err}", file=sys.stderr)
        return UNREADABLE
    loaded, errors = load_definitions(args.root)
    unreadable = [e.diagnostic() for e in [*catalog.errors, *errors]]
    return finish(lint_definitions(loaded, catalog), unreadable, args.format)
