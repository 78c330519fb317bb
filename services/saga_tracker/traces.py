"""Process traces over HTTP: list and filter instances, one instance's timeline, and a page.

    GET /api/instances?process=&status=&business_key=&started_after=&started_before=
                      &open_incidents=true&limit=&cursor=  summaries, newest first; a `Link`
                                                         header (rel="next") names the next page
    GET /api/instances/<correlation id>?process=         one trace (JSON)
    GET /api/approvals?status=pending                    approval requests (JSON); /approvals page
    POST /api/approvals/<approval id>                    {"decision": "grant|deny", "reason": ...}
    GET /traces                                          the list as a web page
    GET /traces/<correlation id>                         one trace as a web page
    POST /api/instances/<correlation id>/actions         {"action": "retry|compensate|resolve",
                                                          "step": ..., "reason": ...}
    GET /api/openapi.json                                this API described (openapi.yaml)

Reads committed tracker state (what a restart would restore), so it never shows work a
transaction may still abort: in a running tracker, through the visibility store (an indexed SQL
copy of every instance, fed from the tracker's changelogs), so any replica answers for all
instances and no request scans them; in a TestKit, the tasks' committed stores.

Reading needs a viewer or operator token (unless reads are open); acting needs an operator
token, and every request to act is audited (see `actions`).

A request to act must say how long its body is (`Content-Length`, at most `MAX_BODY` bytes,
checked before anything is read: 411 or 413) and that it is JSON (415); a Content-Length that is
no number is not HTTP, and the server answers it with 400 before the application sees it. Failed
attempts are limited per client (see `throttle`): past the limit, 429 with `Retry-After`.

Served by uvicorn, routed by Starlette (a maintained ASGI stack: the parsing, connection handling
and thread pool are theirs, bounded); pages are Jinja2 templates in `templates/`, autoescaped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, get_args
from urllib.parse import parse_qsl, quote, urlencode

import uvicorn
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from saga_tracker.access import Access, Principal
from saga_tracker.actions import (
    DEFAULT_RATE,
    MIGRATE,
    SAMPLE,
    ActionDesk,
    Reply,
    Unavailable,
    audit_fields,
)
from saga_tracker.codec import decode, encode
from saga_tracker.definitions import ProcessFacts
from saga_tracker.instance import (
    ACTIONS,
    Instance,
    InstanceStatus,
    attribute_value,
    step_latencies,
    step_latency_ms,
)
from saga_tracker.signin import (
    SESSION_LOGIN,
    SESSION_USER,
    OidcClient,
    OidcSettings,
    SignInFailed,
    csrf_ok,
    csrf_token,
    principal_of,
)
from saga_tracker.throttle import ClientKeys, FailedAttempts
from saga_tracker.timeline import picture
from saga_tracker.visibility.store import (
    MAX_PAGE,
    AttributeFilter,
    BadQuery,
    Filters,
    InstanceReader,
    Page,
    VisibilityUnavailable,
    canonical,
    decode_cursor,
    encode_cursor,
    grouped,
    millis,
    spellings,
)

InstanceSource = Callable[[], Iterable[Instance]]
MAX_BODY = 16 * 1024  # an action is a few short fields
MAX_TARGET = 8 * 1024  # path and query: every filter of the list fits many times over
_DRAIN_LIMIT = 16 * 1024 * 1024  # read and dropped after a 413, so the client sees the answer
log = logging.getLogger("saga_tracker.traces")


class NotReadable(Exception):
    """Reads are scoped to teams and the process is another team's; says whose (403)."""


# What /batches/new takes besides the filters (the step to retry or redrive is `action_step`:
# `step` is the filter "at step").
_BATCH_FIELDS = frozenset(
    {"action", "action_step", "reason", "rate_per_s", "expect", "csrf", "to_version"}
)


def _batch_view(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch as the runner keeps it, with its progress worked out."""
    total = int(batch.get("total") or 0)
    answered = int(batch.get("applied") or 0) + int(batch.get("refused") or 0)
    shown = {k: v for k, v in batch.items() if k != "received"}
    return {**shown, "answered": answered,
            "progress": round(100 * answered / total, 1) if total else 100.0}  # fmt: skip


class Refusal(Exception):
    """A request to act that is refused before its body is used: status and reason."""

    def __init__(self, status: int, reason: str, *, unread: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.unread = unread  # body bytes left on the connection


class CommittedInstances:
    """Instances in the committed state of the tracker's partition tasks (an engine's `tasks`):
    all of them, or one correlation id's by key prefix (no scan of the rest)."""

    def __init__(self, tasks: Callable[[], Iterable[Any]]) -> None:
        self.tasks = tasks

    def __call__(self) -> Iterator[Instance]:
        return self.matching("")

    def matching(self, prefix: str) -> Iterator[Instance]:
        for task in list(self.tasks()):
            view = task.committed_view("instances")
            for _, raw in view.items(prefix) if view is not None else ():
                yield decode(raw)

    def find(self, correlation_id: str, process: str | None = None) -> Instance | None:
        """By its key (`<correlation id>/<process>`): a lookup, not a scan."""
        return next(
            (
                i
                for i in self.matching(f"{correlation_id}/")
                if i.correlation_id == correlation_id and process in (None, i.process)
            ),
            None,
        )

    def count(self, filters: Filters | None = None) -> int:
        return sum(_matches(i, filters or Filters()) for i in self())

    def keys(self, filters: Filters, most: int) -> list[tuple[str, str]]:
        listed = self.page(filters, max(1, most), None).summaries
        return [(s["correlation_id"], s["process"]) for s in listed][:most]

    def totals(self, filters: Filters) -> dict[str, list[dict[str, Any]]]:
        return _committed_totals(list(self()), filters)

    def at_risk_by_step(self) -> list[dict[str, Any]]:
        rows: dict[tuple[str, str, str], list[float]] = {}
        for inst in self():
            if inst.ended:
                continue
            for name in inst.active_steps():
                row = rows.setdefault((inst.process, name, inst.steps[name].status), [0, 0.0])
                row[0] += 1
                row[1] += inst.value or 0.0
        return [{"process": p, "step": st, "step_status": ss, "count": int(n), "value": v}
                for (p, st, ss), (n, v) in sorted(rows.items())]  # fmt: skip

    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        """A scan of every instance: for the few a TestKit holds (a tracker uses the store)."""
        keyed = sorted(
            ((millis(i.started_at), f"{i.correlation_id}/{i.process}"), i)
            for i in self()
            if _matches(i, filters)
        )
        keyed.reverse()
        if cursor is not None:
            after = decode_cursor(cursor)
            keyed = [(k, i) for k, i in keyed if k < after]
        shown = keyed[:limit]
        more = len(keyed) > limit
        return Page(
            [summary(i) for _, i in shown],
            encode_cursor(*shown[-1][0]) if more and shown else None,
        )


