"""Operator commands against the real broker as an operator meets it at night: on the SASL/SCRAM
listener with the services' CHOREOGRAPH_* settings, refused without them, and never an empty
all-clear from a broker that is away or a topic that is not there."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from choreograph.testing.servers import Servers

pytestmark = [pytest.mark.integration]
SASL_PORT = 9094
CHOREOGRAPH = f"{sys.prefix}/bin/choreograph"


def command(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHOREOGRAPH_")}
    started = time.monotonic()
    done = subprocess.run(
        [CHOREOGRAPH, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    return done, time.monotonic() - started


def sasl_user(
    servers: Servers,
    user: str,
    grants: list[tuple[ResourceType, str, ResourcePatternType, AclOperation]],
) -> tuple[str, dict[str, str]]:
    """A SCRAM user on the SASL listener with exactly `grants`: its address, and the
    CHOREOGRAPH_* settings that sign in as it."""
    host = servers.bootstrap.rsplit(":", 1)[0]
    with socket.socket() as probe:
        if probe.connect_ex((host, SASL_PORT)) != 0:
            pytest.fail(f"no SASL listener on {host}:{SASL_PORT}: run `deploy/local/stack.sh up`")
    password = secrets.token_urlsafe(16)
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    credential = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upsert = UserScramCredentialUpsertion(user, credential, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    allow = [
        AclBinding(kind, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW)
        for kind, name, pattern, op in grants
    ]
    for future in admin.create_acls(allow, request_timeout=30).values():
        future.result()
    time.sleep(2)  # credentials and ACLs reach the authorizer asynchronously
    return f"{host}:{SASL_PORT}", {
        "CHOREOGRAPH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CHOREOGRAPH_SASL_MECHANISM": "SCRAM-SHA-512",
        "CHOREOGRAPH_SASL_USERNAME": user,
        "CHOREOGRAPH_SASL_PASSWORD": password,
    }


ABSENT_BROKER = {
    "dlq inspect": ["dlq", "inspect", "--service", "payments"],
    "dlq skip": ["dlq", "skip", "--service", "payments", "--topic", "t", "--partition", "0",
                 "--offset", "1", "--reason", "r"],
    "audit show": ["audit", "show", "--correlation-id", "c"],
    "replay capture": ["replay", "capture", "--topics", "t", "--since", "2026-01-01T00:00:00Z",
                       "--out", "/tmp/never.capture"],
    "dev smoke": ["dev", "smoke"],
    "acls --apply": ["acls", "choreograph_examples.payments.service:build", "--apply"],
}  # fmt: skip


@pytest.mark.parametrize("args", ABSENT_BROKER.values(), ids=ABSENT_BROKER.keys())
def test_an_absent_broker_is_one_line_and_exit_2_within_10_s(args: list[str]) -> None:
    done, took = command(*args, "--bootstrap", "127.0.0.1:9")
    assert done.returncode == 2, done.stdout + done.stderr
    assert took < 10, took
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "127.0.0.1:9" in line and "CHOREOGRAPH_BOOTSTRAP" in line


@pytest.mark.parametrize(
    "args",
    [["schemas", "register"], ["schemas", "check"], ["contracts", "check"]],
    ids=["schemas register", "schemas check", "contracts check"],
)
def test_an_absent_registry_is_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    init, _ = command("init", "acme-x", "--dir", str(tmp_path / "team"))
    assert init.returncode == 0, init.stderr
    from choreograph.contracts.pulled import Pinned, fingerprint, write_lock

    schema = {"type": "record", "name": "A", "namespace": "com.acme.a", "fields": []}
    (tmp_path / "team/schemas/pulled/a").mkdir(parents=True)
    (tmp_path / "team/schemas/pulled/a/A.avsc").write_text(json.dumps(schema))
    pinned = Pinned("a.events-com.acme.a.A", 1, 1, fingerprint(schema), "schemas/pulled/a/A.avsc")
    write_lock(tmp_path / "team/contracts.lock", [pinned])
    started = time.monotonic()
    done = subprocess.run(
        [CHOREOGRAPH, *args, "--registry", "http://127.0.0.1:9"], cwd=tmp_path / "team",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and time.monotonic() - started < 10, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "CHOREOGRAPH_REGISTRY_URL" in line, line


def test_a_dlq_that_does_not_exist_is_not_reported_empty(servers: Servers) -> None:
    service = f"absent-{uuid.uuid4().hex[:6]}"
    done, _ = command("dlq", "inspect", "--service", service, "--bootstrap", servers.bootstrap)
    assert done.returncode == 2
    assert f"no topic {service}.dlq" in done.stderr
    assert "0 dead letter" not in done.stdout


@pytest.mark.slow
def test_dlq_inspect_on_the_sasl_listener_with_and_without_credentials(servers: Servers) -> None:
    run = uuid.uuid4().hex[:6]
    service = f"sasl-{run}"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    for future in admin.create_topics([NewTopic(f"{service}.dlq", 1, 1)]).values():
        future.result(30)
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    sasl_address, secured = sasl_user(servers, f"oncall-{run}", [
        (topic, f"{service}.dlq", literal, AclOperation.READ),
        (topic, f"{service}.dlq", literal, AclOperation.DESCRIBE),
        (ResourceType.GROUP, "dlq-inspect-", ResourcePatternType.PREFIXED, AclOperation.READ),
    ])  # fmt: skip

    refused, took = command("dlq", "inspect", "--service", service, "--bootstrap", sasl_address)
    assert refused.returncode == 2 and took < 10
    assert "CHOREOGRAPH_SECURITY_PROTOCOL" in refused.stderr

    done, _ = command(
        "dlq", "inspect", "--service", service, "--bootstrap", sasl_address, "--format", "json",
        **secured,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_operator_commands_on_the_sasl_listener_with_and_without_credentials(
    servers: Servers,
) -> None:
    """audit show, replay capture and acls --apply take the same CHOREOGRAPH_* security
    settings as services; without them each says which setting is missing and exits 2."""
    from choreograph import AvroSerde, EventPublisher
    from tests.integration.saga_tracker.helpers import order_placed

    run = uuid.uuid4().hex[:6]
    prefix = f"sasl-{run}"
    events, decisions = f"{prefix}.events", f"{prefix}.decisions"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (events, decisions)]).values():
        future.result(30)
    shop = EventPublisher({"bootstrap.servers": servers.bootstrap},
                          AvroSerde(servers.registry_url, auto_register=True), "shop")  # fmt: skip
    shop.publish(order_placed(f"o-{run}", "10.00"), f"o-{run}", topic=events)
    shop.flush(30)
    topic, group, prefixed = ResourceType.TOPIC, ResourceType.GROUP, ResourcePatternType.PREFIXED
    cluster = (
        ResourceType.BROKER,
        "kafka-cluster",
        ResourcePatternType.LITERAL,
        AclOperation.ALTER,
    )
    sasl_address, secured = sasl_user(servers, f"operator-{run}", [
        (topic, prefix, prefixed, AclOperation.READ),
        (topic, prefix, prefixed, AclOperation.DESCRIBE),
        (group, "choreograph-capture-", prefixed, AclOperation.READ),
        cluster,
    ])  # fmt: skip
    secured["CHOREOGRAPH_REGISTRY_URL"] = servers.registry_url
    capture = f"/tmp/{prefix}.capture"
    commands = {
        "audit show": ["audit", "show", "--correlation-id", f"o-{run}", "--topic", decisions],
        "replay capture": ["replay", "capture", "--topics", events, "--since",
                           "2026-01-01T00:00:00+00:00", "--out", capture, "--format", "json"],
        "acls --apply": ["acls", "choreograph_examples.payments.service:build", "--principal",
                         f"User:payments-{run}", "--apply"],
    }  # fmt: skip
    for name, args in commands.items():
        refused, took = command(*args, "--bootstrap", sasl_address,
                                CHOREOGRAPH_REGISTRY_URL=servers.registry_url)  # fmt: skip
        assert refused.returncode == 2 and took < 10, (name, refused.stdout, refused.stderr)
        assert "CHOREOGRAPH_SECURITY_PROTOCOL" in refused.stderr, name

    audited, _ = command(*commands["audit show"], "--bootstrap", sasl_address, **secured)
    assert audited.returncode == 1 and f"no decisions of o-{run}" in audited.stdout, audited.stderr
    captured, _ = command(*commands["replay capture"], "--bootstrap", sasl_address, **secured)
    assert captured.returncode == 0, captured.stderr
    assert json.loads(captured.stdout)["records"] == 1
    applied, _ = command(*commands["acls --apply"], "--bootstrap", sasl_address, **secured)
    assert applied.returncode == 0, applied.stderr
    assert f"ACL(s) for User:payments-{run} on {sasl_address}" in applied.stdout
    os.unlink(capture)


@pytest.mark.slow
def test_registry_commands_with_and_without_registry_credentials(
    secured_registry: tuple[str, str], tmp_path: Path
) -> None:
    """schemas register/check and contracts pull against a registry that demands credentials:
    they send CHOREOGRAPH_REGISTRY_USER_INFO as services do, and without it say so."""
    url, user_info = secured_registry
    domain = f"g{uuid.uuid4().hex[:7]}"
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    assert command("init", f"acme-{domain}", "--dir", str(producer))[0].returncode == 0
    assert command("init", "acme-reader", "--dir", str(consumer))[0].returncode == 0
    subject = f"{domain}.events-com.acme.{domain}.{domain.capitalize()}Requested"
    secured = {"CHOREOGRAPH_REGISTRY_USER_INFO": user_info}

    def in_repo(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHOREOGRAPH_")}
        return subprocess.run(
            [CHOREOGRAPH, *args, "--registry", url], cwd=folder, env={**clean, **env},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    for args, folder in ((["schemas", "register"], producer), (["schemas", "check"], producer),
                         (["contracts", "pull", subject], consumer)):  # fmt: skip
        refused = in_repo(folder, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert "CHOREOGRAPH_REGISTRY_USER_INFO" in refused.stderr, args
    registered = in_repo(producer, "schemas", "register", **secured)
    assert registered.returncode == 0 and f"{subject} id" in registered.stderr + registered.stdout
    checked = in_repo(producer, "schemas", "check", **secured)
    assert checked.returncode == 0, checked.stderr
    pulled = in_repo(consumer, "contracts", "pull", subject, **secured)
    assert pulled.returncode == 0 and f"pulled {subject} version 1" in pulled.stdout
    gated = in_repo(consumer, "contracts", "check", **secured)
    assert gated.returncode == 0 and "compared 1 pinned reader(s)" in gated.stderr
