"""`choreograph instances` signs a person in with the identity provider's device flow (the local
stack's Keycloak): the command prints where to go and which code to enter, the person signs in
there, and from then on the command asks the tracker with that person's access token, whose
groups give the roles, as the console's sign-in does."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from saga_tracker.traces import TraceServer
from tests.integration.saga_tracker.test_signin import console as tracker  # noqa: F401 (fixture)
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "choreograph.cli.main", "instances"]


def approve(verification: str, user: str, password: str, issuer: str) -> None:
    """What the person does in a browser: open the page, sign in, grant the command access."""
    jar: dict[str, str] = {}  # Keycloak's cookies are Secure: kept by hand over http

    def go(method: str, url: str, **form: str) -> requests.Response:
        reply = requests.request(method, urljoin(issuer, url), data=form or None, cookies=jar,
                                 allow_redirects=False, timeout=30)  # fmt: skip
        jar.update({c.name: c.value for c in reply.cookies})
        while reply.status_code in (302, 303):
            reply = go("GET", reply.headers["Location"])
        return reply

    page = go("GET", verification)
    action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    page = go("POST", action, username=user, password=password)
    consent = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert consent is not None, page.text[:500]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    done = go("POST", html.unescape(consent.group(1)), **hidden, accept="Yes")
    assert "Device Login Successful" in done.text


def test_the_command_signs_in_with_the_device_flow_and_reads_as_that_person(
    tracker: TraceServer,  # noqa: F811  (the console of test_signin: sign-in, no tokens)
    identity_provider: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("CHOREOGRAPH_TRACKER_TOKEN", None)
    issuer = identity_provider["CHOREOGRAPH_OIDC_ISSUER"]

    # Nobody signed in: the tracker refuses, and the command says how to sign in.
    refused = subprocess.run([*CLI, "list", "--tracker", tracker.url], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "choreograph instances login --issuer" in refused.stderr

    login = subprocess.Popen([*CLI, "login", "--issuer", issuer], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert login.stderr is not None
    said = login.stderr.readline()
    found = re.match(r"To sign in, open (\S+) and enter the code (\S+)", said)
    assert found is not None, said
    approve(found.group(1), "alice", identity_provider["CHOREOGRAPH_DEMO_PASSWORD"], issuer)
    out, _ = login.communicate(timeout=60)
    assert login.returncode == 0 and "signed in at" in out
    kept = tmp_path / "choreograph" / "tracker-login.json"
    assert kept.stat().st_mode & 0o777 == 0o600

    listed = subprocess.run([*CLI, "list", "--tracker", tracker.url, "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {i["correlation_id"] for i in json.loads(listed.stdout)} == {"done", "stuck"}
    shown = subprocess.run([*CLI, "show", "stuck", "--tracker", tracker.url], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0 and "reservation: compensated" in shown.stdout

    # An expired access token is renewed with the refresh token.
    state = json.loads(kept.read_text())
    kept.write_text(json.dumps({**state, "expires_at": 0}))
    again = subprocess.run([*CLI, "list", "--tracker", tracker.url], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(kept.read_text())["access_token"] != state["access_token"]

    out = subprocess.run([*CLI, "logout"], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "signed out" and not kept.exists()
