"""`choreograph schemas lint` and `codegen`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.contract_repo import BASE, ContractRepo, run_cli, with_fields

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContractRepo:
    monkeypatch.chdir(tmp_path)
    return ContractRepo(tmp_path)


def lint_rules(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[tuple[str, str]]]:
    code, out, _ = run_cli(capsys, "schemas", "lint", "--format", "json")
    return code, [(d["rule"], d["severity"]) for d in json.loads(out or "[]")]


def test_clean_contract_passes(repo: ContractRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(BASE)
    assert lint_rules(capsys) == (0, [])


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({**BASE, "doc": None}, "doc-missing"),
        (with_fields({"name": "qty", "type": "int"}), "doc-missing"),
        ({**BASE, "namespace": "com.acme.billing"}, "namespace-folder"),
        (with_fields({"name": "totalCents", "type": "long", "doc": "d"}), "field-name-case"),
        (with_fields({"name": "customer_email", "type": "string", "doc": "d"}), "pii-untagged"),
        (
            with_fields({"name": "customer_email", "type": "string", "doc": "d", "pii": "yes"}),
            "pii-tag-invalid",
        ),
        (
            with_fields(
                {
                    "name": "s",
                    "doc": "d",
                    "type": {
                        "type": "enum",
                        "name": "S",
                        "doc": "d",
                        "symbols": ["ok"],
                        "default": "ok",
                    },
                }
            ),
            "enum-symbol-case",
        ),
        (
            with_fields(
                {
                    "name": "a",
                    "doc": "d",
                    "type": {"type": "record", "name": "addr", "doc": "d", "fields": []},
                }
            ),
            "type-name-case",
        ),
    ],
)
def test_each_rule_is_an_error(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str], schema: dict, rule: str
) -> None:
    repo.write({k: v for k, v in schema.items() if v is not None})
    code, found = lint_rules(capsys)
    assert code == 1
    assert (rule, "error") in found


def test_file_name_must_match_record(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(BASE, name="Placed")
    assert lint_rules(capsys) == (1, [("file-name", "error")])


def test_pii_false_acknowledges_a_personal_looking_field(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(with_fields({"name": "file_name", "type": "string", "doc": "d", "pii": False}))
    assert lint_rules(capsys) == (0, [])


def test_enum_without_default_is_only_a_warning(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    enum = {"type": "enum", "name": "S", "doc": "d", "symbols": ["A"]}
    repo.write(with_fields({"name": "s", "type": enum, "doc": "d"}))
    assert lint_rules(capsys) == (0, [("enum-default-missing", "warning")])


def test_codegen_writes_then_check_detects_drift(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(BASE)
    out = repo.root / "gen"
    code, printed, _ = run_cli(capsys, "schemas", "codegen", "--out", str(out))
    assert code == 0 and "orders.py" in printed
    assert "class OrderPlaced(Event):" in (out / "orders.py").read_text()
    assert run_cli(capsys, "schemas", "codegen", "--out", str(out), "--check")[0] == 0
    repo.write(with_fields({"name": "n", "type": "int", "default": 0, "doc": "d"}))
    code, printed, _ = run_cli(capsys, "schemas", "codegen", "--out", str(out), "--check")
    assert code == 1 and "orders.py: out of date" in printed


def test_codegen_removes_modules_of_deleted_domains(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(BASE)
    repo.write(
        {**BASE, "name": "Paid", "namespace": "com.acme.billing"}, name="Paid", domain="billing"
    )
    out = repo.root / "gen"
    run_cli(capsys, "schemas", "codegen", "--out", str(out))
    (repo.contracts / "billing" / "Paid.avsc").unlink()
    code, printed, _ = run_cli(capsys, "schemas", "codegen", "--out", str(out), "--check")
    assert code == 1 and "billing.py: generated for a domain that no longer exists" in printed
    run_cli(capsys, "schemas", "codegen", "--out", str(out))
    assert not (out / "billing.py").exists()


def test_repository_generated_models_are_up_to_date(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, printed, _ = run_cli(capsys, "schemas", "codegen", "--check")
    assert code == 0, printed


def test_repository_contracts_lint_clean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, printed, _ = run_cli(capsys, "schemas", "lint")
    assert code == 0, printed
