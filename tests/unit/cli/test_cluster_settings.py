"""Every command that talks to the registry or the broker takes the services' settings: the
address from its flag, credentials and TLS from CHOREOGRAPH_* as services read them."""

from __future__ import annotations

import pytest

from choreograph.cli.cluster import cluster_config
from choreograph.cli.main import build_parser


@pytest.mark.parametrize(
    "line",
    [
        ["schemas", "register", "--registry", "https://registry.example:8081"],
        ["schemas", "check", "--registry", "https://registry.example:8081"],
        ["contracts", "check", "--registry", "https://registry.example:8081"],
        ["audit", "show", "--correlation-id", "c", "--registry", "https://registry.example:8081"],
    ],
)
def test_registry_commands_carry_the_registry_credentials(
    line: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOREOGRAPH_REGISTRY_USER_INFO", "ci:secret")
    monkeypatch.setenv("CHOREOGRAPH_REGISTRY_CA_LOCATION", "/etc/ssl/registry.pem")
    conf = cluster_config(build_parser().parse_args(line)).registry_conf()
    assert conf["url"] == "https://registry.example:8081"
    assert conf["basic.auth.user.info"] == "ci:secret"
    assert conf["ssl.ca.location"] == "/etc/ssl/registry.pem"


@pytest.mark.parametrize(
    "line",
    [
        ["dlq", "skip", "--service", "s", "--topic", "t", "--partition", "0", "--offset", "1",
         "--reason", "r"],
        ["replay", "publish", "x.capture", "--prefix", "p."],
        ["replay", "capture", "--out", "x", "--topics", "t", "--since", "2026-01-01T00:00:00Z"],
        ["acls", "m:build", "--apply"],
        ["dev", "smoke"],
    ],
)  # fmt: skip
def test_broker_commands_carry_the_security_settings(
    line: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHOREOGRAPH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHOREOGRAPH_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CHOREOGRAPH_SASL_USERNAME", "oncall")
    monkeypatch.setenv("CHOREOGRAPH_SASL_PASSWORD", "pw")
    conf = cluster_config(build_parser().parse_args([*line, "--bootstrap", "k:9093"])).client_conf()
    assert conf["bootstrap.servers"] == "k:9093"
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.username"] == "oncall"
