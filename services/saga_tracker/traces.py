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

Reads committed tracker state (what a restart would restore), so it never shows work a
transaction may still abort: in a running tracker, through the visibility store (an indexed SQL
copy of every instance, fed from the tracker's changelogs), so any replica answers for all
instances and no request scans them; in a TestKit, the tasks' committed stores.

Reading needs a viewer or operator token (unless reads are open); acting needs an operator
token, and every request to act is audited (see `actions`).

A request to act must say how long its body is (`Content-Length`, at most `MAX_BODY` bytes,
checked before anything is read: 400, 411 or 413) and that it is JSON (415). Failed attempts are
limited per client (see `throttle`): past the limit, 429 with `Retry-After`.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from saga_tracker.access import Access
from saga_tracker.actions import ActionDesk, Unavailable, audit_fields
from saga_tracker.codec import decode, encode
from saga_tracker.instance import Instance, step_latencies, step_latency_ms
from saga_tracker.throttle import ClientKeys, FailedAttempts
from saga_tracker.visibility.store import (
    MAX_PAGE,
    BadQuery,
    Filters,
    InstanceReader,
    Page,
    VisibilityUnavailable,
    decode_cursor,
    encode_cursor,
    millis,
)

InstanceSource = Callable[[], Iterable[Instance]]
MAX_BODY = 16 * 1024  # an action is a few short fields
_DRAIN_LIMIT = 16 * 1024 * 1024  # read and dropped after a 413, so the client sees the answer
log = logging.getLogger("saga_tracker.traces")


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


def _matches(inst: Instance, f: Filters) -> bool:
    return (
        f.process in (None, inst.process)
        and f.status in (None, inst.status)
        and f.business_key in (None, inst.business_key)
        and (f.started_after is None or inst.started_at >= f.started_after)
        and (f.started_before is None or inst.started_at < f.started_before)
        and (not f.open_incidents or bool(inst.open_incidents))
    )


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
    ) -> None:
        """Without `access`, reads are open and nobody may act; without `desk`, no actions.
        `decisions`: the services' decision records per correlation id, shown on traces.
        `clients`: whom failed attempts count against (the trusted proxies)."""
        self.instances = instances
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
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in two writes: with Nagle the second waits for the
            # client's delayed ACK of the first (tens of ms per request).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                owner.route(self)

            def do_POST(self) -> None:
                owner.act(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.auditor = threading.Thread(target=self._audit_windows, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TraceServer:
        self.thread.start()
        self.auditor.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
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

    def _client(self, request: BaseHTTPRequestHandler, principal: str | None) -> str:
        forwarded = request.headers.get("X-Forwarded-For")
        return self.clients.key(request.client_address[0], forwarded, principal)

    def _failed(
        self, request: BaseHTTPRequestHandler, fields: dict[str, Any], outcome: str, detail: str
    ) -> None:
        """Count a failed attempt against its principal, or its address when anonymous, and
        audit it now if it should be (raises Unavailable)."""
        actor = fields.get("actor")
        anonymous = actor in (None, "anonymous")
        client = self._client(request, None if anonymous else str(actor))
        if self.failures.failed(client, outcome, anonymous=anonymous) and self.desk is not None:
            address = self.clients.address(
                request.client_address[0], request.headers.get("X-Forwarded-For")
            )
            self.desk.audit(fields, outcome, f"{detail} (from {address})")

    def _limited(self, request: BaseHTTPRequestHandler) -> bool:
        principal = self.access.who(request.headers.get("Authorization"))
        wait = self.failures.retry_after(
            self._client(request, principal.name if principal else None)
        )
        if not wait:
            return False
        request.close_connection = True
        body = json.dumps({"error": "too many failed attempts; try again later"}).encode()
        request.send_response(429)
        request.send_header("Retry-After", str(int(wait) + 1))
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(body)
        return True

    def find(self, correlation_id: str, process: str | None = None) -> Instance | None:
        """One instance: a key lookup, so a capture of thousands of instances costs thousands
        of lookups, not scans."""
        return self.instances.find(correlation_id, process)

    def listed(self, query: dict[str, list[str]]) -> Page:
        """One page of the list `query` asks for (BadQuery when it cannot be answered)."""
        text = next(iter(query.get("limit", [])), "50")
        try:
            limit = int(text)
        except ValueError:
            raise BadQuery(f"limit={text!r}: ask for 1 to {MAX_PAGE} instances per page") from None
        if not 1 <= limit <= MAX_PAGE:
            raise BadQuery(f"limit={limit}: ask for 1 to {MAX_PAGE} instances per page")
        cursor = next(iter(query.get("cursor", [])), None)
        return self.instances.page(Filters.from_query(query), limit, cursor)

    def route(self, request: BaseHTTPRequestHandler) -> None:
        if self._limited(request):
            return None
        try:
            return self._route(request)
        except BadQuery as err:
            return _send_json(request, 400, {"error": str(err)})
        except VisibilityUnavailable as err:
            log.warning("visibility store away", extra={"error": str(err)})
            return _send(
                request,
                503,
                json.dumps({"error": "the instance store does not answer; try again"}).encode(),
                "application/json",
                retry_after=5,
            )

    def _route(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        query = parse_qs(url.query)
        header = request.headers.get("Authorization")
        principal = self.access.who(header)
        if not self.access.allows(principal, "read"):
            if header is None or principal is None:
                if header is not None:  # a token that is wrong: someone may be guessing
                    self.failures.failed(self._client(request, None), "DENIED")  # not audited
                return _unauthorized(request)
            return _send_json(request, 403, {"error": "this token may not read traces"})
        if parts == ["api", "instances"]:
            page = self.listed(query)
            link = _next_link(url.path, query, page.next_cursor)
            return _send(
                request,
                200,
                json.dumps(page.summaries, default=str).encode(),
                "application/json",
                link=link,
            )
        if parts == ["traces"]:
            page = self.listed({"limit": ["100"], **query})
            more = _next_link(url.path, query, page.next_cursor)
            return _send_html(request, 200, _list_page(page.summaries, more))
        if parts in (["api", "approvals"], ["approvals"]):
            status = next(iter(query.get("status", [])), None)
            listed = [a for a in self.approvals() if status in (None, a.get("status"))]
            if parts[0] == "api":
                return _send_json(request, 200, listed)
            return _send_html(request, 200, _approvals_page(listed))
        if (len(parts) == 3 and parts[:2] == ["api", "instances"]) or (
            len(parts) == 2 and parts[0] == "traces"
        ):
            inst = self.find(parts[-1], next(iter(query.get("process", [])), None))
            if inst is None:
                return _send_json(request, 404, {"error": f"no instance {parts[-1]}"})
            decided = self.decisions(inst.correlation_id)
            asked = self.approvals_of(inst.correlation_id)
            if parts[0] == "api":
                return _send_json(
                    request, 200, {**trace(inst), "decisions": decided, "approvals": asked}
                )
            return _send_html(request, 200, _trace_page(inst, decided, asked))
        return _send_json(request, 404, {"error": "not found"})

    def act(self, request: BaseHTTPRequestHandler) -> None:
        parts = [unquote(p) for p in urlsplit(request.path).path.strip("/").split("/") if p]
        if self._limited(request):
            return None
        if len(parts) == 3 and parts[:2] == ["api", "approvals"]:
            return self.decide(request, parts[2])
        if len(parts) != 4 or parts[:2] != ["api", "instances"] or parts[3] != "actions":
            request.close_connection = True
            return _send_json(request, 404, {"error": "not found"})
        if self.desk is None:
            request.close_connection = True
            return _send_json(request, 503, {"error": "operator actions are not enabled"})
        target = parts[2]
        principal = self.access.who(request.headers.get("Authorization"))
        try:
            try:
                body = _json_body(request)
            except Refusal as refusal:
                self._failed(request, audit_fields(principal, target), "INVALID", str(refusal))
                _drain(request, refusal.unread)
                return _send_json(request, refusal.status, {"error": str(refusal)})
            process = body.get("process") if isinstance(body, dict) else None
            found = self.find(target, process if isinstance(process, str) else None)
            reply = self.desk.request(principal, target, body, found)
            if reply.failure is not None:
                failure = reply.failure
                self._failed(request, failure.fields, failure.outcome, failure.detail)
        except Unavailable as unavailable:  # nothing was sent: the operator tries again
            return _send_json(request, 503, {"error": str(unavailable)})
        if reply.status == 401:
            return _unauthorized(request)
        return _send_json(request, reply.status, reply.body)

    def decide(self, request: BaseHTTPRequestHandler, approval_id: str) -> None:
        """POST /api/approvals/<id> {"decision": "grant|deny", "reason": ...}: approvers only,
        never the requester; every attempt audited."""
        if self.desk is None:
            request.close_connection = True
            return _send_json(request, 503, {"error": "approvals are not enabled"})
        principal = self.access.who(request.headers.get("Authorization"))
        found = next((a for a in self.approvals() if a.get("approval_id") == approval_id), None)
        target = str((found or {}).get("correlation_id") or approval_id)
        try:
            try:
                body = _json_body(request)
            except Refusal as refusal:
                fields = audit_fields(principal, target, "approval")
                self._failed(request, fields, "INVALID", str(refusal))
                _drain(request, refusal.unread)
                return _send_json(request, refusal.status, {"error": str(refusal)})
            reply = self.desk.decide(principal, approval_id, body, found)
            if reply.failure is not None:
                failure = reply.failure
                self._failed(request, failure.fields, failure.outcome, failure.detail)
        except Unavailable as unavailable:
            return _send_json(request, 503, {"error": str(unavailable)})
        if reply.status == 401:
            return _unauthorized(request)
        return _send_json(request, reply.status, reply.body)


def _json_body(request: BaseHTTPRequestHandler) -> Any:
    """The body of a request to act, checked before it is read; raises Refusal."""
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
        return json.loads(request.rfile.read(length) or b"null")
    except ValueError:
        return None  # not JSON: the desk says what to send


def _drain(request: BaseHTTPRequestHandler, unread: int) -> None:
    """Drop a refused body (up to a bound) so that the client reads the answer instead of a
    reset connection; the connection is closed after the answer either way."""
    request.close_connection = True
    if unread <= 0:
        return
    left = min(unread, _DRAIN_LIMIT)
    try:
        request.connection.settimeout(2.0)
        while left > 0:
            chunk = request.rfile.read1(min(left, 64 * 1024))
            if not chunk:
                break
            left -= len(chunk)
    except OSError:  # a timeout, or the client gave up
        pass


def _unauthorized(request: BaseHTTPRequestHandler) -> None:
    body = json.dumps({"error": "a valid bearer token is needed"}).encode()
    request.send_response(401)
    request.send_header("WWW-Authenticate", 'Bearer realm="saga-tracker"')
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def _send(
    request: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    kind: str,
    *,
    link: str | None = None,
    retry_after: int | None = None,
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", kind)
    if link is not None:
        request.send_header("Link", f'<{link}>; rel="next"')
    if retry_after is not None:
        request.send_header("Retry-After", str(retry_after))
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def _send_json(request: BaseHTTPRequestHandler, status: int, data: Any) -> None:
    _send(request, status, json.dumps(data, default=str).encode(), "application/json")


def _send_html(request: BaseHTTPRequestHandler, status: int, page: str) -> None:
    _send(request, status, page.encode(), "text/html; charset=utf-8")


_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    ".failed,.needs_manual_resolution,.compensation_failed{color:#b00}.completed{color:#070}"
    ".compensated,.compensating,.timed_out{color:#a60}.resolved{color:#555}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _next_link(path: str, query: dict[str, list[str]], cursor: str | None) -> str | None:
    """The same request for the page after this one."""
    if cursor is None:
        return None
    return f"{path}?{urlencode({**query, 'cursor': [cursor]}, doseq=True)}"


def _list_page(summaries: list[dict[str, Any]], more: str | None) -> str:
    def cell(value: Any) -> str:
        return html.escape(str(value))

    rows = "".join(
        f"<tr><td><a href='/traces/{cell(i['correlation_id'])}'>"
        f"{cell(i['correlation_id'])}</a></td>"
        f"<td>{cell(i['process'])} v{i['version']}</td><td>{cell(i['business_key'])}</td>"
        f"<td class='{cell(i['status'])}'>{cell(i['status'])}</td>"
        f"<td>{cell(i['started_at'][:19].replace('T', ' '))}</td></tr>"
        for i in summaries
    )
    head = "<tr><th>instance</th><th>process</th><th>key</th><th>status</th><th>started</th></tr>"
    after = f"<p><a href='{html.escape(more)}'>older instances</a></p>" if more else ""
    return _page("Process instances", f"<table>{head}{rows}</table>{after}")


def _approvals_table(approvals: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(a.get('approval_id')))}</td>"
        f"<td><a href='/traces/{html.escape(str(a.get('correlation_id')))}'>"
        f"{html.escape(str(a.get('correlation_id')))}</a></td>"
        f"<td>{html.escape(str(a.get('machine')))} {html.escape(str(a.get('instance')))}</td>"
        f"<td>{html.escape(str(a.get('state', '')))}</td>"
        f"<td>{html.escape(str(a.get('summary', '')))}</td>"
        f"<td>{html.escape(str(a.get('requested_by', '')))}</td>"
        f"<td class='{html.escape(str(a.get('status')))}'>{html.escape(str(a.get('status')))}"
        f"{' by ' + html.escape(str(a['approver'])) if a.get('approver') else ''}</td></tr>"
        for a in approvals
    )
    return (
        "<table><tr><th>approval</th><th>instance</th><th>waiting</th><th>state</th>"
        f"<th>what</th><th>asked by</th><th>status</th></tr>{rows}</table>"
    )


def _approvals_page(approvals: list[dict[str, Any]]) -> str:
    body = _approvals_table(approvals) if approvals else "<p>No approval requests.</p>"
    return _page("Approval requests", body)


def _decisions_table(decisions: list[dict[str, Any]]) -> str:
    if not decisions:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(d['at'])}</td><td>{html.escape(d['kind'])}</td>"
        f"<td>{html.escape(d['by'])}</td>"
        f"<td>{html.escape(str(d['from'] or ''))} &rarr; {html.escape(str(d['to'] or ''))}</td>"
        f"<td>{html.escape('; '.join(d['rules']))}</td><td>{html.escape(d['actor'])}</td>"
        f"<td>{html.escape(d['reason'])}</td></tr>"
        for d in decisions
    )
    return (
        "<h2>Decisions of the services</h2><table><tr><th>at</th><th>kind</th><th>by</th>"
        f"<th>state</th><th>rules</th><th>actor</th><th>why</th></tr>{rows}</table>"
    )


