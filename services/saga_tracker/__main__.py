"""`saga-tracker run` starts the tracker; `saga-tracker ui` serves the trace pages and read API
alone, read-only; `saga-tracker token NAME --role R` makes an API token.

Every option has a SAGA_TRACKER_* or CHOREOGRAPH_* environment variable, so the Helm chart sets
them from values without building a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from choreograph.cli import entry
from choreograph.observability.logs import configure_json_logging
from choreograph.process.definition import parse_duration
from choreograph.runtime.config import ServiceConfig
from choreograph.runtime.engine import end_if_abandoned
from choreograph.runtime.errors import ConfigurationError
from saga_tracker.access import digest, new_token
from saga_tracker.app import TrackerApp, TrackerSettings
from saga_tracker.definitions import DefinitionsUnreadable
from saga_tracker.service import REPARTITION
from saga_tracker.signin import OidcSettings
from saga_tracker.throttle import ClientKeys
from saga_tracker.visibility.ui import TrackerUi, UiSettings


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SAGA_TRACKER_{name}", default)


def _env_or_none(name: str) -> str | None:
    return os.environ.get(f"SAGA_TRACKER_{name}")


def _visibility_default() -> str:
    return os.environ.get(
        "SAGA_TRACKER_VISIBILITY_URL", os.environ.get("CHOREOGRAPH_VISIBILITY_URL", "")
    )


VISIBILITY_HELP = (
    "where instances are indexed for the API: a postgresql:// URL shared by replicas and the "
    "UI, or sqlite:///PATH; by default SQLite in the state folder"
)


def _add_signin(parser: argparse.ArgumentParser) -> None:
    """People sign in to the pages through an OpenID Connect provider; secrets come from the
    environment only (SAGA_TRACKER_OIDC_CLIENT_SECRET, SAGA_TRACKER_SESSION_SECRET). And where
    the pages link each instance's OpenTelemetry trace."""
    parser.add_argument(
        "--jaeger-url", default=_env("JAEGER_URL", "") or None,
        help="Jaeger's UI, e.g. http://jaeger:16686: each trace page links its instance there",
    )  # fmt: skip
    parser.add_argument(
        "--oidc-issuer", default=_env("OIDC_ISSUER", ""),
        help="the identity provider's issuer URL; people sign in to the pages through it",
    )  # fmt: skip
    parser.add_argument(
        "--oidc-client-id", default=_env("OIDC_CLIENT_ID", "saga-tracker"),
        help="the tracker's client at the provider (its secret: SAGA_TRACKER_OIDC_CLIENT_SECRET)",
    )  # fmt: skip


def _signin(args: argparse.Namespace, public_url: str) -> OidcSettings | None:
    """The sign-in settings, or None without an issuer; SystemExit(2) naming what is missing."""
    if not args.oidc_issuer:
        return None
    secret = _env("OIDC_CLIENT_SECRET", "")
    session = _env("SESSION_SECRET", "")
    missing = [name for name, value in (("SAGA_TRACKER_OIDC_CLIENT_SECRET", secret),
               ("SAGA_TRACKER_SESSION_SECRET", session)) if not value]  # fmt: skip
    if missing:
        print(f"saga-tracker: --oidc-issuer needs {' and '.join(missing)} in the environment "
              "(the session secret signs the cookies: the same on every replica)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return OidcSettings(args.oidc_issuer, args.oidc_client_id, secret, public_url, session)


def _add_reads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scoped-reads",
        action="store_true",
        default=_env("SCOPED_READS", "") in ("1", "true"),
        help="a viewer reads only the processes its teams own (token teams, <team>-viewers "
        "groups); by default viewers read every process",
    )


