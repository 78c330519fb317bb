"""A schedule on the real broker fires each occurrence exactly once across the instances of a
service, even when the instance that owns it is killed (kill -9) in the middle of a firing: the
survivor takes the partition over and fires that occurrence again, and only its firing counts
(read_committed), then goes on with the next."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from choreograph.contracts.serde import AvroSerde
from tests.integration.runtime.test_engine import free_port
from tests.integration.saga_tracker.helpers import wait_for
from tests.kafka_helpers import committed_consumer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def occurrences(bootstrap: str, registry: str, topic: str) -> Counter[str]:
    """What the schedule emitted, as committed."""
    consumer = committed_consumer(bootstrap, topic)
    serde = AvroSerde(registry)
    found: Counter[str] = Counter()
    idle = time.monotonic() + 5
    while time.monotonic() < idle:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        event = serde.deserialize(msg.value()).event  # a dict: no model bound here
        found[event["order_id"] if isinstance(event, dict) else event.order_id] += 1
        idle = time.monotonic() + 3
    consumer.close()
    return found


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    yield running
    for process in running.values():
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_owner_killed_mid_firing_the_occurrence_fires_once(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
    fleet: dict[str, subprocess.Popen[bytes]],
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    out = new_topic("schedule.out", 1)
    env = {
        **os.environ,
        "SCH_SERVICE": f"scheduled-{uuid.uuid4().hex[:8]}",
        "SCH_INPUT": new_topic("schedule.in", 4),
        "SCH_OUTPUT": out,
        "SCH_MARKERS": str(markers),
        "SCH_SLEEP": "6",
        "CHOREOGRAPH_BOOTSTRAP": bootstrap_servers,
        "CHOREOGRAPH_REGISTRY_URL": registry_url,
        "CHOREOGRAPH_AUTO_REGISTER_SCHEMAS": "true",
        "PYTHONPATH": f"{REPO}:{REPO / 'framework'}:{REPO / 'services'}",
    }
    ports = {}
    for name in ("a", "b"):
        ports[name] = free_port()
        log = (tmp_path / f"{name}.log").open("wb")
        fleet[name] = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.scheduled_app"],
            cwd=REPO,
            env={
                **env,
                "CHOREOGRAPH_INSTANCE_ID": name,
                "CHOREOGRAPH_STATE_DIR": str(tmp_path / name),
                "CHOREOGRAPH_METRICS_PORT": str(ports[name]),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: all(ready(p) for p in ports.values()), "both instances ready", 90)

    # The next occurrence: its owner leaves a marker and is killed in the middle of the firing.
    wait_for(lambda: any(markers.iterdir()), "an occurrence to start firing", 75)
    [first] = list(markers.iterdir())
    minute, owner = first.name.split("-")
    fleet[owner].send_signal(signal.SIGKILL)
    fleet[owner].wait(10)
    survivor = "b" if owner == "a" else "a"
    wait_for(lambda: (markers / f"{minute}-{survivor}").exists(),
             "the survivor to fire the same occurrence", 90)  # fmt: skip
    # And it goes on with the next occurrence.
    wait_for(lambda: len({m.name.split("-")[0] for m in markers.iterdir()}) >= 2,
             "the next occurrence", 90)  # fmt: skip
    time.sleep(8)  # its firing (6 s) commits

    emitted = occurrences(bootstrap_servers, registry_url, out)
    fired_minutes = sorted({m.name.split("-")[0] for m in markers.iterdir()})
    assert len(emitted) == len(fired_minutes) >= 2, (emitted, fired_minutes)
    assert set(emitted.values()) == {1}, emitted  # each occurrence exactly once
    assert [datetime_minute(o) for o in sorted(emitted)] == fired_minutes
    assert fleet[survivor].poll() is None, (tmp_path / f"{survivor}.log").read_text()[-3000:]
    print(json.dumps({"killed": owner, "minute": minute, "emitted": dict(emitted)}))


def datetime_minute(iso: str) -> str:
    return f"{datetime.fromisoformat(iso):%H%M}"
