"""`choreograph init NAME`: a new team repository, ready for `new service`, tests and the gate.

Writes the files of choreograph.scaffold.team into NAME/ (or `--dir`), then generates the
models of its starter contract, so that the first `pytest` there passes. Refuses to write into
a folder that has files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from choreograph.cli.entry import package_version
from choreograph.cli.schemas import regenerate
from choreograph.project import KEYS, find_project
from choreograph.scaffold.names import BadName
from choreograph.scaffold.team import files, team


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "init",
        help="start a team repository",
        description="Start a team repository. Its pyproject.toml's [tool.choreograph] table "
        f"says where things are (keys: {', '.join(sorted(KEYS))}); see the generated file.",
    )
    parser.add_argument("name", help="the repository and distribution name, e.g. acme-loyalty")
    parser.add_argument("--dir", type=Path, help="where to write it (default: ./NAME)")
    parser.add_argument("--domain", help="the team's contract domain (default: NAME's last part)")
    parser.add_argument(
        "--namespace", help="Avro namespace of its contracts (default: com.<NAME's parts>)"
    )
    parser.add_argument("--owner", help="who owns the contracts (default: team-<domain>)")
    parser.set_defaults(run=run_init)


def _floor(version: str) -> str:
    """The release this choreograph is, as a dependency floor (no local or dev suffix)."""
    return version.split("+")[0].split(".dev")[0] if version[0].isdigit() else "0.1"


def run_init(args: argparse.Namespace) -> int:
    try:
        chosen = team(
            args.name,
            _floor(package_version()),
            domain=args.domain,
            namespace=args.namespace,
            owner=args.owner,
        )
    except BadName as err:
        print(f"choreograph init: {err}", file=sys.stderr)
        return 2
    target: Path = args.dir or Path(args.name)
    if target.exists() and any(target.iterdir()):
        print(
            f"choreograph init: {target} has files already; choose an empty or new folder (--dir)",
            file=sys.stderr,
        )
        return 2
    for relative, text in files(chosen).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project = find_project(target)
    assert project is not None  # the pyproject just written has the table
    generated = regenerate(project)
    print(f"wrote {target}/ ({len(files(chosen)) + len(generated)} files)")
    print(
        f"next: cd {target} && choreograph new service {chosen.domain.replace('_', '-')} && pytest"
    )
    return 0
