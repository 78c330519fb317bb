"""The runtime's modules import each other without a circle: each can be imported first, alone,
and the graph of their module-level imports (not those for type checking only) is acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import choreograph

ROOT = Path(choreograph.__file__).parent
PACKAGES = ("runtime", "state", "contracts")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """Modules of choreograph that `path` imports when it is imported (top-level statements,
    outside `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("choreograph.")}


MODULES = {
    module_name(path): path for package in PACKAGES for path in (ROOT / package).glob("*.py")
}


def test_module_level_imports_have_no_circle() -> None:
    graph = {name: runtime_imports(path) & set(MODULES) for name, path in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert "choreograph.runtime.engine" in graph and "choreograph.runtime.task" in graph


@pytest.mark.parametrize("module", ["choreograph.runtime.engine", "choreograph.runtime.task",
                                    "choreograph.runtime.context", "choreograph.runtime.service",
                                    "choreograph.state.partition_state"])  # fmt: skip
def test_each_module_imports_first_and_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
