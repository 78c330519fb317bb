"""A team repository's layout: the `[tool.choreograph]` table of its pyproject.toml.

The one place that says where a repository keeps its package, contracts, pulled contracts,
generated models, services, tests, processes and policies, so that `init`, `new service`,
`schemas codegen`, `contracts pull` and the contract gate agree. Paths are relative to the
folder of the pyproject.toml; the nearest one with the table, from the working directory up,
is the project.

    [tool.choreograph]
    package = "acme_loyalty"          # the team's importable package
    # the rest have these defaults:
    source_root = "."                 # the folder on sys.path that holds the package
    contracts = "schemas/avro"        # the team's own contracts, <domain>/<Record>.avsc
    pulled = "schemas/pulled"         # other teams' contracts, from `contracts pull`
    generated = "<package>/contracts" # models of both, from codegen
    services = "<package>"            # where `new service` writes a service package
    tests = "tests"
    processes = "processes"
    policies = "policies"
    lock = "contracts.lock"           # what `contracts pull` pinned
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYPROJECT = "pyproject.toml"
TABLE = "choreograph"
KEYS = frozenset(
    {
        "package",
        "source_root",
        "contracts",
        "pulled",
        "generated",
        "services",
        "tests",
        "processes",
        "policies",
        "lock",
    }
)


class ProjectError(ValueError):
    """The `[tool.choreograph]` table cannot be used; says what to change."""


@dataclass(frozen=True)
class Project:
    root: Path
    package: str
    source_root: Path
    contracts: Path
    pulled: Path
    generated: Path
    services: Path
    tests: Path
    processes: Path
    policies: Path
    lock: Path

    def module_of(self, folder: Path) -> str:
        """The dotted import name of a package folder under the source root."""
        try:
            relative = folder.resolve().relative_to(self.source_root.resolve())
        except ValueError:
            raise ProjectError(
                f"{folder} is not under the source root {self.source_root}: set "
                f"`source_root` in [tool.{TABLE}] of {self.root / PYPROJECT}"
            ) from None
        return ".".join(relative.parts)

    def relative(self, path: Path) -> Path:
        """`path` as the user would type it from the working directory."""
        try:
            return path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return path

    @property
    def contract_roots(self) -> list[Path]:
        """Own contracts first, then pulled ones that exist."""
        return [p for p in (self.contracts, self.pulled) if p == self.contracts or p.is_dir()]


def find_project(start: Path | None = None) -> Project | None:
    """The project of the nearest pyproject.toml with a `[tool.choreograph]` table."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PYPROJECT
        if not candidate.is_file():
            continue
        try:
            data = tomllib.loads(candidate.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ProjectError(f"{candidate}: {err}") from None
        table = data.get("tool", {}).get(TABLE)
        if table is not None:
            return _project(folder, table, candidate)
    return None


def _project(root: Path, table: Any, where: Path) -> Project:
    if not isinstance(table, dict):
        raise ProjectError(f"{where}: [tool.{TABLE}] must be a table")
    unknown = set(table) - KEYS
    if unknown:
        raise ProjectError(
            f"{where}: [tool.{TABLE}] has no setting {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KEYS))}"
        )
    package = table.get("package")
    if not isinstance(package, str) or not package.isidentifier():
        raise ProjectError(
            f"{where}: [tool.{TABLE}] needs `package`, the team's importable package name "
            '(e.g. package = "acme_loyalty")'
        )
    for key, value in table.items():
        if not isinstance(value, str):
            raise ProjectError(f"{where}: [tool.{TABLE}] {key} must be a string")
    source_root = root / table.get("source_root", ".")

    def path(key: str, default: Path) -> Path:
        return root / table[key] if key in table else default

    package_dir = source_root / package
    return Project(
        root=root,
        package=package,
        source_root=source_root,
        contracts=path("contracts", root / "schemas/avro"),
        pulled=path("pulled", root / "schemas/pulled"),
        generated=path("generated", package_dir / "contracts"),
        services=path("services", package_dir),
        tests=path("tests", root / "tests"),
        processes=path("processes", root / "processes"),
        policies=path("policies", root / "policies"),
        lock=path("lock", root / "contracts.lock"),
    )


def require_project(command: str) -> Project:
    """The project here, or a ProjectError that says how to start one."""
    project = find_project()
    if project is None:
        raise ProjectError(
            f"`choreograph {command}` works in a team repository, and there is none here (no "
            f"{PYPROJECT} with a [tool.{TABLE}] table in {Path.cwd()} or above): start one "
            "with `choreograph init NAME`, or run it where one is"
        )
    return project
