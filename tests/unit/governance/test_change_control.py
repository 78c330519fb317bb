"""Change control: released process versions never change in place, reviewers get a summary of
what a new version changes, and CODEOWNERS follows the declared owners."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from choreograph.cli.main import main

REPO = Path(__file__).resolve().parents[3]
V1 = (REPO / "processes/order-fulfilment.v1.yaml").read_text()


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes/order-fulfilment.v1.yaml").write_text(V1)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "-c", "user.email=t@x", "-c", "user.name=t", "add", ".")
    git(tmp_path, "-c", "user.email=t@x", "-c", "user.name=t", "commit", "-qm", "v1")
    return tmp_path


def check(repo: Path) -> int:
    return main(["processes", "check", "--against", "main", "--root", str(repo / "processes")])


def test_a_released_version_changed_in_place_fails_saying_to_add_a_version(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    released = repo / "processes/order-fulfilment.v1.yaml"
    released.write_text(V1.replace("# Order fulfilment", "# The order fulfilment"))  # a comment
    assert check(repo) == 0
    released.write_text(V1.replace("    deadline: 15m", "    deadline: 5m"))
    assert check(repo) == 1
    out = capsys.readouterr().out
    assert "[process-version-changed] order-fulfilment v1 was released on main" in out
    assert "step payment deadline: 15m -> 5m" in out
    assert "order-fulfilment.v2.yaml, with version: 2" in out
    released.write_text(V1)
    (repo / "processes/order-fulfilment.v2.yaml").write_text(
        V1.replace("version: 1", "version: 2").replace("    deadline: 15m", "    deadline: 5m")
    )
    assert check(repo) == 0  # the change as a new version: fine
    released.unlink()
    assert check(repo) == 1
    assert "[process-version-removed]" in capsys.readouterr().out


def test_processes_diff_summarises_a_new_version_for_reviewers(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    v2 = (
        V1.replace("version: 1", "version: 2")
        .replace("    deadline: 15m", "    deadline: 5m")
        .replace("technical: team-orders", "technical: team-checkout")
        .replace("      deadline: 10m\n      completes_on: [com.acme.payments.PaymentRefunded]",
                 "      deadline: 20m\n      completes_on: [com.acme.payments.PaymentRefunded]")
    )  # fmt: skip
    (repo / "v2.yaml").write_text(v2)
    monkeypatch.chdir(repo)
    assert main(["processes", "diff", "main:processes/order-fulfilment.v1.yaml", "v2.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0].startswith("order-fulfilment v1 (main:processes/")
        and "-> order-fulfilment v2" in out[0]
    )
    assert sorted(line.strip() for line in out[1:]) == [
        "step payment compensation deadline: 10m -> 20m",
        "step payment deadline: 15m -> 5m",
        "technical owner: team-orders -> team-checkout",
        "version: 1 -> 2",
    ]


def test_codeowners_follows_the_owners_and_the_gate_fails_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("processes", "policies", "schemas"):
        shutil.copytree(REPO / folder, tmp_path / folder, symlinks=False)
    args = ["governance", "codeowners", "--root", str(tmp_path), "--org", "shop"]
    assert main(args) == 0
    written = (tmp_path / ".github/CODEOWNERS").read_text()
    assert "/schemas/avro/payments/ @shop/team-payments" in written
    assert "/processes/order-fulfilment.v1.yaml @shop/team-orders @shop/commerce-ops" in written
    assert "/policies/payments/card-limit.yaml @shop/team-payments" in written
    assert main([*args, "--check"]) == 0
    policy = tmp_path / "schemas/avro/schemas.yaml"
    policy.write_text(policy.read_text().replace("team-payments", "team-billing"))
    assert main([*args, "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    policy.write_text(policy.read_text().replace("  shipping: {owners: [team-shipping]}\n", ""))
    assert main(args) == 1
    assert "schema domain shipping has no owners" in capsys.readouterr().out
