"""`choreograph new service NAME`: scaffold a service in the team repository.

Writes the service package under the project's `services` folder (its `[tool.choreograph]`
table; see choreograph.project) and a TestKit test under its `tests` folder that passes as
generated. The service handles one of the repository's contracts (`--on`, by default the first
of its own), so it imports the team's generated models, never another repository's.
It refuses to overwrite anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from string import Template

from choreograph.contracts.catalog import Contract, load_catalog
from choreograph.project import Project, ProjectError, require_project
from choreograph.scaffold.names import BadName, package_name

SERVICE = Template('''\
"""The $name service.

Handles $short from $topic; replace the handler with the team's own rules.
After changing the contracts, `choreograph schemas codegen` regenerates the models
in $models.
"""

from __future__ import annotations

from choreograph import Context, Service
$separator$models_import

INPUTS = ["$topic"]


def build(name: str = "$name") -> Service:
    service = Service(name, INPUTS, stores=["seen"])

    @service.handle($short)
    def on_$handler(ctx: Context, event: $short) -> None:
        seen = ctx.store("seen")
        count = (seen.get(ctx.key) or {}).get("count", 0)
        seen.put(ctx.key, {"count": count + 1})

    return service
''')

MAIN = Template('''\
"""Run the $name service until SIGTERM; settings from CHOREOGRAPH_* variables
(`choreograph settings` lists them)."""

from $module.service import build

if __name__ == "__main__":
    build().run()
''')

TEST = Template('''\
"""The $name service in the in-memory TestKit."""

from __future__ import annotations

from choreograph import TestKit, sample_event
$separator$models_import
from $module.service import build


def test_counts_events_per_key() -> None:
    kit = TestKit(build())
    event = sample_event($short)
    kit.send(event, "k-1")
    kit.send(event, "k-1")
    assert kit.store("seen").get("k-1") == {"count": 2}
    assert kit.outputs == []
''')


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("new", help="scaffold new things from templates")
    commands = parser.add_subparsers(dest="command", required=True, metavar="WHAT")
    service = commands.add_parser("service", help="a team service and its test")
    service.add_argument("name", help="service name, e.g. loyalty or fraud-checks")
    service.add_argument(
        "--on", metavar="RECORD", help="the contract it handles (full or short name; "
        "default: the first of the repository's own)"
    )  # fmt: skip
    service.add_argument(
        "--dir", type=Path, help="where service packages go (default: `services` of the project)"
    )
    service.add_argument("--tests", type=Path, help="where tests go (default: the project's)")
    service.set_defaults(run=run_new_service)


def _chosen(project: Project, wanted: str | None) -> Contract:
    contracts: list[Contract] = []
    for root in project.contract_roots:
        if root.is_dir():
            catalog = load_catalog(root)
            contracts += sorted(catalog.contracts.values(), key=lambda c: c.fullname)
    if not contracts:
        raise ProjectError(
            f"there is no contract in {project.relative(project.contracts)} for the service to "
            "handle: add one (<domain>/<Record>.avsc) or pull another team's "
            "(`choreograph contracts pull SUBJECT`)"
        )
    if wanted is None:
        return contracts[0]
    found = [c for c in contracts if wanted in (c.fullname, c.schema.name)]
    if not found:
        raise ProjectError(
            f"no contract {wanted!r} here; there are: {', '.join(c.fullname for c in contracts)}"
        )
    return found[0]


def run_new_service(args: argparse.Namespace) -> int:
    try:
        package = package_name(args.name)
        project = require_project("new service")
        contract = _chosen(project, args.on)
        services = args.dir or project.services
        tests = args.tests or project.tests
        module = ".".join(filter(None, [project.module_of(services), package]))
        models = f"{project.module_of(project.generated)}.{contract.domain}"
    except (BadName, ProjectError) as err:
        print(f"choreograph new: {err}", file=sys.stderr)
        return 2
    if not (project.generated / f"{contract.domain}.py").exists():
        print(
            f"choreograph new: the models of {contract.domain} are not generated yet: run "
            "`choreograph schemas codegen` first",
            file=sys.stderr,
        )
        return 2
    values = {
        "separator": "" if _inside(project) else "\n",  # isort: choreograph's party, or not
        "models_import": f"from {models} import {contract.schema.name}",
        "name": args.name,
        "module": module,
        "models": models,
        "short": contract.schema.name,
        "topic": contract.topic,
        "handler": _snake(contract.schema.name),
    }
    files = {
        services / package / "__init__.py": f'"""The {args.name} service."""\n',
        services / package / "service.py": SERVICE.substitute(values),
        services / package / "__main__.py": MAIN.substitute(values),
        # No __init__.py: tests are collected by path (--import-mode=importlib), so a test
        # folder named like the service never shadows the service's package.
        tests / package / "test_service.py": TEST.substitute(values),
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        print(f"choreograph new: would overwrite {', '.join(existing)}", file=sys.stderr)
        return 2
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {project.relative(path)}")
    print(f"test it: pytest {project.relative(tests / package)}   run it: python -m {module}")
    return 0


def _inside(project: Project) -> bool:
    """Whether choreograph itself is part of the project (its own repository)."""
    import choreograph

    return Path(choreograph.__file__).resolve().is_relative_to(project.root.resolve())


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
