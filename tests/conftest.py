"""Session fixtures: real servers for integration tests, fresh topics per test."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph.testing.servers import Servers, resolve_servers

REPO = Path(__file__).resolve().parents[1]


# A topic named for one test or run carries a hex id among its dot- or dash-separated parts.
ONE_RUN = re.compile(r"(^|[.-])[a-z]?[0-9a-f]{6,}([.-]|$)")


def topics_of(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The servers, and afterwards the topics this session made for single tests or runs
    deleted: a broker that keeps thousands of them restarts slowly, which fault tests time."""
    found = resolve_servers(REPO)
    before = topics_of(found.bootstrap)
    yield found
    try:
        made = {t for t in topics_of(found.bootstrap) - before if ONE_RUN.search(t)}
        if made:
            admin = AdminClient({"bootstrap.servers": found.bootstrap})
            for future in admin.delete_topics(sorted(made), operation_timeout=60).values():
                with contextlib.suppress(Exception):
                    future.result(120)
    finally:
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


LOCAL_POSTGRES = "postgresql://choreograph:choreograph@127.0.0.1:15432/choreograph"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL of the saga tracker's visibility store: CHOREOGRAPH_VISIBILITY_URL, or the
    local stack's (`deploy/local/stack.sh start postgres`; `make test` starts it)."""
    import os

    import psycopg

    url = os.environ.get("CHOREOGRAPH_VISIBILITY_URL", LOCAL_POSTGRES)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        pytest.fail(f"no PostgreSQL at {url}: {err}; run deploy/local/stack.sh start postgres")
    return url


def started_on_request(component: str, timeout: float) -> dict[str, str]:
    """Start a server the local stack runs on request (idempotent: one that runs is left as it
    is), and the CHOREOGRAPH_* lines it prints: its address and credentials."""
    import subprocess

    started = subprocess.run(
        ["bash", str(REPO / "deploy/local/stack.sh"), "start", component],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"no {component}: {started.stderr.strip()[-500:]}")
    return dict(
        line.split("=", 1) for line in started.stdout.splitlines() if line.startswith("CHOREO")
    )


@pytest.fixture(scope="session")
def secured_registry() -> tuple[str, str]:
    """The registry behind an authenticating gateway, and the user info it accepts:
    CHOREOGRAPH_SECURED_REGISTRY_URL and _USER_INFO, or the local stack's gateway (started by
    `make test`)."""
    import os

    url = os.environ.get("CHOREOGRAPH_SECURED_REGISTRY_URL")
    user_info = os.environ.get("CHOREOGRAPH_SECURED_REGISTRY_USER_INFO")
    if url and user_info:
        return url, user_info
    found = started_on_request("registry-gateway", 240)
    return found["CHOREOGRAPH_SECURED_REGISTRY_URL"], found[
        "CHOREOGRAPH_SECURED_REGISTRY_USER_INFO"
    ]


@pytest.fixture(scope="session")
def identity_provider() -> dict[str, str]:
    """The OpenID Connect provider (Keycloak, realm `choreograph`): issuer, client id and
    secret, demo users and their password; the local stack's (started by `make test`)."""
    return started_on_request("keycloak", 600)
