"""`choreograph init`: a team repository whose layout every command then reads from its
pyproject, and which refuses to write over files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from choreograph.cli.main import main
from choreograph.project import ProjectError, find_project


def test_writes_a_team_repository_with_its_own_contracts_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "acme-loyalty", "--owner", "loyalty-devs"]) == 0
    team = tmp_path / "acme-loyalty"
    pyproject = tomllib.loads((team / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "acme-loyalty"
    assert any(d.startswith("choreograph>=") for d in pyproject["project"]["dependencies"])
    assert pyproject["tool"]["choreograph"] == {"package": "acme_loyalty"}
    assert "loyalty: {owners: [loyalty-devs]}" in (team / "schemas/avro/schemas.yaml").read_text()
    assert (team / "schemas/avro/loyalty/LoyaltyRequested.avsc").is_file()
    assert (
        "class LoyaltyRequested(Event)" in (team / "acme_loyalty/contracts/loyalty.py").read_text()
    )
    workflow = (team / ".github/workflows/ci.yml").read_text()
    assert "choreograph schemas lint" in workflow and "choreograph contracts check" in workflow
    assert "FROM ${BASE}" in (team / "Dockerfile").read_text()
    assert (team / "Dockerfile").read_text().endswith('CMD ["acme_loyalty.loyalty"]\n')
    for folder in ("processes", "policies", "tests"):
        assert (team / folder).is_dir()
    capsys.readouterr()
    monkeypatch.chdir(team)
    assert main(["schemas", "lint"]) == 0
    assert main(["schemas", "codegen", "--check"]) == 0
    assert main(["processes", "lint"]) == 0
    project = find_project()
    assert project is not None and project.generated == team / "acme_loyalty/contracts"


def test_refuses_a_folder_with_files_and_a_bad_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/notes.txt").write_text("mine\n")
    assert main(["init", "acme-loyalty", "--dir", str(tmp_path / "taken")]) == 2
    assert "has files already" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]
    assert main(["init", "Acme_Loyalty", "--dir", str(tmp_path / "x")]) == 2
    assert "not a usable name" in capsys.readouterr().err
    assert main(["init", "acme-loyalty", "--namespace", "com.acme.points", "--dir",
                 str(tmp_path / "y")]) == 2  # fmt: skip
    assert "must be dotted lower case and end with the domain 'loyalty'" in capsys.readouterr().err


def test_a_broken_project_table_says_what_to_change(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.choreograph]\npackage = "x"\ncontract = "c"\n')
    with pytest.raises(ProjectError, match=r"has no setting contract; known: contracts"):
        find_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.choreograph]\nservices = "s"\n')
    with pytest.raises(ProjectError, match=r"needs `package`"):
        find_project(tmp_path)
