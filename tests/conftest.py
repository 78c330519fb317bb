"""Session fixtures: real servers for integration tests, fresh topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph.testing.servers import Servers, resolve_servers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    found = resolve_servers(REPO)
    yield found
    found.close()


@pytest.fixture(scope="session")
def bootstrap_servers(servers: Servers) -> str:
    return servers.bootstrap


@pytest.fixture(scope="session")
def registry_url(servers: Servers) -> str:
    return servers.registry_url


@pytest.fixture(scope="session")
def alertmanager_url(servers: Servers) -> str:
    if not servers.alertmanager_url:
        pytest.fail(
            "no Alertmanager: set CHOREOGRAPH_ALERTMANAGER_URL or use deploy/local/stack.sh"
        )
    return servers.alertmanager_url


@pytest.fixture(scope="session")
def admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


@pytest.fixture
def new_topic(admin: AdminClient) -> Callable[..., str]:
    """Create a uniquely named topic, so tests never see each other's records."""

    def create(prefix: str = "test", partitions: int = 1, **config: str) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
        )
        futures[name].result(timeout=30)
        return name

    return create
