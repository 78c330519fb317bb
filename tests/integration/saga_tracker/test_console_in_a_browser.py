"""The console in a real browser (Debian's headless Chromium through chromium-driver): on-call
signs in through the identity provider, filters the list, opens an instance and sees its
timeline, retries a step; a second person grants an approval; an operator of another team is
refused, told who owns the process. With CHOREOGRAPH_SCREENSHOTS=<folder> the pages are saved
there (docs/images holds the ones docs/saga-tracker.md shows)."""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from choreograph.contracts.serde import AvroSerde
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access
from saga_tracker.actions import ActionDesk
from saga_tracker.service import build_tracker
from saga_tracker.signin import OidcSettings
from saga_tracker.traces import TraceServer, committed_instances
from tests.unit.saga_tracker.test_tracker_service import HAPPY_PATH, MODELS, V1, definitions
from tests.unit.saga_tracker.test_tracker_service import send as track

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def browser_tools() -> dict[str, str]:
    found = subprocess.run(["bash", str(REPO / "deploy/local/browser.sh")], capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    if found.returncode != 0:
        pytest.fail(f"no browser: {found.stderr.strip()[-300:]} (make browser installs it)")
    return dict(line.split("=", 1) for line in found.stdout.splitlines() if "=" in line)


@pytest.fixture
def console(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    identity_provider: dict[str, str],
) -> Iterator[TraceServer]:
    """A tracker's console over three instances: one done, one whose shipping is late with an
    alert (a step to retry), one compensated; and an approval request of the late one."""
    # On the wall clock, so the pictures read as on-call would see them now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=80)
    kit = TestKit(build_tracker(definitions(V1), MODELS), start=start)
    for kind in HAPPY_PATH:
        track(kit, f"com.acme.{kind}", corr="done", key="o-1")
        kit.advance(timedelta(minutes=1))
    for kind in ("orders.OrderPlaced", "payments.PaymentAuthorized", "inventory.StockReserved"):
        track(kit, f"com.acme.{kind}", corr="slow", key="o-2")
        kit.advance(timedelta(minutes=3))
    kit.advance(timedelta(minutes=58))  # shipping's deadline passes: an alert, still running
    approvals = [{"approval_id": "ap-1", "correlation_id": "slow", "status": "pending",
                  "machine": "goodwill", "instance": "o-2", "state": "requested",
                  "summary": "goodwill refund of 5.00", "requested_by": "alice",
                  "requested_at": (start + timedelta(minutes=70)).isoformat()}]  # fmt: skip
    desk = ActionDesk({"bootstrap.servers": bootstrap_servers},
                      AvroSerde(registry_url, auto_register=True), definitions(V1), MODELS,
                      repartition=new_topic("saga-tracker.repartition"),
                      transactional_id=f"console-{uuid.uuid4().hex[:8]}")  # fmt: skip
    signin = OidcSettings(identity_provider["CHOREOGRAPH_OIDC_ISSUER"],
                          identity_provider["CHOREOGRAPH_OIDC_CLIENT_ID"],
                          identity_provider["CHOREOGRAPH_OIDC_CLIENT_SECRET"], "",
                          secrets.token_urlsafe(32))  # fmt: skip
    srv = TraceServer(committed_instances(lambda: kit.tasks), access=Access({}), desk=desk,
                      signin=signin, approvals=lambda: approvals).start()  # fmt: skip
    yield srv
    srv.stop()


@pytest.fixture
def browsers() -> Iterator[Callable[[], webdriver.Chrome]]:
    """Fresh headless Chromium windows (each its own profile: one person each)."""
    tools = browser_tools()
    opened: list[webdriver.Chrome] = []

    def open_one() -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = tools["CHOREOGRAPH_CHROMIUM"]
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1200,900"):  # fmt: skip
            options.add_argument(flag)
        service = DriverService(tools["CHOREOGRAPH_CHROMEDRIVER"])
        driver = webdriver.Chrome(options=options, service=service)
        opened.append(driver)
        return driver

    yield open_one
    for driver in opened:
        driver.quit()


def sign_in(driver: webdriver.Chrome, console: TraceServer, idp: dict[str, str], user: str,
            path: str = "/traces") -> None:  # fmt: skip
    driver.get(f"{console.url}{path}")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "username"))
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(idp["CHOREOGRAPH_DEMO_PASSWORD"])
    driver.find_element(By.ID, "kc-login").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(console.url))
    assert f"signed in as {user}" in driver.page_source


