"""`choreograph policies lint`: policies against the contracts they read (in the contract gate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from choreograph.cli.output import UNREADABLE, catalog_beside, finish
from choreograph.cli.paths import default
from choreograph.governance.policy_lint import lint_policies


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("policies", help="check policies (CEL rules) against contracts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lint = commands.add_parser("lint", help="compile and type-check every policy")
    lint.add_argument("--root", type=Path, default=default("policies"), help="policies folder")
    lint.add_argument("--schemas", type=Path, default=default("contracts"), help="contracts folder")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text")
    lint.set_defaults(run=run_lint)


def run_lint(args: argparse.Namespace) -> int:
    catalog = catalog_beside("policies", args.root, args.schemas)
    if catalog is None:
        return UNREADABLE
    return finish(
        lint_policies(args.root, catalog), [e.diagnostic() for e in catalog.errors], args.format
    )