def _trace_page(
    inst: Instance,
    decisions: list[dict[str, Any]] | None = None,
    approvals: list[dict[str, Any]] | None = None,
) -> str:
    latencies = step_latencies(inst)
    took = {name: f"{latency.total_seconds():.1f} s" for name, latency in latencies.items()}
    steps = "".join(
        f"<tr><td>{html.escape(name)}</td><td class='{s.status}'>{s.status}</td>"
        f"<td>{took.get(name, '')}</td></tr>"
        for name, s in inst.steps.items()
    )
    timeline = "".join(
        f"<tr><td>{e.at:%H:%M:%S}.{e.at.microsecond // 1000:03d}</td><td>{html.escape(e.kind)}</td>"
        f"<td>{html.escape(e.event_type)}</td><td>{html.escape(e.step or '')}</td>"
        f"<td>{html.escape(e.source)}</td><td>{html.escape(e.note)}</td></tr>"
        for e in inst.timeline
    )
    failure = (
        f"<p class='failed'>{html.escape(inst.failure_reason)}</p>" if inst.failure_reason else ""
    )
    incidents = ", ".join(
        f"<span class='{'failed' if severity == 'critical' else 'timed_out'}'>"
        f"{html.escape(name)} ({severity})</span>"
        for name, severity in sorted(inst.open_incidents.items())
    )
    paging = f"<p>open incidents: {incidents}</p>" if incidents else ""
    value = f", value {inst.value:,.2f}" if inst.value is not None else ""
    body = (
        f"<p>{html.escape(inst.process)} v{inst.version}, key {html.escape(inst.business_key)}"
        f"{value}, <span class='{inst.status}'>{inst.status}</span></p>{failure}{paging}"
        f"<h2>Steps</h2><table><tr><th>step</th><th>status</th><th>took</th></tr>{steps}</table>"
        "<h2>Timeline</h2><table><tr><th>at</th><th>what</th><th>event</th><th>step</th>"
        f"<th>source</th><th>note</th></tr>{timeline}</table>{_decisions_table(decisions or [])}"
    )
    pending = [a for a in approvals or [] if a.get("status") == "pending"]
    if pending:
        body += f"<h2>Pending approvals</h2>{_approvals_table(pending)}"
    return _page(f"Trace {inst.correlation_id}", body)
