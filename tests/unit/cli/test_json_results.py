"""Results printed with `--format json` parse as JSON and carry what the text says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choreograph.cli.main import main
from saga_tracker.__main__ import main as tracker
from saga_tracker.access import digest

REPO = Path(__file__).resolve().parents[3]


def printed(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code = main(["check", "choreograph_examples.payments.service", "no.such.module",
                 "--format", "json"])  # fmt: skip
    assert code == 1
    good, bad = printed(capsys)  # type: ignore[misc]
    assert good["ok"] and good["service"] == "payments" and "orders.events" in good["inputs"]
    assert not bad["ok"] and "No module named" in bad["problems"][0]


def test_codegen_check_and_codeowners_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["schemas", "codegen", "--check", "--format", "json"]) == 0
    assert printed(capsys) == {"out": "services/choreograph_examples/contracts", "stale": []}
    assert main(["governance", "codeowners", "--check", "--format", "json"]) == 0
    found = printed(capsys)
    assert found["state"] == "current" and any(  # type: ignore[index]
        r["pattern"].startswith("/schemas/avro/orders")
        for r in found["rules"]  # type: ignore[index]
    )


def test_processes_diff(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code = main(["processes", "diff", "processes/order-fulfilment.v1.yaml",
                 "processes/order-fulfilment.v2.yaml", "--format", "json"])  # fmt: skip
    assert code == 0
    diff = printed(capsys)
    assert diff["before"]["version"] == 1 and diff["after"]["version"] == 2  # type: ignore[index]
    assert diff["changes"]  # type: ignore[index]


def test_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert tracker(["token", "ana", "--role", "operator", "--format", "json"]) == 0
    made = printed(capsys)
    assert made["token_file_entry"] == {  # type: ignore[index]
        "name": "ana",
        "role": "operator",
        "sha256": digest(made["token"]),  # type: ignore[index]
    }
