"""How every checking command ends: print findings, summarise, choose the exit code.

0 clean (warnings allowed), 1 an error finding (breaking change, policy error), 2 unreadable input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from choreograph.cli.paths import catalog_of
from choreograph.contracts.catalog import Catalog, ContractError
from choreograph.contracts.diagnostics import Diagnostic, render

OK, BREAKING, UNREADABLE = 0, 1, 2


def finish(
    diagnostics: Sequence[Diagnostic],
    unreadable: Sequence[Diagnostic],
    fmt: str,
    compared: str = "",
) -> int:
    """`compared`: what was checked against what, said on a clean run (so a check that
    compared nothing does not look like one that passed)."""
    everything = [*unreadable, *diagnostics]
    if everything or fmt == "json":
        print(render(everything, fmt))  # JSON: `[]` when clean, so tools can always parse it
    if fmt == "text":
        errors = sum(d.severity == "error" for d in everything)
        warnings = sum(d.severity == "warning" for d in everything)
        summary = f"{errors} error(s), {warnings} warning(s)"
        print(f"{summary}; {compared}" if compared else summary, file=sys.stderr)
    if unreadable:
        return UNREADABLE
    return BREAKING if any(d.severity == "error" for d in diagnostics) else OK


def catalog_beside(command: str, root: Path, schemas: Path) -> Catalog | None:
    """The contract catalog a check of the files under `root` reads; None (having said why)
    when either folder is missing or the catalog cannot be loaded."""
    for folder in (root, schemas):
        if not folder.is_dir():
            print(
                f"choreograph {command}: no folder at {folder}: start a team repository with "
                "`choreograph init NAME`, or pass the folder (--root, --schemas)",
                file=sys.stderr,
            )
            return None
    try:
        return catalog_of(schemas)
    except ContractError as err:
        print(f"choreograph {command}: {err}", file=sys.stderr)
        return None
