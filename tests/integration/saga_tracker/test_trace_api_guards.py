"""The trace and action API against a real tracker: request bodies are checked before they are
read, tokens follow the token file and expire, and failed attempts are limited per client with a
bounded number of audit entries, however many requests come."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from choreograph.runtime.config import ServiceConfig
from saga_tracker.access import digest
from saga_tracker.app import TrackerApp, TrackerSettings
from tests.integration.saga_tracker.helpers import collect

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    """A POST with headers exactly as given (http.client would fix a bad Content-Length)."""
    head = f"POST {path} HTTP/1.1\r\nHost: tracker\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        reply = sock.recv(65536)
    return int(reply.split()[1])


def post(
    port: int, path: str, token: str | None, body: bytes, kind: str
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": kind}
    if token:
        headers["Authorization"] = token
    conn.request("POST", path, body=body, headers=headers)
    reply = conn.getresponse()
    reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}  # names are case-blind


def get(url: str, authorization: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_bodies_tokens_and_failed_attempts_are_guarded(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes/order-fulfilment.v1.yaml").write_text(
        (REPO / "processes/order-fulfilment.v1.yaml").read_text()
    )
    alice, bob, temp = (f"{n}-{uuid.uuid4().hex}" for n in ("alice", "bob", "temp"))
    expires = (datetime.now(UTC) + timedelta(seconds=4)).isoformat().replace("+00:00", "Z")
    alice_line = f"  - {{name: alice, role: operator, sha256: {digest(alice)}}}\n"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        + alice_line
        + f"  - {{name: bob, role: operator, sha256: {digest(bob)}}}\n"
        + f"  - {{name: temp, role: viewer, sha256: {digest(temp)}, expires: '{expires}'}}\n"
    )
    run = uuid.uuid4().hex[:6]
    settings = TrackerSettings(
        definitions=tmp_path / "processes",
        schemas=REPO / "schemas/avro",
        # Every topic the definition follows, though only orders are placed here.
        inputs=[
            new_topic(f"{d}.events", 1) for d in ("orders", "payments", "inventory", "shipping")
        ],
        config=ServiceConfig(
            bootstrap_servers=bootstrap_servers,
            registry_url=registry_url,
            instance_id="g",
            state_dir=tmp_path / "state",
            auto_register_schemas=True,
        ),
        name=f"tracker-guard-{run}",
        repartition=new_topic("saga-tracker.repartition", 1),
        http_port=0,
        tokens=tokens,
        alerts_topic=new_topic("choreograph.alerts"),
        failed_attempts_limit=12,
        failed_attempts_window_s=60,
    )
    target = f"guard-{run}"
    path = f"/api/instances/{target}/actions"
    started = datetime.now(UTC)
    app = TrackerApp(settings).start()
    port = int(app.server.url.rsplit(":", 1)[1])
    as_alice = f"Bearer {alice}"
    try:
        # A Content-Length that is no number is not HTTP: the server answers 400 before the
        # application sees it (so it is not audited). The rest is checked before anything is
        # read, and each refusal is audited.
        json_alice = {"Content-Type": "application/json", "Authorization": as_alice}
        assert raw_post(port, path, {**json_alice, "Content-Length": "abc"}) == 400
        assert raw_post(port, path, {**json_alice, "Content-Length": "-1"}) == 400
        assert raw_post(port, path, {**json_alice, "Transfer-Encoding": "chunked"},
                        b"0\r\n\r\n") == 411  # fmt: skip
        assert raw_post(port, path, {"Authorization": as_alice}) == 411  # no length at all
        big = b"{" + b" " * (10 * 1024 * 1024) + b"}"
        assert post(port, path, as_alice, big, "application/json")[0] == 413  # an answer, no reset
        assert post(port, path, as_alice, b'{"action": "resolve"}', "text/plain")[0] == 415

        # The scheme is matched case-insensitively: alice gets past the token check.
        body = b'{"action": "resolve", "reason": "checking"}'
        assert post(port, path, f"bearer {alice}", body, "application/json")[0] == 404

        # A token removed from the file stops working at once; an expired one too.
        assert post(port, path, f"Bearer {bob}", body, "application/json")[0] == 404
        tokens.write_text("tokens:\n" + alice_line)
        assert post(port, path, f"Bearer {bob}", body, "application/json")[0] == 401
        list_url = f"{app.server.url}/api/instances"
        assert get(list_url, f"Bearer {alice}") == 200
        time.sleep(4.5)

        # Anonymous requests in a loop: refused, then limited, never one audit entry each.
        statuses = [post(port, path, None, body, "application/json") for _ in range(25)]
        codes = [status for status, _ in statuses]
        assert set(codes) == {401, 429} and codes.index(429) > 0
        assert all(codes[i] == 429 for i in range(codes.index(429), len(codes)))
        assert int(statuses[-1][1]["retry-after"]) >= 1
    finally:
        app.stop()
    assert not app.failed.is_set()

    entries = [
        entry
        for _, entry in collect(
            bootstrap_servers, registry_url, "choreograph.audit", {target, "*"}, seconds=15
        )
        if entry["at"] >= started.replace(microsecond=0)
    ]
    mine = [(e["outcome"], e["actor"]) for e in entries if e["target"] == target]
    assert mine.count(("INVALID", "alice")) == 4  # 411 twice, 413, 415: one by one
    assert ("REFUSED", "alice") in mine  # no such instance
    anonymous = [e for e in entries if e["actor"] == "anonymous"]
    assert 1 <= len(anonymous) <= 2, anonymous  # 26 anonymous attempts: at most two entries
    [summary] = [e for e in anonymous if e["target"] == "*"]
    assert "refused unread (rate limited)" in summary["detail"]
