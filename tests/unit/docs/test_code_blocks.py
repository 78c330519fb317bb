"""Every Python code block in docs/ and the README runs, and passes mypy strict: an example a
user copies works as shown. A block whose first line is `# continues ...` follows the first
block of its page (the page's running example)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PAGES = sorted([*REPO.glob("docs/*.md"), REPO / "README.md"])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        first = ""
        for n, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            code = match.group(1)
            if code.startswith("# continues"):
                code = first + "\n" + code
            first = first or code
            found.append((f"{page.name}:{n}", code))
    return found


EXAMPLES = examples()


def write(tmp_path: Path, name: str, code: str) -> Path:
    module = tmp_path / (re.sub(r"\W", "_", name).lower() + ".py")
    module.write_text(code)
    return module


def test_there_are_examples_to_check() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    runpy.run_path(str(write(tmp_path, name, code)), run_name="docs_example")


@pytest.mark.slow
def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    files = [str(write(tmp_path, name, code)) for name, code in EXAMPLES]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
         *files],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
