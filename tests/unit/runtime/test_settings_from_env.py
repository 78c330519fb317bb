"""Every service setting can be set from the environment, and docs/settings.md lists them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from choreograph import ServiceConfig
from choreograph.cli.settings import markdown, rows
from choreograph.runtime.config import SettingsError

DOCS = Path(__file__).parents[3] / "docs" / "settings.md"


def test_the_settings_table_is_generated_from_the_code() -> None:
    assert DOCS.read_text() == markdown(), "run: choreograph settings --format markdown"


def test_every_setting_has_a_description() -> None:
    assert [row["setting"] for row in rows() if not row["description"]] == []


def test_every_setting_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = {
        "CHOREOGRAPH_BOOTSTRAP": ("bootstrap_servers", "kafka-1:9093"),
        "CHOREOGRAPH_COMMIT_INTERVAL_MS": ("commit_interval_ms", 250),
        "CHOREOGRAPH_MAX_BATCH": ("max_batch", 77),
        "CHOREOGRAPH_SHUTDOWN_TIMEOUT_S": ("shutdown_timeout_s", 12.5),
        "CHOREOGRAPH_LOG_LEVEL": ("log_level", "DEBUG"),
        "CHOREOGRAPH_GUARANTEE": ("guarantee", "at_least_once"),
        "CHOREOGRAPH_TRANSACTION_TIMEOUT_MS": ("transaction_timeout_ms", 30_000),
    }
    for variable, (_, value) in samples.items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.setenv("CHOREOGRAPH_RETRY__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("CHOREOGRAPH_CONSUMER", '{"fetch.min.bytes": 1024}')
    monkeypatch.setenv("CHOREOGRAPH_SASL_USERNAME", "payments")
    config = ServiceConfig.from_env()
    for field, value in samples.values():
        assert getattr(config, field) == value, field
    assert config.retry.max_attempts == 2
    assert config.consumer == {"fetch.min.bytes": 1024}
    assert config.security == {"sasl.username": "payments"}
    # Code wins over the environment; a config built in code does not read it at all.
    assert ServiceConfig.from_env(max_batch=5).max_batch == 5
    assert ServiceConfig().max_batch == 1000


def test_a_bad_value_names_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHOREOGRAPH_COMMIT_INTERVAL_MS", "soon")
    with pytest.raises(ValueError, match="CHOREOGRAPH_COMMIT_INTERVAL_MS"):
        ServiceConfig.from_env()


def test_every_row_names_a_variable_the_settings_read() -> None:
    variables = [row["variable"] for row in rows()]
    assert len(variables) == len(set(variables))
    assert all(v.startswith("CHOREOGRAPH_") for v in variables)


def test_a_misspelt_setting_stops_the_service_naming_the_setting_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHOREOGRAPH_COMMIT_INTERVL_MS", "50")
    monkeypatch.setenv("CHOREOGRAPH_RETRY__MAX_ATEMPTS", "3")
    with pytest.raises(SettingsError) as raised:
        ServiceConfig.from_env()
    message = str(raised.value)
    assert "CHOREOGRAPH_COMMIT_INTERVL_MS is not a setting: did you mean " \
        "CHOREOGRAPH_COMMIT_INTERVAL_MS?" in message  # fmt: skip
    assert "did you mean CHOREOGRAPH_RETRY__MAX_ATTEMPTS?" in message


def test_other_choreograph_variables_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = ["KAFKA_PORT", "IMAGE_DIR", "DEMO_PASSWORD", "SECURED_REGISTRY_USER_INFO"]
    for tool in tools:
        monkeypatch.setenv(f"CHOREOGRAPH_{tool}", "x")
    assert ServiceConfig.from_env().commit_interval_ms > 0
