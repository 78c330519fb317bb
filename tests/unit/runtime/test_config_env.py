"""Settings from CHOREOGRAPH_* variables, as the Helm charts set them: SASL/TLS and registry auth
reach every Kafka and registry client."""

from __future__ import annotations

import pytest

from choreograph import ServiceConfig


def test_security_and_registry_auth_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHOREOGRAPH_BOOTSTRAP", "kafka-0:9093")
    monkeypatch.setenv("CHOREOGRAPH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHOREOGRAPH_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CHOREOGRAPH_SASL_USERNAME", "payments")
    monkeypatch.setenv("CHOREOGRAPH_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("CHOREOGRAPH_SSL_CA_LOCATION", "/etc/choreograph/tls/ca.crt")
    monkeypatch.setenv("CHOREOGRAPH_REGISTRY_URL", "https://registry:8443/apis/ccompat/v7")
    monkeypatch.setenv("CHOREOGRAPH_REGISTRY_USER_INFO", "payments:pw")
    config = ServiceConfig.from_env()
    conf = config.client_conf()
    assert conf.pop("logger").name == "choreograph.kafka"  # librdkafka's lines, deduplicated
    assert conf == {
        "bootstrap.servers": "kafka-0:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "payments",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/choreograph/tls/ca.crt",
    }
    registry = config.registry_conf()
    assert registry["url"] == "https://registry:8443/apis/ccompat/v7"
    assert registry["basic.auth.user.info"] == "payments:pw"
    # One bounded request: the runtime pauses and retries, the client must not block the loop.
    assert registry["timeout"] == 5.0 and registry["max.retries"] == 1


def test_plaintext_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHOREOGRAPH_SECURITY_PROTOCOL", "CHOREOGRAPH_REGISTRY_USER_INFO"):
        monkeypatch.delenv(name, raising=False)
    config = ServiceConfig.from_env(bootstrap_servers="b:9092")
    conf = config.client_conf()
    conf.pop("logger")
    assert conf == {"bootstrap.servers": "b:9092"}
    assert "basic.auth.user.info" not in config.registry_conf()
