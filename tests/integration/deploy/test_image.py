"""The OCI image `make image` builds (dist/image): its configuration, and its root filesystem run
as the charts run it (user 10001): `saga-tracker run --help`, and the payments team service
against the local stack, answering a placed order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentFailed
from tests.integration.saga_tracker.helpers import collect, order_placed

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
IMAGE = Path(os.environ.get("CHOREOGRAPH_IMAGE_DIR", REPO / "dist/image"))


def version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (IMAGE / "index.json").exists():
        pytest.fail(f"no image at {IMAGE}: run `make image` (make test does)")
    bundle = tmp_path_factory.mktemp("bundle") / "image"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{IMAGE}:{version()}", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    yield bundle / "rootfs"


def in_image(rootfs: Path, *command: str, env: dict[str, str] | None = None) -> list[str]:
    """`command` in the image's root filesystem as its user, with its environment."""
    config = json.loads((rootfs.parent / "config.json").read_text())["process"]
    variables = [*config["env"], *(f"{k}={v}" for k, v in (env or {}).items())]
    user = f"{config['user']['uid']}:{config['user']['gid']}"
    return ["chroot", f"--userspec={user}", str(rootfs), "/usr/bin/env", "-i", *variables,
            *command]  # fmt: skip


def test_the_image_runs_the_tracker_cli_as_its_user(rootfs: Path) -> None:
    config = json.loads((rootfs.parent / "config.json").read_text())
    assert config["process"]["args"] == ["saga-tracker", "run"]
    assert config["process"]["user"]["uid"] == 10001
    helped = subprocess.run(
        in_image(rootfs, "saga-tracker", "run", "--help"), capture_output=True, text=True
    )
    assert helped.returncode == 0, helped.stderr
    assert "--visibility-url" in helped.stdout and "--otlp-endpoint" in helped.stdout
    assert (rootfs / "app/schemas/avro/schemas.yaml").exists()


def test_a_team_service_from_the_image_answers_on_the_local_stack(
    rootfs: Path, bootstrap_servers: str, registry_url: str
) -> None:
    serde = AvroSerde(registry_url, auto_register=True)
    for answer in (PaymentAuthorized, PaymentFailed):  # what `choreograph schemas register` does
        serde.schema_id("payments.events", answer)
    service = subprocess.Popen(
        in_image(
            rootfs, "python", "-m", "choreograph_examples.payments",
            env={
                "CHOREOGRAPH_BOOTSTRAP": bootstrap_servers,
                "CHOREOGRAPH_REGISTRY_URL": registry_url,
                "CHOREOGRAPH_INSTANCE_ID": f"image-{uuid.uuid4().hex[:6]}",
            },
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        publisher = EventPublisher(
            {"bootstrap.servers": bootstrap_servers},
            AvroSerde(registry_url, auto_register=True),
            "shop",
        )
        key = f"img-{uuid.uuid4().hex[:8]}"
        placed = publisher.publish(
            order_placed(key, "12.00"),
            key,
        )
        publisher.flush()
        answered = collect(
            bootstrap_servers, registry_url, "payments.events", {placed.correlation_id},
            seconds=90, until=lambda found: bool(found),
        )  # fmt: skip
        assert service.poll() is None
        assert [envelope.type for envelope, _ in answered] == [PaymentAuthorized.__avro_name__]
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            out, _ = service.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            out, _ = service.communicate()
    assert service.returncode == 0, out.decode()[-3000:]
    assert b'"stopped"' in out
