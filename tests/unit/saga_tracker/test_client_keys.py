"""Whom a failed attempt counts against: the signed-in principal, or the client's address as the
trusted proxies report it; never everyone behind one ingress."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from starlette.requests import Request

from saga_tracker.access import Access, Principal, digest
from saga_tracker.throttle import ClientKeys, FailedAttempts
from saga_tracker.traces import TraceServer, committed_instances


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    keys = ClientKeys(["10.0.0.0/8", "192.0.2.7"])
    assert keys.address("198.51.100.1", "203.0.113.5") == "198.51.100.1"  # not a proxy: ignored
    assert keys.address("10.1.2.3", "203.0.113.5") == "203.0.113.5"
    # A client that sends its own X-Forwarded-For cannot pick its address: the right-most
    # address the proxies did not add is the one the outermost proxy saw.
    assert keys.address("10.1.2.3", "1.2.3.4, 203.0.113.5, 192.0.2.7") == "203.0.113.5"
    assert keys.address("10.1.2.3", None) == "10.1.2.3"
    assert keys.key("10.1.2.3", "203.0.113.5", "olga") == "principal:olga"
    assert keys.key("10.1.2.3", "203.0.113.5", None) == "address:203.0.113.5"
    with pytest.raises(ValueError, match="'ingress' is not an address or a network"):
        ClientKeys(["ingress"])


@pytest.fixture
def behind_proxy() -> Iterator[TraceServer]:
    """The API behind an ingress at 127.0.0.1 (every test request comes from there)."""
    access = Access({digest("olga-token"): Principal("olga", "operator")})
    server = TraceServer(
        committed_instances(list),
        access=access,
        failures=FailedAttempts(limit=3, window_s=60),
        clients=ClientKeys(["127.0.0.1"]),
    )
    yield server.start()
    server.stop()


def status(url: str, token: str | None, forwarded_for: str | None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if forwarded_for:
        request.add_header("X-Forwarded-For", forwarded_for)
    try:
        with urllib.request.urlopen(request) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_a_guesser_behind_the_ingress_locks_out_only_itself(behind_proxy: TraceServer) -> None:
    url = f"{behind_proxy.url}/api/instances"
    guesses = [status(url, "guess", "203.0.113.5") for _ in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert status(url, None, "203.0.113.6") == 401  # another client: not rate limited
    assert status(url, "olga-token", "203.0.113.5") != 429  # signed in: never locked out


def test_without_trusted_proxies_a_signed_in_operator_is_still_not_locked_out() -> None:
    access = Access({digest("olga-token"): Principal("olga", "operator")})
    server = TraceServer(
        committed_instances(list),
        access=access,
        failures=FailedAttempts(limit=2, window_s=60),
    ).start()
    try:
        url = f"{server.url}/api/instances"
        assert [status(url, "guess", "203.0.113.5") for _ in range(3)][-1] == 429
        # Forwarded-For from an untrusted peer is ignored: the guesser's address is the peer's.
        assert status(url, "guess", "198.51.100.77") == 429
        assert status(url, "olga-token", None) != 429
    finally:
        server.stop()


def request(peer: str, headers: dict[str, str]) -> Request:
    """A request as the server sees it: its peer and its headers."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw,
                    "client": (peer, 40000), "query_string": b""})  # fmt: skip


def test_a_signed_in_operator_s_bad_requests_count_against_that_operator_only(
    behind_proxy: TraceServer,
) -> None:
    seen = request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})
    for _ in range(3):
        behind_proxy._failed(seen, {"actor": "olga"}, "INVALID", "malformed body")
    failures = behind_proxy.failures
    assert failures.retry_after("principal:olga") > 0
    assert failures.retry_after("address:203.0.113.9") == 0  # the address is not blamed
    url = f"{behind_proxy.url}/api/instances"
    assert status(url, None, "203.0.113.9") == 401  # anonymous there: not rate limited
