"""A service's HTTP endpoint: `/metrics`, `/healthz` and `/readyz` on one port.

prometheus_client serves `/metrics` as a WSGI application; the two probes are a few lines in
front of it, served by the standard library's threading WSGI server as prometheus_client's own
`start_http_server` is, so a team service needs no web framework for them (the saga tracker's
pages and API, which do, use Starlette).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from choreograph.observability.health import Health, verdict

Respond = Callable[[str, list[tuple[str, str]]], Any]
PROBES = {"/healthz": "live", "/readyz": "ready"}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no log
        return


def endpoint_app(
    registry: CollectorRegistry, healths: Sequence[Health]
) -> Callable[[dict[str, Any], Respond], Iterable[bytes]]:
    """`/healthz` and `/readyz`: 200 or 503 with the reason in plain text; every other path
    the metrics."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], respond: Respond) -> Iterable[bytes]:
        which = PROBES.get(environ.get("PATH_INFO", ""))
        if which is None:
            return metrics(environ, respond)  # type: ignore[no-any-return]
        ok, said = verdict(healths, which)
        body = (said + "\n").encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        respond(status, [("Content-Type", "text/plain; charset=utf-8"),
                         ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return app


def serve_endpoint(
    port: int, host: str, registry: CollectorRegistry, healths: Sequence[Health]
) -> WSGIServer:
    """Serve the endpoint on a daemon thread; the server (its `server_port`, `shutdown`)."""
    server = make_server(host, port, endpoint_app(registry, healths), _Server, _Quiet)
    threading.Thread(target=server.serve_forever, name="endpoint", daemon=True).start()
    return server
