"""People sign in to the trace pages through the identity provider (the local stack's Keycloak):
the code flow with PKCE, a signed session cookie, roles from the provider's groups, CSRF on
forms, and sign-out; a tampered cookie signs nobody in."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator

import pytest
import requests

from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access
from saga_tracker.signin import OidcSettings
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def console(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
    identity_provider: dict[str, str],
) -> Iterator[TraceServer]:
    _, kit = traced
    settings = OidcSettings(
        issuer=identity_provider["CHOREOGRAPH_OIDC_ISSUER"],
        client_id=identity_provider["CHOREOGRAPH_OIDC_CLIENT_ID"],
        client_secret=identity_provider["CHOREOGRAPH_OIDC_CLIENT_SECRET"],
        public_url="",
        session_secret=secrets.token_urlsafe(32),
    )
    srv = TraceServer(committed_instances(lambda: kit.tasks), access=Access({}),
                      signin=settings).start()  # fmt: skip
    yield srv
    srv.stop()


def sign_in(console: TraceServer, idp: dict[str, str], user: str) -> requests.Session:
    """A browser: asks for the list, is sent to sign in, fills in the provider's form."""
    browser = requests.Session()
    asked = browser.get(f"{console.url}/traces", allow_redirects=False, timeout=30)
    assert asked.status_code == 303 and asked.headers["Location"] == "/auth/login?next=%2Ftraces"
    start = browser.get(f"{console.url}{asked.headers['Location']}", allow_redirects=False)
    assert start.status_code == 303 and start.headers["Location"].startswith(
        idp["CHOREOGRAPH_OIDC_ISSUER"]
    )
    assert "code_challenge_method=S256" in start.headers["Location"]
    provider = requests.Session()  # Keycloak's cookies are Secure: kept by hand over http
    form = provider.get(start.headers["Location"], timeout=30)
    action = html.unescape(re.search(r'action="([^"]+)"', form.text).group(1))  # type: ignore[union-attr]
    answered = requests.post(
        action, data={"username": user, "password": idp["CHOREOGRAPH_DEMO_PASSWORD"]},
        cookies={c.name: c.value for c in provider.cookies}, allow_redirects=False, timeout=30,
    )  # fmt: skip
    callback = answered.headers["Location"]
    assert callback.startswith(f"{console.url}/auth/callback?")
    landed = browser.get(callback, allow_redirects=False, timeout=30)
    assert landed.status_code == 303 and landed.headers["Location"] == "/traces"
    cookie = next(c for c in browser.cookies if c.name == "saga_tracker_session")
    attributes = {k.lower(): v for k, v in cookie._rest.items()}  # type: ignore[attr-defined]
    assert "httponly" in attributes and str(attributes.get("samesite")).lower() == "lax"
    assert cookie.expires is not None  # the session ends
    return browser


def test_sign_in_read_and_sign_out(console: TraceServer, identity_provider: dict[str, str]) -> None:
    bob = sign_in(console, identity_provider, "bob")
    page = bob.get(f"{console.url}/traces", timeout=30)
    assert page.status_code == 200 and "signed in as bob" in page.text
    assert 'href="/traces/stuck"' in page.text
    assert bob.get(f"{console.url}/api/instances", timeout=30).status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    # A form without the page's CSRF token is refused; with it, bob is signed out.
    forged = bob.post(f"{console.url}/auth/logout", data={"csrf": "guess"}, allow_redirects=False)
    assert forged.status_code == 403
    out = bob.post(f"{console.url}/auth/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status_code == 303
    assert out.headers["Location"].startswith(identity_provider["CHOREOGRAPH_OIDC_ISSUER"])
    again = bob.get(f"{console.url}/traces", allow_redirects=False, timeout=30)
    assert again.status_code == 303 and again.headers["Location"].startswith("/auth/login")


def test_a_session_posting_without_its_csrf_token_is_refused(
    console: TraceServer, identity_provider: dict[str, str]
) -> None:
    victor = sign_in(console, identity_provider, "victor")
    page = victor.get(f"{console.url}/traces/stuck", timeout=30)
    assert page.status_code == 200 and "signed in as victor" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    body = {"action": "resolve", "reason": "r"}
    refused = victor.post(f"{console.url}/api/approvals/a-1", json=body, timeout=30)
    assert refused.status_code in (403, 503)  # no desk here: CSRF is checked first when it is
    assert victor.post(f"{console.url}/api/approvals/a-1", json=body, timeout=30,
                       headers={"X-CSRF-Token": token}).status_code == 503  # fmt: skip


def test_a_tampered_session_cookie_signs_nobody_in(
    console: TraceServer, identity_provider: dict[str, str]
) -> None:
    alice = sign_in(console, identity_provider, "alice")
    cookie = next(c for c in alice.cookies if c.name == "saga_tracker_session")
    forged = requests.Session()
    value = cookie.value or ""
    forged.cookies.set(
        "saga_tracker_session", value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    )
    answer = forged.get(f"{console.url}/traces", allow_redirects=False, timeout=30)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/auth/login")
    assert forged.get(f"{console.url}/api/instances", timeout=30).status_code == 401
