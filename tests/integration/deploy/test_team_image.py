"""`choreograph image`: a team repository's service as an OCI image on the base image `make
image` builds, run from its root filesystem (as its user, with its environment) against the
local stack, handling an event of the team's own contract."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic

from choreograph.cli.main import main
from choreograph.testing.servers import Servers
from tests.integration.deploy.test_image import IMAGE, in_image, version

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def test_a_team_service_runs_from_its_own_image(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (IMAGE / "index.json").exists():
        pytest.fail(f"no base image at {IMAGE}: run `make image` (make test does)")
    domain = f"m{uuid.uuid4().hex[:7]}"
    package = f"acme_{domain}"
    assert main(["init", f"acme-{domain}", "--dir", str(tmp_path / "team")]) == 0
    monkeypatch.chdir(tmp_path / "team")
    assert main(["new", "service", "loyalty"]) == 0

    # Refused with what to change: no base named, a base that is not an image.
    assert main(["image"]) == 2
    assert main(["image", "--base", f"{tmp_path}:1"]) == 2
    built = subprocess.run(
        [str(REPO / ".venv/bin/choreograph"), "image", "--base", f"{IMAGE}:{version()}",
         "--out", str(tmp_path / "image"), "--tag", "1.0.0"],
        cwd=tmp_path / "team", capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path / 'image'}:1.0.0", str(bundle)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = bundle / "rootfs"
    config = json.loads((bundle / "config.json").read_text())["process"]
    assert config["args"] == ["python", "-m", f"{package}.loyalty"]
    assert config["user"]["uid"] == 10001
    assert (rootfs / f"app/schemas/avro/{domain}").is_dir()  # the team's contracts, not ours
    assert not (rootfs / "app/schemas/avro/orders").exists()

    registered = main(["schemas", "register", "--registry", servers.registry_url])
    assert registered == 0
    topic = f"{domain}.events"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    env = {"CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
           "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
           "CHOREOGRAPH_INSTANCE_ID": domain}  # fmt: skip
    service = subprocess.Popen(
        in_image(rootfs, *config["args"], env=env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        publish = (
            "from choreograph import AvroSerde, EventPublisher, sample_event\n"
            f"from {package}.contracts.{domain} import {domain.capitalize()}Requested as E\n"
            f"p = EventPublisher({{'bootstrap.servers': '{servers.bootstrap}'}}, "
            f"AvroSerde('{servers.registry_url}'), 'shop')\n"
            "p.publish(sample_event(E), 'k-1')\n"
            "p.flush(30)\n"
        )
        published = subprocess.run(
            in_image(rootfs, "python", "-c", publish), capture_output=True, text=True
        )
        assert published.returncode == 0, published.stderr
        committed, deadline = -1, time.monotonic() + 60
        while committed < 1 and time.monotonic() < deadline:
            time.sleep(1)
            offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("loyalty")])
            found = offsets["loyalty"].result(30).topic_partitions
            committed = max((tp.offset for tp in found if tp.topic == topic), default=-1)
        assert committed == 1, "the image's service did not handle the event within 60 s"
    finally:
        service.terminate()
        logs, _ = service.communicate(timeout=60)
    assert service.returncode == 0, logs[-3000:]
