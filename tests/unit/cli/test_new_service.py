"""`choreograph new service`: the scaffold passes its own test, ruff and mypy as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from choreograph.cli.main import main

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def test_scaffolded_service_passes_its_test_lint_and_types(tmp_path: Path) -> None:
    services, tests = tmp_path / "services", tmp_path / "tests/unit"
    tests.mkdir(parents=True)
    for package in (tmp_path / "tests", tests):  # as in this repository
        (package / "__init__.py").write_text("")
    code = main(["new", "service", "fraud-checks", "--dir", str(services), "--tests", str(tests)])
    assert code == 0
    package = services / "fraud_checks"
    assert {p.name for p in package.iterdir()} == {"__init__.py", "service.py", "__main__.py"}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(services), str(REPO / "services")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    # The repository's rules, with the scaffold's folder as a source root like services/.
    roots = [str(services), str(REPO / "framework"), str(REPO / "services")]
    lint = subprocess.run(
        [str(BIN / "ruff"), "check", "--config", str(REPO / "pyproject.toml"),
         "--config", f"src = {roots!r}", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    types = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--ignore-missing-imports", str(package)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert types.returncode == 0, types.stdout
    from_service = (package / "service.py").read_text()
    assert 'def build(name: str = "fraud-checks")' in from_service


def test_refuses_bad_names_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--dir", str(tmp_path / "s"), "--tests", str(tmp_path / "t")]
    assert main(["new", "service", "Fraud_Checks", *args]) == 2
    assert "not a service name" in capsys.readouterr().err
    assert main(["new", "service", "class", *args]) == 2
    assert main(["new", "service", "loyalty", *args]) == 0
    (tmp_path / "s/loyalty/service.py").write_text("# edited by the team\n")
    assert main(["new", "service", "loyalty", *args]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert (tmp_path / "s/loyalty/service.py").read_text() == "# edited by the team\n"
