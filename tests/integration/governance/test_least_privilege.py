"""A team's service with exactly its derived ACLs, on the broker's SASL/SCRAM listener with the
StandardAuthorizer: it works end to end, exactly-once included, and its credentials are denied,
with a clear error, when they write another team's topic or read another team's changelog."""

from __future__ import annotations

import secrets
import socket
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from choreograph import AvroSerde, EventPublisher, ServiceConfig
from choreograph.cli.main import main as cli
from choreograph.governance.acls import bindings, derive
from choreograph.runtime.engine import Engine
from choreograph.testing.servers import Servers
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.payments.service import build as payments
from tests.integration.saga_tracker.helpers import collect
from tests.workload_harness import engine_thread

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SASL_PORT = 9094
REPO = Path(__file__).resolve().parents[3]


def sasl(user: str, password: str) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
    }


def start_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """A new consumer group on shared topics starts at their end: replaying every order ever
    placed would emit a payment for each, which every other reader would then see."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    ends = [
        TopicPartition(topic, p, probe.get_watermark_offsets(TopicPartition(topic, p), 30)[1])
        for topic in topics
        for p in admin.list_topics(topic, timeout=30).topics[topic].partitions
    ]
    probe.close()
    done = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, ends)])
    for future in done.values():
        future.result(30)


def test_a_service_runs_with_exactly_its_derived_acls(servers: Servers, tmp_path: Path) -> None:
    host = servers.bootstrap.rsplit(":", 1)[0]
    with socket.socket() as probe:
        if probe.connect_ex((host, SASL_PORT)) != 0:
            pytest.fail(
                f"no SASL listener on {host}:{SASL_PORT}: run `deploy/local/stack.sh up`, which "
                "restarts a broker started with an older configuration"
            )
    run = uuid.uuid4().hex[:6]
    user, password = f"payments-{run}", secrets.token_urlsafe(16)
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})  # plaintext: the admin's
    credential = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upsert = UserScramCredentialUpsertion(user, credential, password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    service = payments(name=user)
    # Shared topics are the platform's: created by an administrator, never by a service.
    existing = admin.list_topics(timeout=30).topics
    missing = [NewTopic(t, 3, 1) for t in {*service.inputs, *service.outputs} if t not in existing]
    for future in admin.create_topics(missing).values() if missing else ():
        try:
            future.result(30)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    start_at_end(servers.bootstrap, user, service.inputs)  # the shared topics' history is not ours
    acls = derive(service)
    assert {a.principal for a in acls} == {f"User:{user}"}
    for future in admin.create_acls(bindings(acls), request_timeout=30).values():
        future.result()
    time.sleep(2)  # ACLs and credentials reach the broker's authorizer asynchronously

    config = ServiceConfig(
        bootstrap_servers=f"{host}:{SASL_PORT}",
        registry_url=servers.registry_url,
        instance_id="a",
        state_dir=tmp_path / "state",
        security=sasl(user, password),
    )
    # Services never register schemas: the deployment does, before they start.
    registered = cli(["schemas", "register", "--root", str(REPO / "schemas/avro"),
                      "--registry", servers.registry_url])  # fmt: skip
    assert registered == 0
    shop = EventPublisher({"bootstrap.servers": servers.bootstrap},
                          AvroSerde(servers.registry_url), "shop")  # fmt: skip
    key = f"ord-{run}"
    order = OrderPlaced(order_id=key, customer_id="c-1", customer_email="a@example.com",
                        lines=[OrderLine(sku="MUG-1", quantity=1)], total=Decimal("20.00"),
                        placed_at=datetime.now(UTC))  # fmt: skip
    with engine_thread(Engine(service, config)) as engine:
        placed = shop.publish(order, key, topic="orders.events")
        shop.flush(30)
        paid = collect(servers.bootstrap, servers.registry_url, "payments.events",
                       {placed.correlation_id}, seconds=90, until=bool)  # fmt: skip
        assert [env.type for env, _ in paid] == ["com.acme.payments.PaymentAuthorized"]
        assert engine.eos  # exactly-once: transactions under its own transactional ids

        # The same credentials, used for what the ACLs do not allow.
        intruder = Producer({"bootstrap.servers": f"{host}:{SASL_PORT}", **sasl(user, password)})
        errors: list[KafkaError] = []
        intruder.produce("inventory.events", b"forged", key=key.encode(),
                         on_delivery=lambda err, _msg: errors.append(err))  # fmt: skip
        intruder.flush(30)
        assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
        assert "authoriz" in errors[0].str().lower()
        reader = Consumer({"bootstrap.servers": f"{host}:{SASL_PORT}", **sasl(user, password),
                           "group.id": user, "enable.auto.commit": False})  # fmt: skip
        reader.subscribe(["orders.machine.order.changelog"])
        denied: KafkaError | None = None
        deadline = time.monotonic() + 30
        while denied is None and time.monotonic() < deadline:
            msg = reader.poll(1.0)
            if msg is not None and msg.error() is not None:
                denied = msg.error()
        reader.close()
        assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

        # Nothing lost: the forged record is not there, and the service carries on.
        again = shop.publish(order.model_copy(update={"order_id": f"{key}-2"}), f"{key}-2",
                             topic="orders.events")  # fmt: skip
        shop.flush(30)
        more = collect(servers.bootstrap, servers.registry_url, "payments.events",
                       {again.correlation_id}, seconds=90, until=bool)  # fmt: skip
        assert [env.type for env, _ in more] == ["com.acme.payments.PaymentAuthorized"]
    # Nor may it create topics beyond its own.
    check = AdminClient({"bootstrap.servers": f"{host}:{SASL_PORT}", **sasl(user, password)})
    with pytest.raises(KafkaException, match=r"TOPIC_AUTHORIZATION_FAILED|not authorized"):
        check.create_topics([NewTopic(f"inventory.{run}", 1, 1)])[f"inventory.{run}"].result(30)
