"""One fresh venv holding the built wheel, shared by the adoption tests: they run as a user does,
outside this repository."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
WHEELS = REPO / "dist/wheel"


@pytest.fixture(scope="package")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding the wheel and its dependencies, outside this repository."""
    wheels = sorted(WHEELS.glob("choreograph-*.whl"))
    if not wheels:
        pytest.fail(f"no wheel in {WHEELS}: run `make wheel` (make test does)")
    home = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    installed = subprocess.run(
        [str(home / "bin/python"), "-m", "pip", "install", "--quiet", str(wheels[-1]), "pytest"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    yield home
