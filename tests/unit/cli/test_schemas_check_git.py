"""`choreograph schemas check --against GIT_REF`: offline checks against git history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.contract_repo import BASE, ContractRepo, run_cli, with_fields


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContractRepo:
    r = ContractRepo(tmp_path)
    r.write(BASE)
    r.commit("v1")
    monkeypatch.chdir(tmp_path)
    return r


def test_unchanged_contracts_pass(repo: ContractRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert (code, out) == (0, "")
    assert "compared 0 changed contract(s) of 1 with 0 earlier version(s)" in err
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD", "--format", "json")
    assert (code, json.loads(out)) == (0, [])  # always parseable, even when clean


def test_a_clean_run_says_what_it_compared(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(with_fields({"name": "note", "type": "string", "default": "", "doc": "d"}))
    code, _, err = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 0
    assert "compared 1 changed contract(s) of 1 with 1 earlier version(s) in git history" in err


def test_an_unknown_ref_is_one_line_and_exit_2(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "schemas", "check", "--against", "no-such-ref")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "unknown git ref 'no-such-ref'" in err
    assert "rev-parse" not in err


@pytest.mark.parametrize(
    ("old_field", "new_fields", "rule", "hint"),
    [
        (  # a widening breaks consumers still on the old version
            {"name": "n", "type": "int", "doc": "d"},
            [{"name": "n", "type": "long", "doc": "d"}],
            "type-mismatch",
            "keep type int: consumers on version",
        ),
        (  # removing a required field: the fix is not a default on a field that is gone
            {"name": "n", "type": "int", "doc": "d"},
            [],
            "field-missing-default",
            "keep field 'n' in the new schema",
        ),
    ],
)
def test_forward_failures_say_what_to_do_to_the_new_schema(
    repo: ContractRepo,
    capsys: pytest.CaptureFixture[str],
    old_field: dict[str, object],
    new_fields: list[dict[str, object]],
    rule: str,
    hint: str,
) -> None:
    repo.policy("default_compatibility: FORWARD\n")
    repo.write(with_fields(old_field))
    repo.commit("v2")
    repo.write(with_fields(*new_fields))
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 1 and f"[{rule}]" in out, out
    assert hint in out, out


def test_added_required_field_is_breaking_with_location_rule_and_fix(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo.write(with_fields({"name": "total", "type": "long", "doc": "Cents."}))
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 1
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if '"total"' in t)
    assert f"schemas/avro/orders/OrderPlaced.avsc:{line}:" in out
    assert "[field-missing-default]" in out
    assert "cannot read data written with version" in out
    assert "fix: add \"default\": 0 to field 'total'" in out


def test_json_and_github_formats(repo: ContractRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(with_fields({"name": "total", "type": "long", "doc": "Cents."}))
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD", "--format", "json")
    [item] = json.loads(out)
    assert code == 1
    assert item["rule"] == "field-missing-default" and item["severity"] == "error"
    assert item["line"] > 1 and item["fix"]
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD", "--format", "github")
    assert code == 1
    assert out.startswith("::error file=schemas/avro/orders/OrderPlaced.avsc,line=")
    assert "title=field-missing-default::" in out


def test_transitive_mode_checks_every_earlier_version(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(with_fields({"name": "n", "type": "int", "default": 0, "doc": "d"}))
    repo.commit("v2")
    repo.write(with_fields({"name": "n", "type": "int", "doc": "d"}))  # v3: default dropped
    repo.policy("default_compatibility: BACKWARD\n")
    assert run_cli(capsys, "schemas", "check", "--against", "HEAD")[0] == 0
    repo.policy("default_compatibility: BACKWARD_TRANSITIVE\n")
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 1 and "version " in out and "[field-missing-default]" in out


def test_allowed_break_with_reason_passes_as_notice(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(with_fields({"name": "total", "type": "long", "doc": "Cents."}))
    repo.policy(
        "allowed_breaks:\n"
        "  - record: com.acme.orders.OrderPlaced\n"
        "    rule: field-missing-default\n"
        "    reason: no consumer reads this topic yet\n"
    )
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 0
    assert "notice" in out and "no consumer reads this topic yet" in out


def test_allowed_break_without_reason_is_unreadable_policy(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.policy("allowed_breaks:\n  - record: com.acme.orders.OrderPlaced\n    rule: x\n")
    code, _, err = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 2 and "needs reason" in err


def test_new_contract_has_no_history_and_passes(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write({**BASE, "name": "OrderShipped"}, name="OrderShipped")
    assert run_cli(capsys, "schemas", "check", "--against", "HEAD")[0] == 0


def test_renamed_file_keeps_its_history(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.git("mv", "schemas/avro/orders/OrderPlaced.avsc", "schemas/avro/orders/Tmp.avsc")
    repo.commit("move")
    base = repo.git("rev-parse", "HEAD").strip()
    (repo.contracts / "orders" / "Tmp.avsc").unlink()
    repo.write(with_fields({"name": "total", "type": "long", "doc": "Cents."}))
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", base)
    assert code == 1 and "[field-missing-default]" in out


def test_invalid_json_is_exit_2_with_position(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.contracts / "orders" / "OrderPlaced.avsc").write_text('{\n  "type": "record",\n  oops\n}')
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 2
    assert "schemas/avro/orders/OrderPlaced.avsc:3:3: error [unreadable] invalid JSON" in out


def test_invalid_avro_points_at_the_problem(
    repo: ContractRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(with_fields({"name": "n", "type": "int", "default": "zero", "doc": "d"}))
    code, out, _ = run_cli(capsys, "schemas", "check", "--against", "HEAD")
    assert code == 2 and "[unreadable] default of field 'n' is invalid" in out


def test_unknown_ref_is_exit_2(repo: ContractRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "schemas", "check", "--against", "no-such-ref")
    assert code == 2 and "no-such-ref" in err