def shot(driver: webdriver.Chrome, name: str) -> None:
    folder = os.environ.get("CHOREOGRAPH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"console-{name}.png"))


def test_on_call_works_an_incident_from_the_browser(
    console: TraceServer,
    browsers: Callable[[], webdriver.Chrome],
    identity_provider: dict[str, str],
) -> None:
    alice = browsers()
    sign_in(alice, console, identity_provider, "alice")
    Select(alice.find_element(By.NAME, "status")).select_by_visible_text("running")
    alice.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(alice, 10).until(lambda d: "status=running" in d.current_url)
    links = [a.text for a in alice.find_elements(By.CSS_SELECTOR, "table a")]
    assert links == ["slow"], links
    shot(alice, "list")
    alice.find_element(By.LINK_TEXT, "slow").click()
    WebDriverWait(alice, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.timeline"))
    bars = alice.find_elements(By.CSS_SELECTOR, "svg.timeline rect.bar")
    assert len(bars) >= 3  # payment, reservation, shipping
    assert alice.find_elements(By.CSS_SELECTOR, "svg.timeline line.tick")  # deadlines
    shot(alice, "instance")
    Select(alice.find_element(By.NAME, "action")).select_by_visible_text("retry")
    Select(alice.find_element(By.NAME, "step")).select_by_visible_text("shipping")
    alice.find_element(By.NAME, "reason").send_keys("carrier back online")
    alice.find_element(By.CSS_SELECTOR, "form.act button").click()
    WebDriverWait(alice, 30).until(lambda d: "<h1>" in d.page_source and "Trace" not in d.title)
    assert "accepted" in alice.page_source, alice.page_source[:2000]

    bob = browsers()
    sign_in(bob, console, identity_provider, "bob", "/approvals")
    shot(bob, "approvals")
    bob.find_element(By.CSS_SELECTOR, "form.decide input[name=reason]").send_keys("within policy")
    bob.find_element(By.CSS_SELECTOR, "form.decide button[value=grant]").click()
    WebDriverWait(bob, 30).until(lambda d: "Approval requests" not in d.title)
    assert "grant accepted" in bob.page_source, bob.page_source[:2000]

    carol = browsers()
    sign_in(carol, console, identity_provider, "carol", "/traces/slow")
    Select(carol.find_element(By.NAME, "action")).select_by_visible_text("resolve")
    carol.find_element(By.NAME, "reason").send_keys("not mine")
    carol.find_element(By.CSS_SELECTOR, "form.act button").click()
    WebDriverWait(carol, 30).until(lambda d: "Not done" in d.page_source)
    assert "order-fulfilment is owned by team-orders" in carol.page_source


@pytest.fixture
def batch_console(
    bootstrap_servers: str,
    registry_url: str,
    new_topic: Callable[..., str],
    identity_provider: dict[str, str],
) -> Iterator[tuple[TraceServer, TestKit, TestKit, str]]:
    """A console over five running orders, whose batches go to the broker; the test hands them
    to a batch runner (a TestKit), the runner's actions to the tracker and back."""
    from saga_tracker.batches import STATE, build_batch_runner

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    kit = TestKit(build_tracker(definitions(V1), MODELS), start=start)
    for i in range(5):
        track(kit, "com.acme.orders.OrderPlaced", corr=f"run-{i}", key=f"o-{i}")
        kit.advance(timedelta(minutes=1))
    track(kit, "com.acme.orders.OrderPlaced", corr="other", key="o-9")
    track(kit, "com.acme.orders.OrderCancelled", corr="other", key="o-9")
    runner = TestKit(build_batch_runner(MODELS, repartition="saga-tracker.repartition"),
                     start=start)  # fmt: skip
    batches = new_topic("saga-tracker.batches")
    desk = ActionDesk({"bootstrap.servers": bootstrap_servers},
                      AvroSerde(registry_url, auto_register=True), definitions(V1), MODELS,
                      repartition=new_topic("saga-tracker.repartition"),
                      transactional_id=f"console-{uuid.uuid4().hex[:8]}",
                      batches=batches)  # fmt: skip
    signin = OidcSettings(identity_provider["CHOREOGRAPH_OIDC_ISSUER"],
                          identity_provider["CHOREOGRAPH_OIDC_CLIENT_ID"],
                          identity_provider["CHOREOGRAPH_OIDC_CLIENT_SECRET"], "",
                          secrets.token_urlsafe(32))  # fmt: skip

    def kept() -> list[dict[str, object]]:
        views = [task.committed_view(STATE) for task in runner.tasks]
        return [value for view in views if view is not None for _, value in view.items()]

    srv = TraceServer(committed_instances(lambda: kit.tasks), access=Access({}), desk=desk,
                      signin=signin, facts=definitions(V1).facts(),
                      batches=kept).start()  # fmt: skip
    yield srv, kit, runner, batches
    srv.stop()


def test_on_call_repairs_many_instances_at_once_from_the_browser(
    batch_console: tuple[TraceServer, TestKit, TestKit, str],
    browsers: Callable[[], webdriver.Chrome],
    identity_provider: dict[str, str],
    bootstrap_servers: str,
    registry_url: str,
) -> None:
    from choreograph.contracts.serde import AvroSerde as Serde
    from tests.kafka_helpers import committed_consumer

    console, kit, runner, batches = batch_console
    alice = browsers()
    sign_in(alice, console, identity_provider, "alice", "/traces?status=running")
    alice.find_element(By.CSS_SELECTOR, "a.batch").click()
    WebDriverWait(alice, 10).until(lambda d: d.find_elements(By.ID, "count"))
    assert alice.find_element(By.ID, "count").text == "5"  # the count, before anything is done
    assert len(alice.find_elements(By.CSS_SELECTOR, "table a")) == 5  # and a sample
    shot(alice, "batch-dry-run")
    Select(alice.find_element(By.NAME, "action")).select_by_visible_text("pause")
    alice.find_element(By.NAME, "reason").send_keys("payments deploy, INC-7")
    alice.find_element(By.CSS_SELECTOR, "form.run button").click()
    WebDriverWait(alice, 30).until(lambda d: "/batches/" in d.current_url)
    batch_id = alice.current_url.rsplit("/", 1)[1]

    # What the tracker's batch runner does with it: read it from the broker, dispatch, apply.
    consumer = committed_consumer(bootstrap_servers, batches)
    serde = Serde(registry_url)
    requested = None
    for _ in range(60):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            requested = serde.deserialize(msg.value(), MODELS["dev.choreograph.BatchRequested"])
            break
    consumer.close()
    assert requested is not None and requested.event.batch_id == batch_id
    assert requested.event.total == 5 and requested.event.actor == "alice"
    runner.send(requested.event, batch_id, topic="saga-tracker.batches")
    runner.advance(timedelta(0))
    for action in runner.emitted(topic="saga-tracker.repartition"):
        kit.send(action.event, action.key, topic="saga-tracker.repartition",
                 correlation_id=action.key)  # fmt: skip
    for done in kit.emitted(topic="saga-tracker.batches"):
        runner.send(done.event, done.key, topic="saga-tracker.batches")

    WebDriverWait(alice, 30).until(
        lambda d: d.find_element(By.ID, "batch-status").text == "done"
    )  # the page follows the batch by itself
    assert alice.find_element(By.ID, "applied").text == "5"
    assert alice.find_element(By.ID, "refused").text == "0"
    shot(alice, "batch")
    alice.get(f"{console.url}/traces/run-0")
    assert "paused since" in alice.page_source
    assert alice.find_elements(By.CSS_SELECTOR, "svg.timeline rect.pause")
