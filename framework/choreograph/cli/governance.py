"""`choreograph governance codeowners [--check]`: CODEOWNERS from the owners of every process,
schema domain and policy (see choreograph.governance.owners)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from choreograph.cli.output import UNREADABLE, finish
from choreograph.contracts.catalog import ContractError, load_catalog
from choreograph.governance.owners import Layout, codeowners, owned


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("governance", help="owners and review rules")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    owners = commands.add_parser("codeowners", help="write CODEOWNERS from the declared owners")
    owners.add_argument("--root", type=Path, default=Path("."), help="repository root")
    owners.add_argument("--out", type=Path, default=Path(".github/CODEOWNERS"))
    owners.add_argument(
        "--org", default=os.environ.get("CHOREOGRAPH_GITHUB_ORG", "acme"),
        help="GitHub organisation of the teams (owners are written @ORG/TEAM)",
    )  # fmt: skip
    owners.add_argument("--check", action="store_true", help="fail if the file is stale")
    owners.add_argument("--format", choices=("text", "json"), default="text")
    owners.set_defaults(run=run_codeowners)


def run_codeowners(args: argparse.Namespace) -> int:
    layout = Layout()
    try:
        catalog = load_catalog(args.root / layout.schemas, args.root)
    except ContractError as err:
        print(f"choreograph governance: {err}", file=sys.stderr)
        return UNREADABLE
    rules, missing = owned(args.root, catalog, layout)
    text = codeowners(rules, args.org)
    target = args.out if args.out.is_absolute() else args.root / args.out
    if missing:
        return finish(missing, [], args.format)

    def said(state: str, line: str) -> None:
        if args.format == "json":
            owners = [{"pattern": k, "owners": v} for k, v in sorted(rules.items())]
            print(json.dumps({"file": str(args.out), "state": state, "rules": owners}, indent=2))
        else:
            print(line, file=sys.stderr if state == "stale" else sys.stdout)

    if args.check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            said("stale", f"{args.out} is stale: run `choreograph governance codeowners` and "
                 "commit it")  # fmt: skip
            return 1
        said("current", f"{args.out} matches the owners ({len(rules)} rules)")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    said("written", f"wrote {args.out} ({len(rules)} rules)")
    return 0