def _retention(text: str) -> timedelta | None:
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saga-tracker", description=__doc__)
    entry.add_common(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run router, tracker, notifier and the trace API")
    run.add_argument("--definitions", type=Path, default=Path(_env("DEFINITIONS", "processes")))
    run.add_argument("--schemas", type=Path, default=Path(_env("SCHEMAS", "schemas/avro")))
    run.add_argument(
        "--inputs",
        default=_env_or_none("INPUTS"),
        help="comma-separated topics to follow; by default the topics of every event type the "
        "definitions follow (from the contracts), choreograph.decisions and choreograph.approvals",
    )
    run.add_argument("--name", default=_env("NAME", "saga-tracker"))
    run.add_argument(
        "--repartition",
        default=_env("REPARTITION", REPARTITION),
        help="the topic the router files events on by correlation id (one per tracker name)",
    )
    run.add_argument("--http-host", default=_env("HTTP_HOST", "127.0.0.1"))
    run.add_argument("--http-port", type=int, default=int(_env("HTTP_PORT", "8088")))
    run.add_argument("--public-url", default=_env("PUBLIC_URL", ""))
    run.add_argument("--tokens", type=Path, default=_env_or_none("TOKENS"))
    run.add_argument(
        "--open-reads",
        action="store_true",
        default=_env("OPEN_READS", "") in ("1", "true"),
        help="let anyone read traces (acting still needs an operator token)",
    )
    run.add_argument(
        "--alertmanager", default=os.environ.get("CHOREOGRAPH_ALERTMANAGER_URL") or None
    )
    run.add_argument("--metrics-port", type=int, default=_env_or_none("METRICS_PORT"))
    run.add_argument(
        "--metrics-host", default=os.environ.get("CHOREOGRAPH_METRICS_HOST", "127.0.0.1")
    )
    run.add_argument(
        "--auto-register-schemas",
        action="store_true",
        help="register contracts the tracker publishes (dev only; CI registers them otherwise)",
    )
    run.add_argument("--visibility-url", default=_visibility_default(), help=VISIBILITY_HELP)
    run.add_argument(
        "--otlp-endpoint",
        default=_env("OTLP_ENDPOINT", ""),
        help="export each ended instance as an OpenTelemetry trace over OTLP/HTTP to this "
        "endpoint (e.g. http://collector:4318); needs the otel extra",
    )
    run.add_argument(
        "--trusted-proxies",
        default=_env("TRUSTED_PROXIES", ""),
        help="comma-separated addresses or networks (CIDR) of the proxies in front of the API "
        "(an ingress): their X-Forwarded-For names the client whose failed attempts are counted",
    )
    run.add_argument(
        "--retention",
        type=_retention,
        default=_retention(_env("RETENTION", "")),
        help="how long ended instances are kept before they are deleted (e.g. 30d), where a "
        "definition does not say; by default for ever",
    )
    _add_reads(run)
    _add_signin(run)
    run.set_defaults(run=_run)
    ui = commands.add_parser("ui", help="serve trace pages and the read API alone, read-only")
    ui.add_argument("--name", default=_env("NAME", "saga-tracker"), help="the tracker it shows")
    ui.add_argument(
        "--definitions",
        type=Path,
        default=Path(_env("DEFINITIONS", "processes")),
        help="the process definitions: who owns each process, its steps and search attributes",
    )
    ui.add_argument("--visibility-url", default=_visibility_default(), help=VISIBILITY_HELP)
    ui.add_argument(
        "--no-index",
        action="store_true",
        default=_env("UI_INDEX", "1") in ("0", "false"),
        help="only read (the tracker replicas feed a shared PostgreSQL)",
    )
    ui.add_argument("--http-host", default=_env("HTTP_HOST", "127.0.0.1"))
    ui.add_argument("--http-port", type=int, default=int(_env("HTTP_PORT", "8089")))
    ui.add_argument("--tokens", type=Path, default=_env_or_none("TOKENS"))
    ui.add_argument(
        "--trusted-proxies",
        default=_env("TRUSTED_PROXIES", ""),
        help="comma-separated addresses or networks (CIDR) of the proxies in front of the API "
        "(an ingress): their X-Forwarded-For names the client whose failed attempts are counted",
    )
    ui.add_argument(
        "--open-reads",
        action="store_true",
        default=_env("OPEN_READS", "") in ("1", "true"),
        help="serve reads without a token (a trusted network only)",
    )
    _add_reads(ui)
    _add_signin(ui)
    ui.set_defaults(run=_ui)
    token = commands.add_parser("token", help="make a bearer token and its token-file line")
    token.add_argument("name", help="who the token is for")
    token.add_argument(
        "--role",
        choices=["viewer", "operator", "approver"],
        required=True,
        help="what the token may do",
    )
    token.add_argument("--format", choices=("text", "json"), default="text")
    token.set_defaults(run=_token)
    entry.explain(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    configure_json_logging()
    config = ServiceConfig.from_env(
        metrics_host=args.metrics_host, auto_register_schemas=args.auto_register_schemas
    )
    settings = TrackerSettings(
        definitions=args.definitions,
        schemas=args.schemas,
        inputs=[t.strip() for t in args.inputs.split(",") if t.strip()] if args.inputs else None,
        config=config,
        name=args.name,
        repartition=args.repartition,
        http_host=args.http_host,
        http_port=args.http_port,
        public_url=args.public_url,
        tokens=args.tokens,
        open_reads=args.open_reads,
        alertmanager_url=args.alertmanager,
        metrics_port=args.metrics_port,
        visibility_url=args.visibility_url,
        otlp_endpoint=args.otlp_endpoint,
        trusted_proxies=_proxies(args.trusted_proxies),
        signin=_signin(args, args.public_url),
        jaeger_url=args.jaeger_url,
        scoped_reads=args.scoped_reads,
        retention=args.retention,
    )
    try:
        ClientKeys(settings.trusted_proxies)
    except ValueError as err:
        print(f"saga-tracker run: --trusted-proxies: {err}", file=sys.stderr)
        return 2
    try:
        app = TrackerApp(settings)
    except DefinitionsUnreadable as err:  # set up wrong: what to change, exit 2
        print(f"saga-tracker run: {err}", file=sys.stderr)
        return 2
    app.start()
    print(f"saga tracker: traces at {app.public_url}/traces", flush=True)
    _until_stopped(app.stopped)
    app.stop()
    code = 2 if app.misconfigured else 1 if app.failed.is_set() else 0
    end_if_abandoned(app.abandoned, code)
    return code


def _ui(args: argparse.Namespace) -> int:
    configure_json_logging()
    config = ServiceConfig.from_env()
    url = args.visibility_url or f"sqlite:///{config.state_dir / 'visibility' / args.name}-ui.db"
    if args.no_index and url.startswith("sqlite"):
        print("saga-tracker ui: --no-index needs a shared postgresql:// --visibility-url")
        return 2
    try:
        ui = TrackerUi(
            UiSettings(
                visibility_url=url,
                client_conf=config.client_conf(),
                tracker=args.name,
                index=not args.no_index,
                instance_id=config.instance_id,
                http_host=args.http_host,
                http_port=args.http_port,
                tokens=args.tokens,
                open_reads=args.open_reads,
                trusted_proxies=_proxies(args.trusted_proxies),
                signin=_signin(args, ""),
                jaeger_url=args.jaeger_url,
                definitions=args.definitions,
                scoped_reads=args.scoped_reads,
            )
        ).start()
    except ValueError as err:  # a trusted proxy that is no address
        print(f"saga-tracker ui: --trusted-proxies: {err}", file=sys.stderr)
        return 2
    except (ConfigurationError, DefinitionsUnreadable) as err:  # say what to change
        print(f"saga-tracker ui: {err}", file=sys.stderr)
        return 2
    print(f"saga tracker ui: traces at {ui.server.url}/traces", flush=True)
    _until_stopped(ui.failed)
    ui.stop()
    return 2 if ui.misconfigured else 1 if ui.failed.is_set() else 0


def _proxies(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _until_stopped(ended: threading.Event) -> None:
    """Block until SIGTERM or SIGINT, or until the process's own parts set `ended`."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5) and not ended.is_set():
        pass


def _token(args: argparse.Namespace) -> int:
    token = new_token()
    if args.format == "json":
        entry = {"name": args.name, "role": args.role, "sha256": digest(token)}
        print(json.dumps({"token": token, "token_file_entry": entry}))
        return 0
    print(f"token (give it to {args.name}, it is not stored): {token}")
    print(f'token-file line: - {{name: {args.name}, role: {args.role}, sha256: "{digest(token)}"}}')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return entry.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
