"""The identity provider the console signs in with, as the stack sets it up: authorization code
with PKCE only, and the team groups the console's roles come from in the ID token."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:8088/auth/callback"


def sign_in(idp: dict[str, str], user: str, *, pkce: bool = True) -> requests.Response:
    """The browser's part of the code flow: the login form, filled in; the provider's answer."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    params = {"client_id": idp["CHOREOGRAPH_OIDC_CLIENT_ID"], "response_type": "code",
              "scope": "openid profile", "redirect_uri": REDIRECT, "state": "s"}  # fmt: skip
    if pkce:
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    auth = f"{idp['CHOREOGRAPH_OIDC_ISSUER']}/protocol/openid-connect/auth"
    browser = requests.Session()
    form = browser.get(auth, params=params, allow_redirects=False, timeout=30)
    if form.status_code == 302:
        return form  # refused before any form: the error is in the redirect
    action = html.unescape(re.search(r'action="([^"]+)"', form.text).group(1))  # type: ignore[union-attr]
    # Keycloak's cookies are Secure; a browser sends them to 127.0.0.1, requests does not.
    cookies = {c.name: c.value for c in browser.cookies}
    answer = requests.post(
        action, data={"username": user, "password": idp["CHOREOGRAPH_DEMO_PASSWORD"]},
        cookies=cookies, allow_redirects=False, timeout=30,
    )  # fmt: skip
    answer.verifier = verifier  # type: ignore[attr-defined]
    return answer


def claims(idp: dict[str, str], answer: requests.Response) -> dict[str, Any]:
    code = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)  # type: ignore[union-attr]
    token = requests.post(
        f"{idp['CHOREOGRAPH_OIDC_ISSUER']}/protocol/openid-connect/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
              "client_id": idp["CHOREOGRAPH_OIDC_CLIENT_ID"],
              "client_secret": idp["CHOREOGRAPH_OIDC_CLIENT_SECRET"],
              "code_verifier": answer.verifier},  # type: ignore[attr-defined]
        timeout=30,
    ).json()  # fmt: skip
    payload = token["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_demo_users_sign_in_with_their_team_groups(identity_provider: dict[str, str]) -> None:
    found = {}
    for user in identity_provider["CHOREOGRAPH_DEMO_USERS"].split(","):
        answer = sign_in(identity_provider, user)
        assert answer.status_code == 302 and "code=" in answer.headers["Location"], user
        found[user] = sorted(claims(identity_provider, answer)["groups"])
    assert found == {
        "alice": ["team-orders-operators"],
        "bob": ["team-orders-approvers", "team-orders-operators"],
        "carol": ["team-payments-approvers", "team-payments-operators"],
        "victor": ["choreograph-viewers"],
    }


def test_a_code_request_without_pkce_is_refused(identity_provider: dict[str, str]) -> None:
    answer = sign_in(identity_provider, "alice", pkce=False)
    assert answer.status_code == 302
    assert "error=invalid_request" in answer.headers["Location"]
    assert "code_challenge" in answer.headers["Location"]
