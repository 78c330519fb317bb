"""`choreograph schemas register` and `check --registry` against the real registry."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.contract_repo import BASE, ContractRepo, run_cli, with_fields
from tests.kafka_helpers import registry_client


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ContractRepo, str]:
    r = ContractRepo(tmp_path)
    topic = f"cli-{uuid.uuid4().hex[:10]}.events"
    r.policy(f"records:\n  com.acme.orders.OrderPlaced:\n    topic: {topic}\n")
    r.write(BASE)
    monkeypatch.chdir(tmp_path)
    return r, f"{topic}-com.acme.orders.OrderPlaced"


BREAKING = with_fields({"name": "total", "type": "long", "doc": "Cents."})


@pytest.mark.integration
def test_register_then_online_check_catches_a_break_and_register_refuses_it(
    repo: tuple[ContractRepo, str], registry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contracts, subject = repo
    client = registry_client(registry_url)

    code, out, _ = run_cli(capsys, "schemas", "check", "--registry", registry_url)
    assert code == 0 and "[new-subject]" in out
    code, out, _ = run_cli(capsys, "schemas", "register", "--registry", registry_url)
    assert code == 0 and f"{subject} id " in out
    assert client.get_versions(subject) == [1]
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"

    contracts.write(BREAKING)
    code, out, _ = run_cli(
        capsys, "schemas", "check", "--registry", registry_url, "--format", "json"
    )
    assert code == 1
    assert [d["rule"] for d in json.loads(out)] == ["field-missing-default"]
    code, out, _ = run_cli(capsys, "schemas", "register", "--registry", registry_url)
    assert code == 1 and "[field-missing-default]" in out
    assert client.get_versions(subject) == [1]  # nothing registered

    compatible = with_fields({"name": "total", "type": "long", "default": 0, "doc": "Cents."})
    contracts.write(compatible)
    assert run_cli(capsys, "schemas", "register", "--registry", registry_url)[0] == 0
    assert client.get_versions(subject) == [1, 2]


@pytest.mark.integration
def test_allowed_break_registers_and_restores_the_mode(
    repo: tuple[ContractRepo, str], registry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contracts, subject = repo
    client = registry_client(registry_url)
    assert run_cli(capsys, "schemas", "register", "--registry", registry_url)[0] == 0
    policy = (contracts.contracts / "schemas.yaml").read_text()
    contracts.policy(
        policy + "allowed_breaks:\n  - record: com.acme.orders.OrderPlaced\n"
        "    rule: field-missing-default\n    reason: topic not consumed yet\n"
    )
    contracts.write(BREAKING)
    code, out, _ = run_cli(capsys, "schemas", "register", "--registry", registry_url)
    assert code == 0 and "topic not consumed yet" in out
    assert client.get_versions(subject) == [1, 2]
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"


@pytest.mark.integration
def test_unreachable_registry_is_exit_2(
    repo: tuple[ContractRepo, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "schemas", "check", "--registry", "http://127.0.0.1:9/apis/ccompat/v7"
    )
    assert (
        code == 2 and "cannot use the schema registry" in err and "CHOREOGRAPH_REGISTRY_URL" in err
    )
