"""Sign-in to the tracker's pages through an OpenID Connect provider, for people; bearer tokens
stay for scripts (see `access`).

The authorization code flow with PKCE (S256), a `state` against forged callbacks and a `nonce`
against replayed ID tokens. The ID token's signature is checked with the provider's published
keys (JWKS) and its issuer, audience, expiry and nonce with joserfc. The session lives in a
signed cookie (Starlette's SessionMiddleware: HttpOnly, SameSite=Lax, Secure behind https,
with an expiry) and holds the person's name, groups and a CSRF token for the page forms.

Roles come from the provider's groups, by name:

    choreograph-viewers        viewer of every process
    choreograph-operators      operator of every process (a platform's on-call)
    <team>-viewers             viewer of the processes <team> owns (where reads are scoped;
                               otherwise of every process)
    <team>-operators           operator of the processes <team> owns
    <team>-approvers           approver of the processes <team> owns

A person in no such group is signed in, and may read nothing.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from saga_tracker.access import Grant, Principal, Role

SESSION_USER = "user"
SESSION_LOGIN = "login"
SESSION_CSRF = "csrf"
DISCOVERY_TTL_S = 3600.0


class SignInFailed(Exception):
    """The provider's answer cannot sign anyone in; says why (shown to the person)."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    public_url: str  # where the tracker is reached: its callback is <public_url>/auth/callback
    session_secret: str
    session_max_age_s: int = 8 * 3600

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url.rstrip('/')}/auth/callback"


ROLE_SUFFIXES: dict[str, Role] = {
    "-viewers": "viewer",
    "-operators": "operator",
    "-approvers": "approver",
}
EVERY_TEAM: dict[str, Role] = {
    "choreograph-viewers": "viewer",
    "choreograph-operators": "operator",
    "choreograph-approvers": "approver",
}


def grants_of(groups: list[str]) -> list[Grant]:
    """The roles a person's groups give, each for its team (or for every team)."""
    found: list[Grant] = []
    for group in sorted(set(groups)):
        if group in EVERY_TEAM:
            found.append((EVERY_TEAM[group], None))
            continue
        for suffix, role in ROLE_SUFFIXES.items():
            if group.endswith(suffix) and len(group) > len(suffix):
                found.append((role, frozenset({group.removesuffix(suffix)})))
    return found


def principal_of(user: dict[str, Any]) -> Principal | None:
    """The principal of a signed-in session; None when its groups give no role."""
    grants = grants_of(list(user.get("groups", [])))
    if not grants:
        return None
    (role, teams), *more = grants
    return Principal(str(user["name"]), role, teams=teams, also=tuple(more))


class OidcClient:
    """The provider's endpoints and keys (discovered, cached for an hour) and the two calls of
    the code flow: where to send the browser, and what its code is worth."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._discovered: tuple[float, dict[str, Any], KeySet] | None = None

    def _provider(self, fresh: bool = False) -> tuple[dict[str, Any], KeySet]:
        with self._lock:
            if (
                fresh
                or self._discovered is None
                or (time.monotonic() - self._discovered[0] > DISCOVERY_TTL_S)
            ):
                url = f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration"
                try:
                    meta = requests.get(url, timeout=10).json()
                    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
                except (requests.RequestException, ValueError, KeyError) as err:
                    raise SignInFailed(
                        f"the identity provider at {url} does not answer: {err}"
                    ) from None
                self._discovered = (time.monotonic(), meta, keys)
            return self._discovered[1], self._discovered[2]

    def start(self, next_path: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what the session keeps until the callback."""
        meta, _ = self._provider()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        login = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24),
                 "verifier": verifier, "next": next_path}  # fmt: skip
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": "openid profile email",
            "state": login["state"],
            "nonce": login["nonce"],
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(query)}", login

    def finish(self, login: dict[str, str], state: str, code: str) -> dict[str, Any]:
        """The signed-in person, from the callback's `code`: name, groups, ID token."""
        if not secrets.compare_digest(login.get("state", ""), state):
            raise SignInFailed("the sign-in answer does not belong to this browser; sign in again")
        meta, keys = self._provider()
        try:
            answer = requests.post(
                meta["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": self.settings.redirect_uri,
                      "code_verifier": login["verifier"]},
                auth=(self.settings.client_id, self.settings.client_secret),
                timeout=10,
            )  # fmt: skip
        except requests.RequestException as err:
            raise SignInFailed(f"the identity provider does not answer: {err}") from None
        if answer.status_code != 200:
            raise SignInFailed(f"the identity provider refused the code: {answer.text[:200]}")
        id_token = str(answer.json().get("id_token", ""))
        claims = self._verified(id_token, keys, login["nonce"])
        return {
            "name": str(claims.get("preferred_username") or claims["sub"]),
            "groups": [str(g) for g in claims.get("groups", [])],
            "id_token": id_token,
        }

    def _verified(self, id_token: str, keys: KeySet, nonce: str) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, keys)
        except JoseError:  # the provider may have rotated its keys: look once more
            _, keys = self._provider(fresh=True)
            try:
                token = jwt.decode(id_token, keys)
            except JoseError as err:
                raise SignInFailed(f"the ID token's signature does not check out: {err}") from None
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as err:
            raise SignInFailed(f"the ID token is not for this sign-in: {err}") from None
        return dict(token.claims)

    def bearer(self, token: str) -> dict[str, Any] | None:
        """The person an access token of this provider names (name and groups), for scripts
        and the CLI signed in with the device flow; None when it is not one, or is not for
        this tracker (its audience), or has expired."""
        if token.count(".") != 2:
            return None  # not a JWT: a token of the token file
        try:
            _, keys = self._provider()
        except SignInFailed:
            return None
        try:
            decoded = jwt.decode(token, keys)
        except (JoseError, ValueError):
            try:
                _, keys = self._provider(fresh=True)
                decoded = jwt.decode(token, keys)
            except (JoseError, ValueError, SignInFailed):
                return None
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.settings.issuer},
            exp={"essential": True},
            sub={"essential": True},
        )
        claims = dict(decoded.claims)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        try:
            registry.validate(claims)
        except JoseError:
            return None
        if self.settings.client_id not in audiences:
            return None
        return {
            "name": str(claims.get("preferred_username") or claims["sub"]),
            "groups": [str(g) for g in claims.get("groups", [])],
        }

    def end_session_url(self, id_token: str | None, after: str) -> str | None:
        """Where to send the browser to sign out at the provider too, if it says."""
        meta, _ = self._provider()
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.settings.client_id, "post_logout_redirect_uri": after}
        if id_token:
            query["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(query)}"


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token for its forms (made on first use)."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = session[SESSION_CSRF] = secrets.token_urlsafe(24)
    return token


def csrf_ok(session: dict[str, Any], presented: str | None) -> bool:
    token = session.get(SESSION_CSRF)
    return (
        isinstance(token, str)
        and presented is not None
        and secrets.compare_digest(token, presented)
    )
