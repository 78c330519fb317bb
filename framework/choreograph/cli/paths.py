"""Default folders of commands: the team repository's (`[tool.choreograph]`, see
choreograph.project) when the command runs in one, else the conventional ones."""

from __future__ import annotations

from pathlib import Path

from choreograph.contracts.catalog import Catalog, load_catalog, with_others
from choreograph.project import Project, ProjectError, find_project

FALLBACK = {
    "contracts": Path("schemas/avro"),
    "pulled": Path("schemas/pulled"),
    "processes": Path("processes"),
    "policies": Path("policies"),
}


def here() -> Project | None:
    """The project of the working directory; None outside one (or when its table is broken:
    the commands that need it say so through `require_project`)."""
    try:
        return find_project()
    except ProjectError:
        return None


def default(kind: str) -> Path:
    """The folder `kind` (contracts, pulled, processes, policies) as typed from here."""
    project = here()
    if project is None:
        return FALLBACK[kind]
    return project.relative(getattr(project, kind))


def generated() -> Path | None:
    project = here()
    return None if project is None else project.relative(project.generated)


NO_CONTRACTS = (
    "start a team repository with `choreograph init NAME` (it writes schemas/avro/<domain>/ "
    "with a first contract), or pass --root"
)


def catalog_of(schemas: Path) -> Catalog:
    """The catalog services and definitions are checked against: the contracts in `schemas`,
    and, when those are the project's own, the contracts it pulled from other teams."""
    catalog = load_catalog(schemas)
    project = here()
    if project is None or schemas.resolve() != project.contracts.resolve():
        return catalog
    if not project.pulled.is_dir():
        return catalog
    return with_others(catalog, load_catalog(project.pulled))


def importable() -> None:
    """Modules of the project (or, outside one, of the working directory) importable, as
    `python -m` makes them for the services themselves."""
    import sys

    project = here()
    folder = str((project.source_root if project is not None else Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