def _committed_totals(instances: list[Instance], filters: Filters) -> dict[str, Any]:
    chosen = [i for i in instances if _matches(i, filters)]
    by_step: dict[tuple[str, str], list[float]] = {}
    for inst in chosen:
        for name in inst.active_steps():
            if filters.step is not None and name != filters.step:
                continue
            row = by_step.setdefault((name, inst.steps[name].status), [0, 0.0])
            row[0] += 1
            row[1] += inst.value or 0.0
    return grouped(
        [(i.process, i.status, 1, i.value) for i in chosen],
        [{"step": st, "step_status": ss, "count": int(n), "value": v}
         for (st, ss), (n, v) in sorted(by_step.items())],
    )  # fmt: skip


def _matches(inst: Instance, f: Filters) -> bool:
    return (
        f.process in (None, inst.process)
        and f.version in (None, inst.version)
        and f.status in (None, inst.status)
        and f.business_key in (None, inst.business_key)
        and (f.started_after is None or inst.started_at >= f.started_after)
        and (f.started_before is None or inst.started_at < f.started_before)
        and (not f.open_incidents or bool(inst.open_incidents))
        and (f.step is None or f.step in inst.active_steps())
        and f.paused in (None, inst.paused)
        and (f.processes is None or inst.process in f.processes)
        and all(_attribute_matches(inst, a) for a in f.attributes)
    )


def _attribute_matches(inst: Instance, wanted: AttributeFilter) -> bool:
    value = inst.attributes.get(wanted.name)
    if value is None:
        return False
    value = attribute_value(value)
    if wanted.equals is not None and canonical(value) not in spellings(wanted.equals):
        return False
    number = value if isinstance(value, float) else None
    if wanted.at_least is not None and (number is None or number < wanted.at_least):
        return False
    return not (wanted.at_most is not None and (number is None or number > wanted.at_most))


def committed_instances(tasks: Callable[[], Iterable[Any]]) -> CommittedInstances:
    return CommittedInstances(tasks)


def summary(inst: Instance) -> dict[str, Any]:
    return {
        "correlation_id": inst.correlation_id,
        "process": inst.process,
        "version": inst.version,
        "business_key": inst.business_key,
        "status": inst.status,
        "started_at": inst.started_at.isoformat(),
        "ended_at": inst.ended_at.isoformat() if inst.ended_at else None,
        "failure_reason": inst.failure_reason,
        "open_incidents": sorted(inst.open_incidents),
        "paused": inst.paused,
        "held": inst.held is not None,
        "attributes": {k: attribute_value(v) for k, v in inst.attributes.items()},
    }


def trace(inst: Instance) -> dict[str, Any]:
    """Timeline, step latencies, the causation chain and why it failed, if it did."""
    data = encode(inst)
    data["step_latency_ms"] = step_latency_ms(inst)
    data["causation"] = [
        {"event_id": e.event_id, "caused_by": e.causation_id, "type": e.event_type}
        for e in inst.timeline
        if e.event_id
    ]
    return data


DecisionSource = Callable[[str], list[dict[str, Any]]]
ApprovalSource = Callable[[], list[dict[str, Any]]]


def committed_approvals(tasks: Callable[[], Iterable[Any]]) -> ApprovalSource:
    """Every approval request the tracker keeps, with its answer once it has one."""

    def read() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for task in list(tasks()):
            view = task.committed_view("approvals")
            found += [raw for _, raw in view.items()] if view is not None else []
        return sorted(found, key=lambda a: str(a.get("requested_at", "")))

    return read


def committed_decisions(tasks: Callable[[], Iterable[Any]]) -> DecisionSource:
    """The services' decision records kept for a correlation id, in the committed state."""

    def read(correlation_id: str) -> list[dict[str, Any]]:
        for task in list(tasks()):
            view = task.committed_view("decisions")
            found: list[dict[str, Any]] | None = view.get(correlation_id) if view else None
            if found is not None:
                return found
        return []

    return read


