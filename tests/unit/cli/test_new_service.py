"""`choreograph new service`: the scaffold passes its own test, ruff and mypy as generated."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from choreograph.cli.main import main

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_scaffolded_service_works_as_a_new_user_runs_it(tmp_path: Path) -> None:
    """Exactly what a user does, in a fresh copy with its own venv (`make venv`) and no
    PYTHONPATH: scaffold, test, run, lint and type-check, with nothing reinstalled."""
    project = tmp_path / "project"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in listed:
        source = REPO / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=project, env={**env, **extra}, capture_output=True, text=True, timeout=600
        )

    made = run("make", "venv")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    bin_ = project / ".venv/bin"
    scaffold = run(str(bin_ / "choreograph"), "new", "service", "loyalty")
    assert scaffold.returncode == 0, scaffold.stderr
    tested = run(str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/unit/loyalty")  # fmt: skip
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout + tested.stderr
    # It starts as a module: with no broker there, it says so and exits 2 (not an import error).
    started = run(str(bin_ / "python"), "-m", "loyalty", CHOREOGRAPH_BOOTSTRAP="127.0.0.1:9",
                  CHOREOGRAPH_STATE_DIR=str(tmp_path / "state"))  # fmt: skip
    assert started.returncode == 2, started.stdout + started.stderr
    assert "CHOREOGRAPH_BOOTSTRAP" in started.stdout + started.stderr
    linted = run(str(bin_ / "ruff"), "check", ".")
    assert linted.returncode == 0, linted.stdout
    typed = run(str(bin_ / "mypy"))
    assert typed.returncode == 0, typed.stdout
    # make lint's mypy covers the new service: a type error in it is found.
    service = project / "services/loyalty/service.py"
    service.write_text(service.read_text() + "\n\nMISTAKE: int = 'not a number'\n")
    typed = run(str(bin_ / "mypy"))
    assert typed.returncode == 1 and "services/loyalty/service.py" in typed.stdout, typed.stdout


def test_refuses_bad_names_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["init", "acme-loyalty", "--dir", str(tmp_path / "team")]) == 0
    monkeypatch.chdir(tmp_path / "team")
    assert main(["new", "service", "Fraud_Checks"]) == 2
    assert "not a usable name" in capsys.readouterr().err
    assert main(["new", "service", "class"]) == 2
    assert main(["new", "service", "loyalty"]) == 0
    service = tmp_path / "team/acme_loyalty/loyalty/service.py"
    assert "from acme_loyalty.contracts.loyalty import LoyaltyRequested" in service.read_text()
    assert not (tmp_path / "team/tests/loyalty/__init__.py").exists()  # would shadow the service
    service.write_text("# edited by the team\n")
    assert main(["new", "service", "loyalty"]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert service.read_text() == "# edited by the team\n"


def test_names_the_contract_to_handle_and_refuses_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["init", "acme-loyalty", "--dir", str(tmp_path / "team")]) == 0
    monkeypatch.chdir(tmp_path / "team")
    assert main(["new", "service", "points", "--on", "PointsEarned"]) == 2
    assert "no contract 'PointsEarned' here; there are: com.acme.loyalty.LoyaltyRequested" in (
        capsys.readouterr().err
    )
    assert main(["new", "service", "points", "--on", "com.acme.loyalty.LoyaltyRequested"]) == 0


def test_outside_a_team_repository_it_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "service", "loyalty"]) == 2
    err = capsys.readouterr().err
    assert "no pyproject.toml with a [tool.choreograph] table" in err
    assert "choreograph init NAME" in err
    assert list(tmp_path.iterdir()) == []  # nothing written
