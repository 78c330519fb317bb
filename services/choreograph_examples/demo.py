"""`python -m choreograph_examples.demo` (what `make demo` runs): the reference choreography,
end to end.

Registers the contracts, starts the four team services (orders, payments and inventory on
choreograph, shipping as a Faust app) and the saga tracker as separate processes on the local
stack, places a few hundred orders through the shop's EventPublisher (some declined, some out of
stock, one whose payment never answers), follows them in the tracker's API and prints a summary
and the trace page. Deadlines run 60 times faster than in processes/ so the stalled payment times
out within the run. Exits 1 when what the tracker saw differs from what the orders were set up to
do, so the demo doubles as an end-to-end check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import yaml
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from choreograph import AvroSerde, EventPublisher
from choreograph.process.definition import ProcessDefinition, parse_definition
from choreograph.testing.servers import Servers, resolve_servers
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.payments.service import DECLINE_ABOVE, STALLED_CUSTOMER
from saga_tracker.access import digest, new_token

REPO = Path(__file__).resolve().parents[2]
TOPICS = [
    "orders.events",
    "payments.events",
    "inventory.events",
    "shipping.events",
    "payments.commands",
    "inventory.commands",
    "saga-tracker.repartition",
    "choreograph.decisions",  # keyed like the domain topics; the tracker's router reads it
    "choreograph.approvals",  # read by the services that ask (orders) and by the router
]
TEAMS = ("orders", "payments", "inventory")
ENDED = {"completed", "failed", "compensated", "needs_manual_resolution", "resolved"}


@dataclass(frozen=True)
class PlannedOrder:
    order_id: str
    kind: str  # ok, declined, out_of_stock, stalled
    order: OrderPlaced

    @property
    def expected(self) -> str:
        return "completed" if self.kind == "ok" else "compensated"


def plan(count: int, run: str, seed: int = 7) -> list[PlannedOrder]:
    """Mostly good orders; about 8% declined, 7% out of stock, and exactly one stalled."""
    rand = random.Random(seed)
    orders = []
    for i in range(count):
        roll = rand.random()
        kind = (
            "stalled"
            if i == count // 3
            else "declined"
            if roll < 0.08
            else "out_of_stock"
            if roll < 0.15
            else "ok"
        )
        sku = "OOS-LAMP" if kind == "out_of_stock" else rand.choice(["MUG-1", "TEE-M", "BOOK-7"])
        total = DECLINE_ABOVE + 500 if kind == "declined" else Decimal(rand.randint(5, 400))
        order_id = f"ord-{run}-{i:04d}"
        order = OrderPlaced(
            order_id=order_id,
            customer_id=STALLED_CUSTOMER if kind == "stalled" else f"c-{rand.randint(1, 90)}",
            customer_email="shopper@example.com",
            lines=[OrderLine(sku=sku, quantity=rand.randint(1, 3))],
            total=total,
            placed_at=datetime.now(UTC),
        )
        orders.append(PlannedOrder(order_id, kind, order))
    return orders


def accelerated(definition: ProcessDefinition, factor: float) -> dict[str, Any]:
    """The definition with every duration divided by `factor`, as YAML-ready data."""

    def scale(value: Any) -> Any:
        if isinstance(value, timedelta):
            return f"{max(1, round(value.total_seconds() / factor))}s"
        if isinstance(value, dict):
            return {k: scale(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [scale(v) for v in value]
        return value

    scaled: dict[str, Any] = scale(definition.model_dump())
    return scaled


def write_accelerated(
    folder: Path, factor: float, versions: tuple[int, ...] | None = None
) -> ProcessDefinition:
    """Every released version of the reference definition, `accelerated`, into `folder`: new
    instances start on the latest (returned, as in processes/), open ones of an earlier run end
    on theirs. `versions`: only these (a test of an earlier version's rules)."""
    folder.mkdir(parents=True, exist_ok=True)
    found = [
        parse_definition(file.read_text(), file.name).definition
        for file in (REPO / "processes").glob("order-fulfilment.v*.yaml")
    ]
    found = [d for d in found if versions is None or d.version in versions]
    for definition in found:
        (folder / f"{definition.name}.v{definition.version}.yaml").write_text(
            yaml.safe_dump(accelerated(definition, factor), sort_keys=False)
        )
    return max(found, key=lambda d: d.version)


def register_contracts(registry_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "choreograph.cli.main", "schemas", "register",
         "--registry", registry_url, "--format", "json"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"registering contracts failed:\n{result.stdout}{result.stderr}")


def create_topics(bootstrap: str, partitions: int) -> int:
    """Create the topics; the co-partitioned ones all get the same partition count (existing
    ones are grown to the largest). Returns that count."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = {
        name: len(meta.partitions) for name, meta in admin.list_topics(timeout=10).topics.items()
    }
    partitions = max([partitions, *(existing[t] for t in TOPICS if t in existing)])
    grow = [
        NewPartitions(t, partitions) for t in TOPICS if existing.get(t, partitions) < partitions
    ]
    for future in admin.create_partitions(grow).values() if grow else []:
        future.result(30)
    wanted = [NewTopic(t, partitions, 1) for t in TOPICS if t not in existing]
    wanted += [
        NewTopic(t, 1, 1, config={"cleanup.policy": "compact"} if t == "choreograph.traces" else {})
        for t in ("choreograph.alerts", "choreograph.traces", "choreograph.audit")
        if t not in existing
    ]
    for future in admin.create_topics(wanted).values() if wanted else []:
        with suppress(Exception):  # created meanwhile by another run
            future.result(30)
    _reset_stale_internal_topics(admin, existing, partitions)
    return partitions


def _reset_stale_internal_topics(
    admin: AdminClient, existing: dict[str, int], partitions: int
) -> None:
    """A team service's changelog and dead-letter topics made by an earlier run on fewer input
    partitions: the service would refuse to start on them (they must match its inputs), so the
    demo, which starts its services afresh, deletes them and lets the services make them again."""
    stale = sorted(
        name
        for name, count in existing.items()
        if count < partitions
        and name.split(".", 1)[0] in TEAMS
        and name.endswith((".changelog", ".dlq"))
    )
    if not stale:
        return
    print(f"  deleting {len(stale)} internal topic(s) of an earlier run on fewer partitions")
    for future in admin.delete_topics(stale, operation_timeout=30).values():
        with suppress(Exception):  # deleted meanwhile
            future.result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(stale) & set(admin.list_topics(timeout=10).topics):
        time.sleep(0.5)


class Fleet:
    """The team services and the tracker as child processes, with their logs in one folder."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        self.children.append((name, proc, log))

    def check(self) -> None:
        for name, proc, log in self.children:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see {log.name}")

    def stop(self) -> None:
        for _, proc, _ in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, log in self.children:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@contextmanager
def running(
    servers: Servers,
    state: Path,
    definitions: Path,
    partitions: int,
    port: int,
    modules: dict[str, str] | None = None,
    tracker_args: list[str] | None = None,
    metrics_ports: dict[str, int] | None = None,
    *,
    open_reads: bool = True,
    tracker_env: dict[str, str] | None = None,
) -> Iterator[Fleet]:
    """`modules`: a team's service run from another module (`python -m MODULE`), such as a
    variant under test in place of the reference one; `tracker_args`: more arguments for
    `saga_tracker run` (a token file, say); `metrics_ports`: where a team service (or
    "saga-tracker") serves its Prometheus metrics; `open_reads`: anyone may read traces (tests
    on loopback), else only who signs in or holds a token; `tracker_env`: the tracker's secrets."""
    ports = metrics_ports or {}
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(logs)
    base = {
        "CHOREOGRAPH_BOOTSTRAP": servers.bootstrap,
        "CHOREOGRAPH_REGISTRY_URL": servers.registry_url,
        "CHOREOGRAPH_PARTITIONS": str(partitions),
    }
    try:
        for team in TEAMS:
            env = {**base, "CHOREOGRAPH_STATE_DIR": str(state / team)}
            if team in ports:
                env["CHOREOGRAPH_METRICS_PORT"] = str(ports[team])
            module = (modules or {}).get(team, f"choreograph_examples.{team}")
            fleet.start(team, [sys.executable, "-m", module], env)
        fleet.start(
            "shipping",
            [sys.executable, "-m", "choreograph_examples.shipping", "worker", "--loglevel", "warn"],
            {**base, "CHOREOGRAPH_STATE_DIR": str(state / "shipping")},
        )
        tracker = [
            sys.executable, "-m", "saga_tracker", "run", "--definitions", str(definitions),
            "--http-port", str(port), *(["--open-reads"] if open_reads else []),
        ]  # fmt: skip
        if servers.alertmanager_url:
            tracker += ["--alertmanager", servers.alertmanager_url]
        tracker += tracker_args or []
        if "saga-tracker" in ports:
            tracker += ["--metrics-port", str(ports["saga-tracker"])]
        fleet.start(
            "saga-tracker", tracker,
            {**base, "CHOREOGRAPH_STATE_DIR": str(state / "tracker"), **(tracker_env or {})},
        )  # fmt: skip
        yield fleet
    finally:
        fleet.stop()


def own_state_for(state: Path, bootstrap: str) -> bool:
    """Local state (RocksDB stores, checkpoints, Faust tables) belongs to one Kafka cluster: when
    the broker was reset, drop it rather than have it disagree with the new changelogs. Returns
    whether it was dropped."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    cluster_id = admin.describe_cluster(request_timeout=30).result().cluster_id
    marker = state / "cluster-id"
    known = marker.read_text().strip() if marker.exists() else None
    ours = [state / name for name in (*TEAMS, "shipping", "tracker")]  # only what it writes
    dropped = known != cluster_id and any(path.exists() for path in ours)
    for path in ours if dropped else []:
        shutil.rmtree(path, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    marker.write_text(cluster_id + "\n")
    return dropped


def _request(url: str, token: str | None) -> urllib.request.Request:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.Request(url, headers=headers)


def get_json(url: str, token: str | None = None) -> Any:
    with urllib.request.urlopen(_request(url, token), timeout=10) as reply:
        return json.load(reply)


def list_instances(api: str, query: str = "", token: str | None = None) -> list[dict[str, Any]]:
    """Every instance the tracker lists for `query`, page after page (its `Link: rel=next`)."""
    found: list[dict[str, Any]] = []
    url: str | None = f"{api}/api/instances?limit=500{'&' + query if query else ''}"
    while url is not None:
        with urllib.request.urlopen(_request(url, token), timeout=10) as reply:
            found += json.load(reply)
            link = reply.headers.get("Link")
        url = f"{api}{link.split(';')[0].strip(' <>')}" if link else None
    return found


def wait_until_ready(
    admin: AdminClient, fleet: Fleet, api: str, state: Path, seconds: float = 120,
    token: str | None = None,
) -> None:  # fmt: skip
    """Every group stable, the tracker's API up, and the Faust app's tables recovered."""
    groups = [*TEAMS, "shipping", "saga-tracker", "saga-tracker-router"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fleet.check()
        if not (state / "shipping" / "ready").exists():
            time.sleep(0.5)
            continue
        with suppress(Exception):
            get_json(f"{api}/api/instances?process=none", token)
            described = admin.describe_consumer_groups(groups)
            states = {g: f.result(10) for g, f in described.items()}
            if all(s.members and str(s.state).endswith("STABLE") for s in states.values()):
                return
        time.sleep(1)
    raise SystemExit(f"services not ready after {seconds:.0f}s; logs in {fleet.logs}")


def drive(publisher: EventPublisher, orders: list[PlannedOrder], rate: float) -> dict[str, str]:
    """Place every order; returns correlation id -> order id."""
    placed: dict[str, str] = {}
    started = time.monotonic()
    for i, planned in enumerate(orders, 1):
        envelope = publisher.publish(planned.order, planned.order_id, topic="orders.events")
        placed[envelope.correlation_id] = planned.order_id
        behind = started + i / rate - time.monotonic()
        if behind > 0:
            time.sleep(behind)
        if i % 50 == 0 or i == len(orders):
            publisher.flush()
            print(f"  placed {i}/{len(orders)} orders", flush=True)
    return placed


def follow(
    api: str, placed: dict[str, str], fleet: Fleet, seconds: float, token: str | None = None
) -> dict[str, dict[str, Any]]:
    """Poll the tracker until every instance has ended; print progress as it goes."""
    deadline = time.monotonic() + seconds
    seen: dict[str, dict[str, Any]] = {}
    last = ""
    while time.monotonic() < deadline:
        fleet.check()
        for summary in list_instances(api, "process=order-fulfilment", token):
            if summary["correlation_id"] in placed:
                seen[summary["correlation_id"]] = summary
        counts = Counter(s["status"] for s in seen.values())
        line = f"  tracked {len(seen)}/{len(placed)}: " + ", ".join(
            f"{n} {status}" for status, n in sorted(counts.items())
        )
        if line != last:
            print(line, flush=True)
            last = line
        if len(seen) == len(placed) and all(s["status"] in ENDED for s in seen.values()):
            break
        time.sleep(2)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rate", type=float, default=40, help="orders placed per second")
    parser.add_argument("--speed", type=float, default=60, help="how much faster deadlines run")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--port", type=int, default=8088, help="tracker trace pages and API")
    parser.add_argument("--state", type=Path, default=Path.home() / ".local/state/choreograph/demo")
    parser.add_argument(
        "--keep", action=argparse.BooleanOptionalAction, default=sys.stdin.isatty(),
        help="keep everything running after the summary, until Enter (default on a terminal)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:6]
    servers = resolve_servers(REPO)
    print(f"stack: Kafka {servers.bootstrap}, registry {servers.registry_url}, "
          f"Alertmanager {servers.alertmanager_url or 'none'}")  # fmt: skip
    if own_state_for(args.state, servers.bootstrap):
        print(f"  {args.state} held the state of another Kafka cluster: started it afresh")
    print("registering contracts ...", flush=True)
    register_contracts(servers.registry_url)
    partitions = create_topics(servers.bootstrap, args.partitions)
    definitions = args.state / "processes"
    definition = write_accelerated(definitions, args.speed)
    orders = plan(args.orders, run)
    api = f"http://127.0.0.1:{args.port}"
    token, tracker_args, tracker_env, sign_in = console_access(args.state, api)
    with running(
        servers, args.state, definitions, partitions, args.port,
        tracker_args=tracker_args, open_reads=False, tracker_env=tracker_env,
    ) as fleet:  # fmt: skip
        print("starting orders, payments, inventory, shipping (Faust) and the saga tracker ...")
        wait_until_ready(
            AdminClient({"bootstrap.servers": servers.bootstrap}), fleet, api, args.state,
            token=token,
        )  # fmt: skip
        publisher = EventPublisher(
            {"bootstrap.servers": servers.bootstrap}, AvroSerde(servers.registry_url), "shop"
        )
        print(f"placing {len(orders)} orders at {args.rate:.0f}/s ...", flush=True)
        placed = drive(publisher, orders, args.rate)
        print("following them in the saga tracker ...", flush=True)
        patience = definition.deadline.total_seconds() / args.speed if definition.deadline else 60
        seen = follow(api, placed, fleet, seconds=60 + patience, token=token)
        ok = summarize(orders, placed, seen, api)
        print(sign_in)
        if args.keep:
            print("\neverything keeps running; press Enter to stop", flush=True)
            with suppress(KeyboardInterrupt, EOFError):
                input()
    return 0 if ok else 1


def console_access(state: Path, api: str) -> tuple[str, list[str], dict[str, str], str]:
    """Who may see the console: people through the local stack's identity provider (Keycloak,
    started if it is not running) and the demo itself through a viewer token, rather than
    reads open to everyone. Returns the demo's token, the tracker's arguments and secrets, and
    the line that tells the person at the terminal how to sign in."""
    token = new_token()
    tokens = state / "tracker-tokens.yaml"
    line = f"  - {{name: demo, role: viewer, sha256: {digest(token)}}}"
    tokens.write_text(f"tokens:\n{line}\n")
    args = ["--tokens", str(tokens)]
    started = subprocess.run(
        ["bash", str(REPO / "deploy/local/stack.sh"), "start", "keycloak"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    idp = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    if started.returncode != 0 or "CHOREOGRAPH_OIDC_ISSUER" not in idp:
        why = (started.stderr.strip().splitlines() or ["it did not start"])[-1]
        return (
            token,
            args,
            {},
            (
                f"  console            {api}/traces (no identity provider: {why}); "
                f"read with: Authorization: Bearer {token}"
            ),
        )
    args += ["--oidc-issuer", idp["CHOREOGRAPH_OIDC_ISSUER"], "--public-url", api,
             "--oidc-client-id", idp["CHOREOGRAPH_OIDC_CLIENT_ID"]]  # fmt: skip
    env = {"SAGA_TRACKER_OIDC_CLIENT_SECRET": idp["CHOREOGRAPH_OIDC_CLIENT_SECRET"],
           "SAGA_TRACKER_SESSION_SECRET": secrets.token_urlsafe(32)}  # fmt: skip
    return (
        token,
        args,
        env,
        (
            f"  console            {api}/traces: sign in as alice (orders operator), bob (orders "
            f"approver), carol (payments) or victor (viewer), password "
            f"{idp['CHOREOGRAPH_DEMO_PASSWORD']}"
        ),
    )


def summarize(
    orders: list[PlannedOrder],
    placed: dict[str, str],
    seen: dict[str, dict[str, Any]],
    api: str,
) -> bool:
    by_order = {placed[c]: s for c, s in seen.items()}
    statuses = Counter(s["status"] for s in seen.values())
    incidents = [s for s in seen.values() if s["open_incidents"]]
    kinds = Counter(o.kind for o in orders)
    wrong = [
        (o.order_id, o.expected, by_order.get(o.order_id, {}).get("status", "not tracked"))
        for o in orders
        if by_order.get(o.order_id, {}).get("status") != o.expected
    ]
    print("\nsummary")
    print(f"  orders placed      {len(orders)} ({kinds['ok']} good, {kinds['declined']} declined, "
          f"{kinds['out_of_stock']} out of stock, {kinds['stalled']} stalled payment)")  # fmt: skip
    print(f"  completed          {statuses['completed']}")
    print(f"  compensated        {statuses['compensated']}")
    other = {k: v for k, v in statuses.items() if k not in ("completed", "compensated")}
    print(f"  other              {other or 'none'}")
    print(f"  open incidents     {len(incidents)}")
    for inst in incidents:
        print(f"    {inst['business_key']}: {', '.join(inst['open_incidents'])} -> "
              f"{api}/traces/{inst['correlation_id']}")  # fmt: skip
    print(f"  trace pages        {api}/traces")
    if wrong:
        print(f"\n{len(wrong)} orders did not end as expected, e.g. {wrong[:3]}")
        return False
    print("\nevery order ended as expected")
    return True


if __name__ == "__main__":
    sys.exit(main())
