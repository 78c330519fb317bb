"""Find a Kafka broker and a schema registry for integration tests.

Order: explicit environment variables, then the repository's local stack scripts (Java + Maven,
no Docker), then testcontainers when a Docker engine answers. Whatever is found is real; there is
no fake fallback, because a test that silently ran against nothing would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BOOTSTRAP_ENV = "CHOREOGRAPH_BOOTSTRAP"
REGISTRY_ENV = "CHOREOGRAPH_REGISTRY_URL"
ALERTMANAGER_ENV = "CHOREOGRAPH_ALERTMANAGER_URL"
CCOMPAT_PATH = "/apis/ccompat/v7"
KAFKA_IMAGE = "apache/kafka:4.1.1"
APICURIO_IMAGE = "apicurio/apicurio-registry:3.3.3"


class ServersUnavailable(RuntimeError):
    """No way to reach or start a broker and a registry on this machine."""


@dataclass
class Servers:
    bootstrap: str
    registry_url: str
    origin: str
    _stop: list[Callable[[], None]] = field(default_factory=list, repr=False)
    alertmanager_url: str | None = None

    def close(self) -> None:
        for stop in reversed(self._stop):
            stop()
        self._stop.clear()


def from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> Servers | None:
    bootstrap, registry = env.get(BOOTSTRAP_ENV), env.get(REGISTRY_ENV)
    if bootstrap and registry:
        alertmanager = env.get(ALERTMANAGER_ENV)
        return Servers(
            bootstrap,
            registry.rstrip("/"),
            origin="environment",
            alertmanager_url=alertmanager.rstrip("/") if alertmanager else None,
        )
    if bootstrap or registry:
        missing = REGISTRY_ENV if bootstrap else BOOTSTRAP_ENV
        raise ServersUnavailable(f"{missing} must be set together with the other one")
    return None


def find_stack_script(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        script = folder / "deploy" / "local" / "stack.sh"
        if script.is_file():
            return script
    return None


def from_local_stack(script: Path) -> Servers | None:
    if not (shutil.which("java") and shutil.which("mvn")):
        return None
    done = subprocess.run(
        ["bash", str(script), "up"], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise ServersUnavailable(f"{script} up failed:\n{done.stdout}\n{done.stderr}")
    found = dict(
        line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("CHOREOGRAPH_")
    )
    return Servers(
        found[BOOTSTRAP_ENV],
        found[REGISTRY_ENV],
        origin=f"local stack ({script})",
        alertmanager_url=found.get(ALERTMANAGER_ENV),
    )


def docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


def from_testcontainers() -> Servers | None:
    if not docker_answers():
        return None
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
    kafka.start()
    registry = DockerContainer(APICURIO_IMAGE).with_exposed_ports(8080)
    registry.start()
    wait_for_logs(registry, "Installed features", timeout=180)
    url = (
        f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}{CCOMPAT_PATH}"
    )
    return Servers(kafka.get_bootstrap_server(), url, "testcontainers", [kafka.stop, registry.stop])


def resolve_servers(start: Path | None = None) -> Servers:
    """Return reachable servers, starting them if this machine can."""
    found = from_env()
    if found:
        return found
    script = find_stack_script(start or Path.cwd())
    if script:
        found = from_local_stack(script)
        if found:
            return found
    found = from_testcontainers()
    if found:
        return found
    raise ServersUnavailable(
        f"no Kafka/registry: set {BOOTSTRAP_ENV} and {REGISTRY_ENV}, install Java 17+ and Maven "
        "for deploy/local/stack.sh, or run a Docker engine for testcontainers"
    )
