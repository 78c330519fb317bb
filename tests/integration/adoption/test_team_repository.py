"""A team adopts choreograph as a new user would: the wheel `make test` builds, installed in a
fresh venv, used from empty directories with no PYTHONPATH and nothing of this repository.

One team starts a repository, scaffolds a service, tests it, gates its contracts and runs the
service on the local stack; a second team pulls the first's contract from the registry, builds
a reader of it, and its gate fails, naming subject and field, once the producer registers a
change this reader cannot read.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph.testing.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
WHEELS = REPO / "dist/wheel"


class User:
    """Commands run as the user runs them: in `cwd`, with the venv's tools on PATH, and an
    environment that knows nothing of this repository."""

    def __init__(self, venv: Path, cwd: Path, servers: Servers) -> None:
        self.venv, self.cwd = venv, cwd
        self.env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(cwd),
            "CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
            "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
        }

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.cwd, env={**self.env, **env}, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    def at(self, cwd: Path) -> User:
        other = User.__new__(User)
        other.venv, other.cwd, other.env = self.venv, cwd, self.env
        return other


def test_a_new_team_starts_a_repository_and_runs_its_service(
    venv: Path, tmp_path: Path, servers: Servers
) -> None:
    domain = f"r{uuid.uuid4().hex[:7]}"  # a topic of its own, cleaned up after the session
    user = User(venv, tmp_path, servers)
    assert "ModuleNotFoundError" not in user.ok("choreograph", "init", f"acme-{domain}")
    team = user.at(tmp_path / f"acme-{domain}")
    package = f"acme_{domain}"
    for made in ("pyproject.toml", "Dockerfile", ".github/workflows/ci.yml",
                 f"schemas/avro/{domain}", "processes", "policies", "tests"):  # fmt: skip
        assert (team.cwd / made).exists(), made
    out = team.ok("choreograph", "new", "service", "loyalty")
    assert f"python -m {package}.loyalty" in out
    tested = team.ok("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert "3 passed" in tested
    team.ok("choreograph", "schemas", "lint")
    team.ok("choreograph", "schemas", "codegen", "--check")
    team.ok("choreograph", "processes", "lint")
    team.ok("git", "init", "-q")
    team.ok("git", "add", "-A")
    team.ok("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "start")
    assert "compared 0 changed contract(s) of 1" in team.ok(
        "choreograph", "schemas", "check", "--against", "HEAD"
    )
    assert "ok  loyalty: 1 inputs" in team.ok("choreograph", "check", f"{package}.loyalty.service")

    # Deployed as a team deploys: contracts registered, the topic created, the service started.
    team.ok("choreograph", "schemas", "register", "--registry", servers.registry_url)
    topic = f"{domain}.events"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    service = subprocess.Popen(
        ["python", "-m", f"{package}.loyalty"], cwd=team.cwd,
        env={**team.env, "CHOREOGRAPH_STATE_DIR": str(tmp_path / "state"),
             "CHOREOGRAPH_INSTANCE_ID": domain},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        published = team.run("python", "-c", (
            "from choreograph import AvroSerde, EventPublisher, sample_event\n"
            f"from {package}.contracts.{domain} import {domain.capitalize()}Requested as E\n"
            "import os\n"
            "p = EventPublisher({'bootstrap.servers': os.environ['CHOREOGRAPH_BOOTSTRAP']},"
            " AvroSerde(os.environ['CHOREOGRAPH_REGISTRY_URL']), 'shop')\n"
            "p.publish(sample_event(E), 'k-1')\n"
            "p.flush(30)\n"
        ))  # fmt: skip
        assert published.returncode == 0, published.stderr
        deadline = time.monotonic() + 60
        committed = -1
        while time.monotonic() < deadline and committed < 1:
            time.sleep(1)
            group = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("loyalty",
                                                       )])["loyalty"].result(30)  # fmt: skip
            committed = max(
                (tp.offset for tp in group.topic_partitions if tp.topic == topic), default=-1
            )
        assert committed == 1, "the service did not handle the event within 60 s"
    finally:
        service.terminate()
        logs, _ = service.communicate(timeout=60)
    assert service.returncode == 0, logs[-3000:]
    assert '"msg": "started"' in logs


def test_a_consumer_pulls_a_producers_contract_and_its_gate_catches_a_breaking_change(
    venv: Path, tmp_path: Path, servers: Servers
) -> None:
    producer_domain = f"b{uuid.uuid4().hex[:7]}"
    user = User(venv, tmp_path, servers)
    user.ok("choreograph", "init", f"acme-{producer_domain}")
    user.ok("choreograph", "init", "acme-loyalty")
    producer = user.at(tmp_path / f"acme-{producer_domain}")
    consumer = user.at(tmp_path / "acme-loyalty")
    record = f"{producer_domain.capitalize()}Requested"
    fullname = f"com.acme.{producer_domain}.{record}"
    subject = f"{producer_domain}.events-{fullname}"

    # The producer lets its record evolve BACKWARD: it may drop a field its own readers ignore.
    policy = producer.cwd / "schemas/avro/schemas.yaml"
    policy.write_text(policy.read_text().replace(
        "records: {}", f"records:\n  {fullname}: {{compatibility: BACKWARD}}"))  # fmt: skip
    producer.ok("choreograph", "schemas", "register", "--registry", servers.registry_url)

    pulled = consumer.ok("choreograph", "contracts", "pull", subject)
    assert f"pulled {subject} version 1" in pulled
    lock = json.loads((consumer.cwd / "contracts.lock").read_text())
    assert lock["subjects"][subject]["version"] == 1
    assert (consumer.cwd / f"schemas/pulled/{producer_domain}/{record}.avsc").is_file()
    consumer.ok("choreograph", "new", "service", "points", "--on", record)
    assert "3 passed" in consumer.ok("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert "compared 1 pinned reader(s)" in consumer.ok("choreograph", "contracts", "check")
    # The reader of a pulled contract is checked against it like one of the team's own.
    assert "ok  points: 1 inputs" in consumer.ok(
        "choreograph", "check", "acme_loyalty.points.service"
    )

    # The producer drops `requested_by`: its registry mode accepts it; this reader cannot read it.
    contract = producer.cwd / f"schemas/avro/{producer_domain}/{record}.avsc"
    schema = json.loads(contract.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "requested_by"]
    contract.write_text(json.dumps(schema, indent=2))
    producer.ok("choreograph", "schemas", "register", "--registry", servers.registry_url)

    gated = consumer.run("choreograph", "contracts", "check", "--format", "json")
    assert gated.returncode == 1, gated.stdout + gated.stderr
    (finding,) = json.loads(gated.stdout)
    assert subject in finding["message"] and "'requested_by'" in finding["message"]
    assert "version 2" in finding["message"] and "pinned version 1" in finding["message"]

    # Without a registry to ask, the gate says so and exits 2, not 0.
    away = consumer.run("choreograph", "contracts", "check", "--registry", "http://127.0.0.1:9")
    assert away.returncode == 2 and "cannot use the schema registry" in away.stderr

    # A pulled contract is the producer's: edited by hand, the gate refuses it.
    copy = consumer.cwd / f"schemas/pulled/{producer_domain}/{record}.avsc"
    copy.write_text(copy.read_text().replace("Business key", "Our key"))
    edited = consumer.run("choreograph", "contracts", "check")
    assert edited.returncode == 1 and "was edited after it was pulled" in edited.stdout


GUIDE = REPO / "docs/getting-started.md"
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def test_the_getting_started_guide_works_as_written(venv: Path, tmp_path: Path) -> None:
    """Every `sh` block of the guide, in order, in an empty directory: the guide's own venv
    and `pip install choreograph` are the test's venv with the wheel installed."""
    blocks = SHELL_BLOCK.findall(GUIDE.read_text())
    assert len(blocks) >= 3
    script = "\n".join(blocks)
    assert "pip install choreograph" in script and "choreograph init" in script
    script = script.replace(
        "python3 -m venv .venv && . .venv/bin/activate", f". {venv}/bin/activate"
    ).replace("pip install choreograph", "true  # installed from the wheel")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "passed" in done.stdout and "ok  loyalty" in done.stdout