class TraceServer:
    """The trace pages and the read and action API, served by uvicorn in a thread of its own.

    Starlette routes the requests; blocking work (the visibility store, the action desk's
    produce) runs in its bounded thread pool. Pages are Jinja2 templates with autoescaping."""

    def __init__(
        self,
        instances: InstanceReader,
        *,
        access: Access | None = None,
        desk: ActionDesk | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        failures: FailedAttempts | None = None,
        decisions: DecisionSource | None = None,
        approvals: ApprovalSource | None = None,
        approvals_of: DecisionSource | None = None,
        clients: ClientKeys | None = None,
        signin: OidcSettings | None = None,
        jaeger_url: str | None = None,
        facts: ProcessFacts | None = None,
        batches: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        """Without `access`, reads are open and nobody may act; without `desk`, no actions.
        `decisions`: the services' decision records per correlation id, shown on traces.
        `clients`: whom failed attempts count against (the trusted proxies). `signin`: people
        sign in to the pages through this OpenID Connect provider (see `signin`). `facts`: the
        processes' owners, steps and search attributes (from their definitions). `batches`:
        the batch operations the batch runner keeps."""
        self.instances = instances
        self.facts = facts or ProcessFacts()
        self.batches = batches or list
        self.decisions = decisions or (lambda correlation_id: [])
        self.approvals = approvals or list
        # One instance's approval requests: a lookup where the source has one.
        self.approvals_of = approvals_of or (
            lambda corr: [a for a in self.approvals() if a.get("correlation_id") == corr]
        )
        self.access = access or Access({}, open_reads=True)
        self.desk = desk
        self.failures = failures or FailedAttempts()
        self.clients = clients or ClientKeys()
        self.jaeger_url = jaeger_url  # where each instance's OpenTelemetry trace can be seen
        self._stopping = threading.Event()
        self.socket = socket.create_server((host, port))
        if signin is not None and not signin.public_url:  # reached where it listens
            signin = dataclasses.replace(signin, public_url=self.url)
        self.signin = signin
        self.oidc = OidcClient(signin) if signin else None
        self.app = self._app()
        config = uvicorn.Config(
            self.app,
            log_config=None,  # the process's own logging (JSON or text) carries uvicorn's lines
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # whom to believe about the client is ClientKeys' call
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.uvicorn.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.auditor = threading.Thread(target=self._audit_windows, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TraceServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.uvicorn.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the trace server did not start within 10 s")
            time.sleep(0.01)
        self.auditor.start()
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10)
        self.socket.close()
        self._stopping.set()
        if self.auditor.is_alive():
            self.auditor.join(5)
        self.audit_closed_windows(all_windows=True)

    def _audit_windows(self) -> None:
        """One audit entry per client and window for the failed attempts not audited singly."""
        while not self._stopping.wait(min(1.0, self.failures.window_s / 4)):
            self.audit_closed_windows()

    def audit_closed_windows(self, *, all_windows: bool = False) -> None:
        for closed in self.failures.closed(all_windows=all_windows):
            if self.desk is None or (not closed.unaudited and not closed.refused):
                continue
            counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(closed.unaudited.items()))
            detail = (
                f"from {closed.client} within {closed.seconds:.0f} s after the first: "
                f"{counts or 'none'}; {closed.refused} refused unread (rate limited)"
            )
            outcome = "DENIED" if "DENIED" in closed.unaudited or closed.refused else "INVALID"
            try:
                self.desk.audit(audit_fields(None, "*", "*"), outcome, detail)
            except Unavailable as err:
                log.warning("failed attempts not audited (%s): %s", err, detail)

    # -- the application -----------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/", self._overview_page, methods=["GET"]),
            Route("/api/openapi.json", _openapi, methods=["GET"]),
            Route("/api/instances", self._list_api, methods=["GET"]),
            Route("/api/instances/totals", self._totals_api, methods=["GET"]),
            Route("/api/batches", self._batches_api, methods=["GET"]),
            Route("/api/batches", self._batch_api, methods=["POST"]),
            Route("/api/batches/{batch_id:str}", self._one_batch_api, methods=["GET"]),
            Route("/api/batches/{batch_id:str}/cancel", self._cancel_api, methods=["POST"]),
            Route("/batches", self._batches_page, methods=["GET"]),
            Route("/batches", self._batch_form, methods=["POST"]),
            Route("/batches/new", self._dry_run_page, methods=["GET"]),
            Route("/batches/{batch_id:str}", self._batch_page, methods=["GET"]),
            Route("/batches/{batch_id:str}/cancel", self._cancel_form, methods=["POST"]),
            Route("/traces", self._list_page, methods=["GET"]),
            Route("/api/approvals", self._approvals_api, methods=["GET"]),
            Route("/approvals", self._approvals_page, methods=["GET"]),
            Route("/incidents", self._incidents_page, methods=["GET"]),
            Route("/api/instances/{correlation_id:str}", self._trace_api, methods=["GET"]),
            Route("/traces/{correlation_id:str}", self._trace_page, methods=["GET"]),
            Route("/api/instances/{correlation_id:str}/actions", self._act, methods=["POST"]),
            Route("/api/approvals/{approval_id:str}", self._decide, methods=["POST"]),
            Route("/traces/{correlation_id:str}/actions", self._act_form, methods=["POST"]),
            Route("/approvals/{approval_id:str}", self._decide_form, methods=["POST"]),
        ]
        middleware = [Middleware(_Guard, server=self)]
        if self.signin is not None:
            routes += [
                Route("/auth/login", self._login, methods=["GET"]),
                Route("/auth/callback", self._callback, methods=["GET"]),
                Route("/auth/logout", self._logout, methods=["POST"]),
            ]
            middleware.insert(0, Middleware(
                SessionMiddleware, secret_key=self.signin.session_secret,
                session_cookie="saga_tracker_session", max_age=self.signin.session_max_age_s,
                same_site="lax", https_only=self.signin.public_url.startswith("https://"),
            ))  # fmt: skip
        return Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={404: _not_found, 405: _not_found},
        )

    # -- who asks ------------------------------------------------------------------------------

    def _principal(self, request: Request) -> tuple[Principal | None, bool]:
        """Who asks, and whether through a signed-in session (whose forms need a CSRF token):
        a bearer token when one is sent, else the session's person."""
        header = request.headers.get("Authorization")
        if header is not None or self.signin is None:
            return self.who(header), False
        user = request.session.get(SESSION_USER)
        if not isinstance(user, dict):
            return None, False
        return principal_of(user), True

    async def _login(self, request: Request) -> Response:
        assert self.oidc is not None
        wanted = request.query_params.get("next", "/traces")
        next_path = wanted if wanted.startswith("/") and not wanted.startswith("//") else "/traces"
        try:
            url, login = await run_in_threadpool(self.oidc.start, next_path)
        except SignInFailed as err:
            return _html("message.html", status=503, title="Sign-in unavailable", text=str(err))
        request.session[SESSION_LOGIN] = login
        return RedirectResponse(url, 303)

    async def _callback(self, request: Request) -> Response:
        assert self.oidc is not None
        login = request.session.pop(SESSION_LOGIN, None)
        params = request.query_params
        if not isinstance(login, dict) or "code" not in params:
            why = params.get("error_description") or params.get("error") or "no sign-in started"
            return _html("message.html", status=400, title="Not signed in",
                         text=f"{why}; sign in again", link="/auth/login")  # fmt: skip
        try:
            user = await run_in_threadpool(
                self.oidc.finish, login, params.get("state", ""), params["code"]
            )
        except SignInFailed as err:
            return _html("message.html", status=400, title="Not signed in", text=str(err),
                         link="/auth/login")  # fmt: skip
        request.session.clear()
        request.session[SESSION_USER] = user
        csrf_token(request.session)
        return RedirectResponse(str(login.get("next", "/traces")), 303)

    async def _logout(self, request: Request) -> Response:
        assert self.oidc is not None and self.signin is not None
        form = await request.form()
        if not csrf_ok(request.session, str(form.get("csrf", "")) or None):
            stale = "the form is stale or foreign; reload the page"
            return _html("message.html", status=403, title="Not signed out", text=stale,
                         link="/traces")  # fmt: skip
        user = request.session.get(SESSION_USER) or {}
        request.session.clear()
        after = f"{self.signin.public_url.rstrip('/')}/traces"
        try:
            ended = await run_in_threadpool(self.oidc.end_session_url, user.get("id_token"), after)
        except SignInFailed:
            ended = None
        return RedirectResponse(ended or after, 303)

    def _client(self, request: Request, principal: str | None) -> str:
        forwarded = request.headers.get("X-Forwarded-For")
        return self.clients.key(_peer(request), forwarded, principal)

    def _failed(self, request: Request, fields: dict[str, Any], outcome: str, detail: str) -> None:
        """Count a failed attempt against its principal, or its address when anonymous, and
        audit it now if it should be (raises Unavailable)."""
        actor = fields.get("actor")
        anonymous = actor in (None, "anonymous")
        client = self._client(request, None if anonymous else str(actor))
        if self.failures.failed(client, outcome, anonymous=anonymous) and self.desk is not None:
            address = self.clients.address(_peer(request), request.headers.get("X-Forwarded-For"))
            self.desk.audit(fields, outcome, f"{detail} (from {address})")

    def _count_failure(self, request: Request, reply: Reply) -> None:
        """A desk's reply that failed a check of who asks or what was sent counts (and is
        audited) against its client, from the API and the pages alike."""
        if reply.failure is not None:
            failure = reply.failure
            self._failed(request, failure.fields, failure.outcome, failure.detail)

    def who(self, authorization: str | None) -> Principal | None:
        """The principal of a bearer token: one of the token file's, or an access token of the
        identity provider (the CLI signed in with the device flow), roles from its groups."""
        found = self.access.who(authorization)
        if found is not None or self.oidc is None:
            return found
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        person = self.oidc.bearer(token.strip())
        return principal_of(person) if person is not None else None

    def retry_after(self, request: Request) -> float:
        principal = self.who(request.headers.get("Authorization"))
        return self.failures.retry_after(
            self._client(request, principal.name if principal else None)
        )

    def find(self, correlation_id: str, process: str | None = None) -> Instance | None:
        """One instance: a key lookup, so a capture of thousands of instances costs thousands
        of lookups, not scans."""
        return self.instances.find(correlation_id, process)

    def readable(self, request: Request) -> frozenset[str] | None:
        """The processes who asks may read (None: all)."""
        principal, _ = self._principal(request)
        return self.access.readable(principal, self.facts.owners)

    def filters(self, request: Request, query: dict[str, list[str]]) -> Filters:
        """The filters `query` asks for, within what who asks may read."""
        readable = self.readable(request)
        asked = Filters.from_query(query)
        if readable is not None and asked.process is not None and asked.process not in readable:
            raise NotReadable(self._not_readable(request, asked.process))
        return dataclasses.replace(asked, processes=readable)

    def _not_readable(self, request: Request, process: str) -> str:
        principal, _ = self._principal(request)
        owners = self.facts.owners.get(process)
        who = principal.name if principal else "anonymous"
        if not owners:
            return f"{who} may not read {process}: no followed definition says who owns it"
        teams = ", ".join(sorted(principal.teams_for("read") or ())) if principal else ""
        return f"{who} reads for {teams or 'no team'}; {process} is owned by {' and '.join(owners)}"

    def listed(self, query: dict[str, list[str]], filters: Filters | None = None) -> Page:
        """One page of the list `query` asks for (BadQuery when it cannot be answered)."""
        text = next(iter(query.get("limit", [])), "50")
        try:
            limit = int(text)
        except ValueError:
            raise BadQuery(f"limit={text!r}: ask for 1 to {MAX_PAGE} instances per page") from None
        if not 1 <= limit <= MAX_PAGE:
            raise BadQuery(f"limit={limit}: ask for 1 to {MAX_PAGE} instances per page")
        cursor = next(iter(query.get("cursor", [])), None)
        return self.instances.page(filters or Filters.from_query(query), limit, cursor)

    def _reader(self, request: Request, page: bool = False) -> Response | None:
        """None when the request may read; else the refusal to send (a page's: to sign in)."""
        header = request.headers.get("Authorization")
        principal, signed_in = self._principal(request)
        if self.access.allows(principal, "read"):
            return None
        if page and self.signin is not None and header is None:
            if signed_in or isinstance(request.session.get(SESSION_USER), dict):
                name = request.session[SESSION_USER].get("name")
                return _html("message.html", status=403, title="No access",
                             text=f"{name} is signed in, but none of their groups gives a role "
                             "here (viewer, operator or approver)")  # fmt: skip
            return RedirectResponse(f"/auth/login?{urlencode({'next': _here(request)})}", 303)
        if header is None or principal is None:
            if header is not None:  # a token that is wrong: someone may be guessing
                self.failures.failed(self._client(request, None), "DENIED")  # not audited
            return _unauthorized()
        return JSONResponse({"error": "this token may not read traces"}, 403)

    async def _read(
        self, request: Request, answer: Callable[[], Response], page: bool = False
    ) -> Response:
        refused = self._reader(request, page)
        if refused is not None:
            return refused
        try:
            return await run_in_threadpool(answer)
        except BadQuery as err:
            return JSONResponse({"error": str(err)}, 400)
        except NotReadable as err:
            if page:
                return _html("message.html", status=403, title="No access", text=str(err))
            return JSONResponse({"error": str(err)}, 403)
        except VisibilityUnavailable as err:
            log.warning("visibility store away", extra={"error": str(err)})
            return JSONResponse(
                {"error": "the instance store does not answer; try again"}, 503,
                headers={"Retry-After": "5"},
            )  # fmt: skip

    async def _list_api(self, request: Request) -> Response:
        query = _query(request)

        def answer() -> Response:
            page = self.listed(query, self.filters(request, query))
            link = _next_link(request.url.path, query, page.next_cursor)
            headers = {"Link": f'<{link}>; rel="next"'} if link else None
            return _json(page.summaries, 200, headers)

        return await self._read(request, answer)

    async def _totals_api(self, request: Request) -> Response:
        """How many instances the filters choose, and their value, per status and per step."""
        query = _query(request)
        return await self._read(
            request, lambda: _json(self.instances.totals(self.filters(request, query)))
        )

    async def _list_page(self, request: Request) -> Response:
        query = _query(request)

        def answer() -> Response:
            filters = self.filters(request, query)
            page = self.listed({"limit": ["100"], **query}, filters)
            more = _next_link(request.url.path, query, page.next_cursor)
            now = datetime.now(UTC)
            shown = [{**i, "started": _when(i["started_at"], now)} for i in page.summaries]
            asked = {k: v[0] for k, v in query.items() if v and k != "cursor"}
            chosen = urlencode(filters.query())
            return _html("instances.html", title="Process instances", summaries=shown,
                         more=more, asked=asked, statuses=get_args(InstanceStatus),
                         steps=self.facts.all_steps(), attributes=self.facts.all_attributes(),
                         batch_link=f"/batches/new?{chosen}", **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    async def _overview_page(self, request: Request) -> Response:
        """The front page: open instances per step with the value at risk there, the batches
        under way, and where to go next."""

        def answer() -> Response:
            readable = self.readable(request)
            rows = [
                r for r in self.instances.at_risk_by_step()
                if readable is None or r["process"] in readable
            ]  # fmt: skip
            running = [b for b in self.batches() if b.get("status") not in ("done", "cancelled")]
            return _html("overview.html", title="Saga tracker", rows=rows, running=running,
                         **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    async def _incidents_page(self, request: Request) -> Response:
        """Instances with an open incident, newest first, each with its incidents' severity."""
        query = _query(request)

        def answer() -> Response:
            asked = {"limit": ["100"], **query, "open_incidents": ["true"]}
            page = self.listed(asked, self.filters(request, asked))
            now = datetime.now(UTC)
            rows = []
            for summary in page.summaries:
                inst = self.find(summary["correlation_id"], summary["process"])
                severities = inst.open_incidents if inst is not None else {}
                rows.append({**summary, "started": _when(summary["started_at"], now),
                             "incidents": sorted(severities.items())})  # fmt: skip
            more = _next_link(request.url.path, query, page.next_cursor)
            return _html("incidents.html", title="Open incidents", rows=rows, more=more,
                         **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    def _approvals_listed(self, request: Request) -> list[dict[str, Any]]:
        status = request.query_params.get("status")
        listed = [a for a in self.approvals() if status in (None, a.get("status"))]
        readable = self.readable(request)
        if readable is None:
            return listed
        shown = []
        for approval in listed:  # scoped: only those of instances of readable processes
            inst = self.find(str(approval.get("correlation_id", "")))
            if inst is not None and inst.process in readable:
                shown.append(approval)
        return shown

    async def _approvals_api(self, request: Request) -> Response:
        return await self._read(request, lambda: _json(self._approvals_listed(request)))

    async def _approvals_page(self, request: Request) -> Response:
        def answer() -> Response:
            listed = self._approvals_listed(request)
            return _html("approvals.html", title="Approval requests", approvals=listed,
                         **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    def _traced(
        self, request: Request, show: Callable[[Instance, list[Any], list[Any]], Response]
    ) -> Callable[[], Response]:
        """The answer about the instance the path names: `show` of it, its decisions and
        approval requests, or 404 (403 where reads are scoped and it is another team's)."""

        def answer() -> Response:
            correlation_id = request.path_params["correlation_id"]
            inst = self.find(correlation_id, request.query_params.get("process"))
            if inst is None:
                return JSONResponse({"error": f"no instance {correlation_id}"}, 404)
            readable = self.readable(request)
            if readable is not None and inst.process not in readable:
                raise NotReadable(self._not_readable(request, inst.process))
            corr = inst.correlation_id
            return show(inst, self.decisions(corr), self.approvals_of(corr))

        return answer

    # -- batches ---------------------------------------------------------------------------------

    def _batches_readable(self, request: Request) -> list[dict[str, Any]]:
        found = sorted(self.batches(), key=lambda b: str(b.get("requested_at")), reverse=True)
        return [_batch_view(b) for b in found]

    def _batch(self, batch_id: str) -> dict[str, Any] | None:
        found = next((b for b in self.batches() if b.get("batch_id") == batch_id), None)
        return _batch_view(found) if found is not None else None

    async def _batches_api(self, request: Request) -> Response:
        return await self._read(request, lambda: _json(self._batches_readable(request)))

    async def _one_batch_api(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]

        def answer() -> Response:
            found = self._batch(batch_id)
            if found is None:
                return JSONResponse({"error": f"no batch {batch_id}"}, 404)
            return _json(found)

        return await self._read(request, answer)

    def _chooser(
        self, request: Request, query: dict[str, list[str]]
    ) -> tuple[Filters, Callable[[int], list[tuple[str, str]]], Callable[[], dict[str, int]],
               Callable[[int], list[dict[str, Any]]]]:  # fmt: skip
        """What a batch over `query` chooses: its filters (within what who asks may read),
        and how to list, count per process and sample the instances."""
        filters = self.filters(request, query)

        def per_process() -> dict[str, int]:
            totals = self.instances.totals(filters)
            return {row["process"]: row["count"] for row in totals["by_process"]}

        def sample(n: int) -> list[dict[str, Any]]:
            return self.instances.page(filters, n, None).summaries

        return filters, lambda most: self.instances.keys(filters, most), per_process, sample

    def _ask_batch(
        self,
        desk: ActionDesk,
        principal: Principal | None,
        body: Any,
        request: Request,
        query: dict[str, list[str]],
    ) -> tuple[Filters, Reply]:
        """A batch request over what `query` chooses, put to the desk (API and form alike)."""
        filters, choose, count, sample = self._chooser(request, query)
        query_text = urlencode(filters.query())
        reply = desk.batch(principal, body, choose, count, sample, query_text, self.instances.find)
        return filters, reply

    async def _batch_api(self, request: Request) -> Response:
        """POST /api/batches {"query": {filters}, "action", "step", "reason", "rate_per_s",
        "dry_run", "expect"}: a dry run answers the count and a sample; a run sends the batch."""
        checked = await self._api_request(request, "operator actions are not enabled", "batch")
        if isinstance(checked, Response):
            return checked
        desk, principal, body = checked
        asked = body.get("query") if isinstance(body, dict) else None
        query = {k: [str(v)] for k, v in asked.items()} if isinstance(asked, dict) else {}

        def answer() -> Response:
            try:
                _, reply = self._ask_batch(desk, principal, body, request, query)
            except (BadQuery, NotReadable) as err:
                status = 403 if isinstance(err, NotReadable) else 400
                return JSONResponse({"error": str(err)}, status)
            self._count_failure(request, reply)
            return _unauthorized() if reply.status == 401 else _json(reply.body, reply.status)

        return await self._acting(answer)

    async def _cancel_api(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        checked = await self._api_request(request, "operator actions are not enabled", batch_id)
        if isinstance(checked, Response):
            return checked
        desk, principal, body = checked

        def answer() -> Response:
            reply = desk.cancel_batch(principal, batch_id, body, self._batch(batch_id))
            self._count_failure(request, reply)
            return _unauthorized() if reply.status == 401 else _json(reply.body, reply.status)

        return await self._acting(answer)

    async def _batches_page(self, request: Request) -> Response:
        def answer() -> Response:
            return _html("batches.html", title="Batch operations",
                         batches=self._batches_readable(request), **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    async def _batch_page(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]

        def answer() -> Response:
            found = self._batch(batch_id)
            if found is None:  # asked for a moment ago: shown once the batch runner has it
                return _html("message.html", status=404, title="Not found", refresh=2,
                             text=f"no batch {batch_id} (yet: a batch just asked for shows "
                             "here once the tracker's batch runner has it)",
                             link="/batches")  # fmt: skip
            return _html("batch.html", title=f"Batch {batch_id}", batch=found,
                         **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    async def _dry_run_page(self, request: Request) -> Response:
        """GET /batches/new?<filters>&action=&action_step=: what a batch would act on (the
        count per process and a sample), with the form that runs it."""
        query = _query(request)
        filters_only = {k: v for k, v in query.items() if k not in _BATCH_FIELDS}
        principal, _ = self._principal(request)

        def answer() -> Response:
            filters, choose, count, sample = self._chooser(request, filters_only)
            counts = count()
            migration: dict[str, Any] | None = None
            to_version = request.query_params.get("to_version", "")
            if request.query_params.get("action") == MIGRATE and self.desk is not None:
                if not to_version.isdigit():
                    migration = {"error": "name the version to move to"}
                else:
                    found = self.desk.migration_plan(
                        counts, choose, self.instances.find, int(to_version)
                    )
                    migration = found.body if isinstance(found, Reply) else found[1]
            now = datetime.now(UTC)
            shown = [{**i, "started": _when(i["started_at"], now)} for i in sample(SAMPLE)]
            refused = []
            if principal is not None and principal.may("act"):
                for process in counts:
                    owners = self.facts.owners.get(process)
                    if owners is not None and not principal.serves(owners, "act"):
                        refused.append(f"{process} is owned by {' and '.join(owners)}")
            return _html("batch_new.html", title="Batch operation: look before acting",
                         counts=counts, total=sum(counts.values()), sample=shown,
                         query=urlencode(filters.query()), asked=filters.query(),
                         action=request.query_params.get("action", ""),
                         step=request.query_params.get("action_step", ""), actions=ACTIONS,
                         steps=self.facts.all_steps(), refused=refused,
                         migration=migration, to_version=to_version,
                         **self._who(request))  # fmt: skip

        return await self._read(request, answer, page=True)

    async def _batch_form(self, request: Request) -> Response:
        """POST /batches from the dry-run page: the batch is run as the page showed it (its
        count is checked again), then its progress page."""
        checked = await self._form(request)
        if isinstance(checked, Response):
            return checked
        principal, form = checked
        desk = self.desk
        assert desk is not None
        query = {k: [v] for k, v in parse_qsl(form.get("query", ""))}
        body: dict[str, Any] = {k: form[k] for k in ("action", "step", "reason") if form.get(k)}
        try:
            body["rate_per_s"] = int(form.get("rate_per_s") or DEFAULT_RATE)
            body["expect"] = int(form["expect"])
            if form.get("to_version"):
                body["to_version"] = int(form["to_version"])
        except (KeyError, ValueError):
            return _html("message.html", status=400, title="Not done",
                         text="rate and count are whole numbers", link="/batches")  # fmt: skip

        def answer() -> Response:
            try:
                filters, reply = self._ask_batch(desk, principal, body, request, query)
            except (BadQuery, NotReadable) as err:
                return _html("message.html", status=400, title="Not done", text=str(err),
                             link="/traces")  # fmt: skip
            self._count_failure(request, reply)
            if reply.status == 202:
                return RedirectResponse(f"/batches/{quote(reply.body['batch_id'])}", 303)
            back = (
                f"/batches/new?{urlencode({**filters.query(), 'action': body.get('action', '')})}"
            )
            return _outcome(reply.status, reply.body, back)

        return await self._acting(answer, "/batches")

    async def _cancel_form(self, request: Request) -> Response:
        checked = await self._form(request)
        if isinstance(checked, Response):
            return checked
        principal, form = checked
        batch_id = request.path_params["batch_id"]
        desk, back = self.desk, f"/batches/{quote(batch_id)}"
        assert desk is not None

        def answer() -> Response:
            body = {"reason": form.get("reason", "")}
            reply = desk.cancel_batch(principal, batch_id, body, self._batch(batch_id))
            self._count_failure(request, reply)
            if reply.status == 202:
                return RedirectResponse(back, 303)
            return _outcome(reply.status, reply.body, back)

        return await self._acting(answer, back)

    async def _trace_api(self, request: Request) -> Response:
        def show(inst: Instance, decided: list[Any], asked: list[Any]) -> Response:
            return _json({**trace(inst), "decisions": decided, "approvals": asked})

        return await self._read(request, self._traced(request, show))

    async def _trace_page(self, request: Request) -> Response:
        def show(inst: Instance, decided: list[Any], asked: list[Any]) -> Response:
            took = {n: f"{lat.total_seconds():.1f} s" for n, lat in step_latencies(inst).items()}
            pending = [a for a in asked if a.get("status") == "pending"]
            now = datetime.now(UTC)
            ended = _when(inst.ended_at.isoformat(), now) if inst.ended_at else None
            causation = trace(inst)["causation"]
            return _html("trace.html", title=f"Trace {inst.correlation_id}", inst=inst,
                         took=took, decisions=decided, pending=pending,
                         pic=picture(inst, now, decided, asked), causation=causation,
                         started=_when(inst.started_at.isoformat(), now), ended=ended,
                         jaeger=self._jaeger(inst), actions=ACTIONS,
                         **self._who(request))  # fmt: skip

        return await self._read(request, self._traced(request, show), page=True)

    def _jaeger(self, inst: Instance) -> str | None:
        """The instance's trace in Jaeger, when the tracker exports to one."""
        if not self.jaeger_url or not inst.traceparent:
            return None
        parts = inst.traceparent.split("-")
        return f"{self.jaeger_url.rstrip('/')}/trace/{parts[1]}" if len(parts) == 4 else None

    def _who(self, request: Request) -> dict[str, Any]:
        """What a page says of who is signed in, with the CSRF token of its forms."""
        if self.signin is None or request.headers.get("Authorization"):
            return {}
        user = request.session.get(SESSION_USER)
        if not isinstance(user, dict):
            return {}
        principal = principal_of(user)
        return {
            "user": user.get("name"),
            "csrf": csrf_token(request.session),
            "may_act": bool(principal and principal.may("act")) and self.desk is not None,
            "may_approve": bool(principal and principal.may("approve")) and self.desk is not None,
        }

    async def _api_request(
        self, request: Request, off: str, target: str, action: str = ""
    ) -> tuple[ActionDesk, Principal | None, Any] | Response:
        """What every request to act through the API checks first: actions are on (else 503
        saying `off`), a signed-in session sent the page's CSRF token, and the body is small
        JSON with a length (else refused, counted and audited against `target`). Returns the
        desk, who asks and the body."""
        if self.desk is None:
            return JSONResponse({"error": off}, 503, headers={"Connection": "close"})
        principal, signed_in = self._principal(request)
        if signed_in and not csrf_ok(request.session, request.headers.get("X-CSRF-Token")):
            return JSONResponse({"error": "send the page's CSRF token (X-CSRF-Token)"}, 403)
        try:
            body = await _json_body(request)
        except Refusal as refusal:
            return await self._refused(request, refusal, audit_fields(principal, target, action))
        return self.desk, principal, body

    async def _act(self, request: Request) -> Response:
        target = request.path_params["correlation_id"]
        checked = await self._api_request(request, "operator actions are not enabled", target)
        if isinstance(checked, Response):
            return checked
        desk, principal, body = checked

        def answer() -> Response:
            process = body.get("process") if isinstance(body, dict) else None
            found = self.find(target, process if isinstance(process, str) else None)
            reply = desk.request(principal, target, body, found)
            self._count_failure(request, reply)
            return _unauthorized() if reply.status == 401 else _json(reply.body, reply.status)

        return await self._acting(answer)

    async def _decide(self, request: Request) -> Response:
        """POST /api/approvals/<id> {"decision": "grant|deny", "reason": ...}: approvers only,
        never the requester; every attempt audited."""
        approval_id = request.path_params["approval_id"]
        found = next((a for a in self.approvals() if a.get("approval_id") == approval_id), None)
        target = str((found or {}).get("correlation_id") or approval_id)
        checked = await self._api_request(request, "approvals are not enabled", target, "approval")
        if isinstance(checked, Response):
            return checked
        desk, principal, body = checked

        def answer() -> Response:
            instance = self.find(target) if found is not None else None
            reply = desk.decide(principal, approval_id, body, found, instance)
            self._count_failure(request, reply)
            return _unauthorized() if reply.status == 401 else _json(reply.body, reply.status)

        return await self._acting(answer)

    # -- the pages' forms: a signed-in person's buttons -----------------------------------------

    async def _form(self, request: Request) -> tuple[Principal | None, dict[str, str]] | Response:
        """The form of a page's button, once it may be read: from a signed-in session, with the
        session's CSRF token, small and url-encoded; else the page that says what is wrong."""
        back = request.headers.get("Referer") or "/traces"
        if self.desk is None:
            off = "operator actions are not enabled on this tracker"
            return _html("message.html", status=503, title="Not done", text=off, link=back)
        principal, signed_in = self._principal(request)
        if not signed_in:
            return _html("message.html", status=401, title="Not done",
                         text="sign in to act from the pages (scripts use the API with a "
                         "token)", link="/auth/login" if self.signin else back)  # fmt: skip
        length = request.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return _html("message.html", status=413 if length.isdigit() else 411,
                         title="Not done", text="the form is too large or has no length",
                         link=back)  # fmt: skip
        kind = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return _html("message.html", status=415, title="Not done",
                         text="send the page's form as it is", link=back)  # fmt: skip
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not csrf_ok(request.session, form.get("csrf")):
            stale = "the form is stale or foreign; reload the page"
            return _html("message.html", status=403, title="Not done", text=stale, link=back)
        return principal, form

    async def _act_form(self, request: Request) -> Response:
        """POST /traces/<id>/actions from the page's buttons: the same checks and audit as the
        API's, the result shown as a page."""
        checked = await self._form(request)
        if isinstance(checked, Response):
            return checked
        principal, form = checked
        target = request.path_params["correlation_id"]
        body = {k: form[k] for k in ("action", "step", "reason", "process") if form.get(k)}
        desk, back = self.desk, f"/traces/{quote(target)}"
        assert desk is not None

        def answer() -> Response:
            found = self.find(target, body.get("process"))
            reply = desk.request(principal, target, body, found)
            self._count_failure(request, reply)
            return _outcome(reply.status, reply.body, back)

        return await self._acting(answer, back)

    async def _decide_form(self, request: Request) -> Response:
        """POST /approvals/<id> from the approvals page: grant or deny, with a reason."""
        checked = await self._form(request)
        if isinstance(checked, Response):
            return checked
        principal, form = checked
        approval_id = request.path_params["approval_id"]
        body = {k: form[k] for k in ("decision", "reason") if form.get(k)}
        desk = self.desk
        assert desk is not None
        found = next((a for a in self.approvals() if a.get("approval_id") == approval_id), None)
        target = str((found or {}).get("correlation_id") or approval_id)

        def answer() -> Response:
            instance = self.find(target) if found is not None else None
            reply = desk.decide(principal, approval_id, body, found, instance)
            self._count_failure(request, reply)
            return _outcome(reply.status, reply.body, "/approvals")

        return await self._acting(answer, "/approvals")

    async def _acting(self, answer: Callable[[], Response], page: str | None = None) -> Response:
        try:
            return await run_in_threadpool(answer)
        except Unavailable as unavailable:  # nothing was sent: the operator tries again
            if page is not None:
                again = f"{unavailable}; nothing was done, try again"
                return _html("message.html", status=503, title="Not done", text=again, link=page)
            return JSONResponse({"error": str(unavailable)}, 503)

    async def _refused(
        self, request: Request, refusal: Refusal, fields: dict[str, Any]
    ) -> Response:
        try:
            await run_in_threadpool(self._failed, request, fields, "INVALID", str(refusal))
        except Unavailable as unavailable:
            return JSONResponse({"error": str(unavailable)}, 503)
        await _drain(request, refusal.unread)
        return JSONResponse({"error": str(refusal)}, refusal.status,
                            headers={"Connection": "close"})  # fmt: skip


class _Guard:
    """Before any route: a request target longer than MAX_TARGET gets 414, a client past its
    failed attempts 429, and nothing is read."""

    def __init__(self, app: ASGIApp, server: TraceServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            if target > MAX_TARGET:
                too_long = JSONResponse(
                    {"error": f"the request target may be at most {MAX_TARGET} bytes"}, 414,
                    headers={"Connection": "close"},
                )  # fmt: skip
                await too_long(scope, receive, send)
                return
            wait = self.server.retry_after(Request(scope))
            if wait:
                refusal = JSONResponse(
                    {"error": "too many failed attempts; try again later"}, 429,
                    headers={"Retry-After": str(int(wait) + 1), "Connection": "close"},
                )  # fmt: skip
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI description (openapi.yaml beside this module)."""
    text = (files("saga_tracker") / "openapi.yaml").read_text()
    return dict(yaml.safe_load(text))


async def _openapi(request: Request) -> Response:
    return _json(OPENAPI)


def _outcome(status: int, body: dict[str, Any], back: str) -> Response:
    """A button's result as a page: what was accepted, or why not."""
    if status == 202:
        done = body.get("action_id") or body.get("approval_id")
        text = f"accepted ({body.get('status')}, {done}); the timeline shows it once applied"
        return _html("message.html", status=200, title="Done", text=text, link=back)
    return _html("message.html", status=status, title="Not done",
                 text=str(body.get("error", "refused")), link=back)  # fmt: skip


def _when(iso: str, now: datetime) -> dict[str, str]:
    """A time as on-call reads it: in UTC with its zone, and how long ago."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if abs(seconds) >= size or unit == "s":
            amount = abs(seconds) // size
            ago = f"{amount} {unit} ago" if seconds >= 0 else f"in {amount} {unit}"
            break
    return {"iso": moment.isoformat(), "utc": f"{moment:%Y-%m-%d %H:%M:%S} UTC", "ago": ago}


def _here(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def _query(request: Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    return query


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not found"}, 404)


async def _json_body(request: Request) -> Any:
    """The body of a request to act, checked before it is read; raises Refusal. (A
    Content-Length that is no number never gets here: the HTTP layer answers it with 400.)"""
    if request.headers.get("Transfer-Encoding"):
        raise Refusal(411, "send the body with a Content-Length, not chunked")
    raw = request.headers.get("Content-Length")
    if raw is None:
        raise Refusal(411, "Content-Length is required")
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise Refusal(400, f"Content-Length must be a non-negative whole number, not {raw!r}")
    length = int(text)
    if length > MAX_BODY:
        raise Refusal(413, f"the body may be at most {MAX_BODY} bytes", unread=length)
    kind = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refusal(415, "send the body as application/json", unread=length)
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None  # not JSON: the desk says what to send


async def _drain(request: Request, unread: int) -> None:
    """Read and drop a refused body (up to a bound) so that the client reads the answer
    instead of a reset connection; the connection is closed after the answer either way."""
    if unread <= 0:
        return
    left = min(unread, _DRAIN_LIMIT)
    async for chunk in request.stream():
        left -= len(chunk)
        if left <= 0:
            break


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "a valid bearer token is needed"}, 401,
        headers={"WWW-Authenticate": 'Bearer realm="saga-tracker"'},
    )  # fmt: skip


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, default=str).encode()
    return Response(body, status, headers=headers, media_type="application/json")


OPENAPI = openapi_document()
PAGES = Environment(
    loader=PackageLoader("saga_tracker", "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
)


def _html(template: str, status: int = 200, **values: Any) -> Response:
    return HTMLResponse(PAGES.get_template(template).render(**values), status)


def _next_link(path: str, query: dict[str, list[str]], cursor: str | None) -> str | None:
    """The same request for the page after this one."""
    if cursor is None:
        return None
    return f"{path}?{urlencode({**query, 'cursor': [cursor]}, doseq=True)}"
