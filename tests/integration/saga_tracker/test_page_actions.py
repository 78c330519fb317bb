"""The pages' buttons: forms a signed-in person posts with the session's CSRF token; each goes
through the same checks as the API (role, team, four eyes) and shows its result as a page."""

from __future__ import annotations

import json
import uuid
from base64 import b64encode
from collections.abc import Callable, Iterator

import pytest
import requests
from itsdangerous import TimestampSigner

from choreograph.contracts.serde import AvroSerde
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access
from saga_tracker.actions import ActionDesk
from saga_tracker.signin import OidcSettings
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)
from tests.unit.saga_tracker.test_tracker_service import MODELS, V1, definitions

SECRET = "s" * 32
CSRF = "the-csrf-token"


pytestmark = pytest.mark.integration


@pytest.fixture
def console(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
) -> Iterator[TraceServer]:
    _, kit = traced
    desk = ActionDesk({"bootstrap.servers": bootstrap_servers},
                      AvroSerde(registry_url, auto_register=True), definitions(V1), MODELS,
                      repartition=new_topic("saga-tracker.repartition"),
                      transactional_id=f"pages-{uuid.uuid4().hex[:8]}")  # fmt: skip
    signin = OidcSettings("http://127.0.0.1:9/realms/x", "saga-tracker", "c", "", SECRET)
    srv = TraceServer(committed_instances(lambda: kit.tasks), access=Access({}), desk=desk,
                      signin=signin).start()  # fmt: skip
    yield srv
    srv.stop()


def as_person(name: str, *groups: str) -> requests.Session:
    """A browser with the signed session cookie a sign-in would have set."""
    session = {"user": {"name": name, "groups": list(groups), "id_token": ""}, "csrf": CSRF}
    value = TimestampSigner(SECRET).sign(b64encode(json.dumps(session).encode())).decode()
    browser = requests.Session()
    browser.cookies.set("saga_tracker_session", value)
    return browser


def act(browser: requests.Session, console: TraceServer, **form: str) -> requests.Response:
    return browser.post(f"{console.url}/traces/stuck/actions", data=form, timeout=30,
                        allow_redirects=False)  # fmt: skip


def test_the_trace_page_offers_its_buttons_to_operators_only(console: TraceServer) -> None:
    carol = as_person("carol", "team-payments-operators")
    page = carol.get(f"{console.url}/traces/stuck", timeout=30).text
    assert 'action="/traces/stuck/actions"' in page and f'value="{CSRF}"' in page
    victor = as_person("victor", "choreograph-viewers")
    assert 'class="act"' not in victor.get(f"{console.url}/traces/stuck", timeout=30).text


def test_a_button_of_another_team_shows_who_owns_the_process(console: TraceServer) -> None:
    carol = as_person("carol", "team-payments-operators")
    done = act(
        carol, console, csrf=CSRF, action="resolve", reason="looked", process="order-fulfilment"
    )
    assert done.status_code == 403
    assert "order-fulfilment is owned by team-orders and commerce-ops" in done.text
    assert 'href="/traces/stuck"' in done.text  # back to the instance


def test_a_viewers_button_and_a_foreign_form_are_refused(console: TraceServer) -> None:
    victor = as_person("victor", "choreograph-viewers")
    refused = act(victor, console, csrf=CSRF, action="resolve", reason="x")
    assert refused.status_code == 403 and "may read traces but not act" in refused.text
    carol = as_person("carol", "team-payments-operators")
    forged = act(carol, console, csrf="guessed", action="resolve", reason="x")
    assert forged.status_code == 403 and "stale or foreign" in forged.text
    anonymous = requests.post(f"{console.url}/traces/stuck/actions", data={"csrf": CSRF},
                              timeout=30)  # fmt: skip
    assert anonymous.status_code == 401 and "sign in to act" in anonymous.text


def test_an_owning_operators_button_is_accepted_and_shown(console: TraceServer) -> None:
    alice = as_person("alice", "team-orders-operators")
    done = act(alice, console, csrf=CSRF, action="resolve", reason="customer called",
               process="order-fulfilment")  # fmt: skip
    assert done.status_code == 200 and "accepted" in done.text, done.text


def test_a_decision_from_the_approvals_page_goes_through_the_desks_checks(
    console: TraceServer,
) -> None:
    dave = as_person("dave", "team-payments-approvers")
    decision = {"csrf": CSRF, "decision": "grant", "reason": "ok"}
    answer = dave.post(f"{console.url}/approvals/a-unknown", data=decision, timeout=30)
    assert answer.status_code == 404 and "no approval request a-unknown" in answer.text
    assert 'href="/approvals"' in answer.text
