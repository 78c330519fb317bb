"""How the command line reaches the saga tracker's API: where it is, and who asks.

Who asks is a bearer token: `--token` (or CHOREOGRAPH_TRACKER_TOKEN), a token of the tracker's
token file; or the access token of a person signed in with the OpenID Connect device flow
(`choreograph instances login`, RFC 8628), kept in the user's configuration folder (mode 0600)
with its refresh token and renewed when it expires. The tracker checks the token either way.

A tracker that does not answer is one line and exit 2, as an absent broker is for every
cluster command.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

UNREACHABLE = 2
DEFAULT_URL = "http://127.0.0.1:8088"
CLI_CLIENT = "choreograph-cli"


class TrackerAway(Exception):
    """The tracker does not answer; says where it was asked."""


class SignInFailed(Exception):
    """The device flow did not sign anyone in; says why."""


def login_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "choreograph" / "tracker-login.json"


@dataclass
class Tracker:
    url: str
    token: str | None
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return requests.request(
                method,
                f"{self.url.rstrip('/')}{path}",
                json=body,
                params={k: v for k, v in params.items() if v is not None} or None,
                headers=headers,
                timeout=self.timeout_s,
            )
        except requests.RequestException as err:
            why = "timed out" if isinstance(err, requests.Timeout) else "connection refused"
            if not isinstance(err, requests.ConnectionError | requests.Timeout):
                why = type(err).__name__
            raise TrackerAway(f"the saga tracker at {self.url} does not answer ({why})") from None


def tracker_from(url: str | None, token: str | None) -> Tracker:
    """The tracker at `url` (or CHOREOGRAPH_TRACKER_URL), asked with `token` (or
    CHOREOGRAPH_TRACKER_TOKEN, or the signed-in person's access token)."""
    where = url or os.environ.get("CHOREOGRAPH_TRACKER_URL") or DEFAULT_URL
    bearer = token or os.environ.get("CHOREOGRAPH_TRACKER_TOKEN") or signed_in_token()
    return Tracker(where, bearer)


# -- the device flow ----------------------------------------------------------------------------


def _discover(issuer: str) -> dict[str, Any]:
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        found: dict[str, Any] = requests.get(url, timeout=10).json()
    except (requests.RequestException, ValueError) as err:
        raise SignInFailed(f"the identity provider at {url} does not answer: {err}") from None
    if "device_authorization_endpoint" not in found:
        raise SignInFailed(f"{issuer} offers no device flow (device_authorization_endpoint)")
    return found


def device_login(
    issuer: str, client_id: str = CLI_CLIENT, *, say: Any = None, wait_s: float | None = None
) -> dict[str, Any]:
    """Sign in with the device flow: print where to go and which code to enter, wait until the
    person has, keep the tokens. Returns what was kept."""
    meta = _discover(issuer)
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        asked = requests.post(
            meta["device_authorization_endpoint"],
            data={"client_id": client_id, "scope": "openid"},
            timeout=10,
        )
    except requests.RequestException as err:
        raise SignInFailed(f"the identity provider does not answer: {err}") from None
    if asked.status_code != 200:
        raise SignInFailed(f"the identity provider refused the device flow: {asked.text[:200]}")
    grant = asked.json()
    where = grant.get("verification_uri_complete") or grant["verification_uri"]
    say(f"To sign in, open {where} and enter the code {grant['user_code']}")
    interval = float(grant.get("interval", 5))
    ends = time.monotonic() + float(wait_s or grant.get("expires_in", 600))
    while time.monotonic() < ends:
        time.sleep(interval)
        answer = requests.post(
            meta["token_endpoint"],
            data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                  "device_code": grant["device_code"], "client_id": client_id},
            timeout=10,
        )  # fmt: skip
        body = answer.json()
        if answer.status_code == 200:
            return _keep(issuer, client_id, body, meta["token_endpoint"])
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise SignInFailed(f"not signed in: {body.get('error_description') or error}")
    raise SignInFailed("not signed in: the code expired before it was entered; try again")


def _keep(issuer: str, client_id: str, tokens: dict[str, Any], endpoint: str) -> dict[str, Any]:
    kept = {
        "issuer": issuer,
        "client_id": client_id,
        "token_endpoint": endpoint,
        "access_token": tokens["access_token"],
        "refresh_token": tokens.get("refresh_token"),
        "expires_at": time.time() + float(tokens.get("expires_in", 300)),
    }
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(kept, out)
    return kept


def signed_in_token() -> str | None:
    """The signed-in person's access token, renewed with the refresh token when it expired;
    None when nobody signed in (or the sign-in ran out: sign in again)."""
    path = login_file()
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if float(kept.get("expires_at", 0)) > time.time() + 10:
        return str(kept["access_token"])
    if not kept.get("refresh_token"):
        return None
    try:
        answer = requests.post(
            kept["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": kept["refresh_token"],
                  "client_id": kept["client_id"]},
            timeout=10,
        )  # fmt: skip
    except requests.RequestException:
        return None
    if answer.status_code != 200:
        return None
    renewed = _keep(kept["issuer"], kept["client_id"], answer.json(), kept["token_endpoint"])
    return str(renewed["access_token"])


def logout() -> bool:
    try:
        login_file().unlink()
        return True
    except FileNotFoundError:
        return False


OPEN_STATUSES = ("running", "compensating", "failed")  # instances not yet settled


def open_instances(totals: dict[str, Any]) -> int:
    """How many instances `GET /api/instances/totals` counts as still open."""
    return sum(int(r["count"]) for r in totals.get("by_status", [])
               if r.get("status") in OPEN_STATUSES)  # fmt: skip
