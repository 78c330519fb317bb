"""`choreograph instances`: process instances through the saga tracker's API, as on-call uses
them at night.

    choreograph instances list --status running --at-step payment --attr customer_id=c-7
    choreograph instances show CORRELATION_ID
    choreograph instances totals --process order-fulfilment
    choreograph instances retry CORRELATION_ID --step payment --reason "payments fixed"
    choreograph instances redrive --at-step reservation --step reservation \\
        --reason "inventory fixed" --dry-run         # count and sample, nothing done
    choreograph instances pause --process order-fulfilment --status running --reason "..." --yes
    choreograph instances batches [BATCH_ID] [--wait] [--cancel --reason "..."]
    choreograph instances login --issuer https://idp/realms/acme   # the device flow

An action names one instance (its correlation id), or chooses instances with the filters the
console has, as a batch: a dry run first shows how many and a sample, then the batch runs at a
bounded rate after a confirmation (`--yes` where nobody can answer). Every action is audited by
the tracker. Exit codes: 0 done, 1 refused (the tracker says why), 2 the tracker does not
answer or the command is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from choreograph.cli.tracker_client import (
    CLI_CLIENT,
    UNREACHABLE,
    SignInFailed,
    Tracker,
    TrackerAway,
    device_login,
    logout,
    tracker_from,
)

ACTIONS = ("retry", "compensate", "resolve", "cancel", "pause", "resume", "redrive", "hold",
           "release")  # fmt: skip
REFUSED = 1
FILTERS = (
    ("process", "process", "the process definition's name"),
    ("version", "version", "its version"),
    ("status", "status", "the instance's status (running, failed, compensating, ...)"),
    ("at_step", "step", "at this step: under way or needing attention there"),
    ("key", "business_key", "the business key"),
    ("started_after", "started_after", "started at or after (RFC 3339, with its zone)"),
    ("started_before", "started_before", "started before (RFC 3339, with its zone)"),
)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "instances", help="list, inspect and repair process instances through the saga tracker"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listed = commands.add_parser("list", help="instances the filters choose, newest first")
    connection_options(listed)
    filter_options(listed)
    listed.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listed.set_defaults(run=_list)

    show = commands.add_parser("show", help="one instance: steps, timeline, decisions")
    connection_options(show)
    show.add_argument("correlation_id", help="the instance's correlation id")
    show.add_argument("--process", help="its process, when several share the correlation id")
    show.set_defaults(run=_show)

    totals = commands.add_parser("totals", help="how many, and their value, per status and step")
    connection_options(totals)
    filter_options(totals)
    totals.set_defaults(run=_totals)

    for action in ACTIONS:
        act = commands.add_parser(
            action, help=f"{action} one instance, or every instance the filters choose"
        )
        connection_options(act)
        act.add_argument("correlation_id", nargs="?", help="the instance; leave out for a batch")
        act.add_argument("--process", dest="process", help="the process (filter of a batch)")
        act.add_argument("--step", dest="action_step", help="the step to retry or redrive")
        act.add_argument("--reason", required=True, help="why: it goes to the audit log")
        filter_options(act, process=False)
        act.add_argument(
            "--all", action="store_true", help="a batch over every instance (no filter)"
        )
        act.add_argument("--dry-run", action="store_true", help="count and sample; do nothing")
        act.add_argument("--yes", action="store_true", help="run the batch without asking")
        act.add_argument("--rate", type=int, default=50, help="batch actions a second (50)")
        act.add_argument("--wait", action="store_true", help="follow the batch to its end")
        act.set_defaults(run=_act, action=action)

    batches = commands.add_parser("batches", help="batch operations, or one with its progress")
    connection_options(batches)
    batches.add_argument("batch_id", nargs="?", help="one batch; leave out to list them")
    batches.add_argument("--wait", action="store_true", help="follow it to its end")
    batches.add_argument("--cancel", action="store_true", help="stop its dispatch")
    batches.add_argument("--reason", help="why it is cancelled (with --cancel)")
    batches.set_defaults(run=_batches)

    login = commands.add_parser("login", help="sign in with the identity provider's device flow")
    login.add_argument("--issuer", required=True, help="the identity provider's issuer URL")
    login.add_argument("--client-id", default=CLI_CLIENT, help=f"default {CLI_CLIENT}")
    login.add_argument("--format", choices=("text", "json"), default="text")
    login.set_defaults(run=_login)

    out = commands.add_parser("logout", help="forget the signed-in person's tokens")
    out.add_argument("--format", choices=("text", "json"), default="text")
    out.set_defaults(run=_logout)


def connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracker", help="the tracker's URL (CHOREOGRAPH_TRACKER_URL; http://127.0.0.1:8088)"
    )
    parser.add_argument(
        "--token",
        help="a bearer token (CHOREOGRAPH_TRACKER_TOKEN); by default the signed-in person's",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def filter_options(parser: argparse.ArgumentParser, *, process: bool = True) -> None:
    for dest, _, text in FILTERS:
        if dest == "process" and not process:
            continue
        parser.add_argument(f"--{dest.replace('_', '-')}", dest=dest, help=text)
    parser.add_argument("--open-incidents", action="store_true", help="with an open incident")
    parser.add_argument("--paused", action="store_true", help="paused by an operator")
    parser.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a search attribute equal to VALUE; NAME.min=N or NAME.max=N for a range",
    )


def query_of(args: argparse.Namespace) -> dict[str, str]:
    """The filters given, as the API takes them."""
    query: dict[str, str] = {}
    for dest, name, _ in FILTERS:
        value = getattr(args, dest, None)
        if value is not None:
            query[name] = str(value)
    if getattr(args, "open_incidents", False):
        query["open_incidents"] = "true"
    if getattr(args, "paused", False):
        query["paused"] = "true"
    for item in getattr(args, "attr", []):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _Usage(f"--attr {item!r}: write NAME=VALUE (or NAME.min=N, NAME.max=N)")
        query[f"attr.{name}"] = value
    return query


class _Usage(Exception):
    """The command is wrong; says how to write it."""


def run(args: argparse.Namespace, work: Any) -> int:
    """Run `work(tracker)` with the tracker's errors as exit codes and one line each."""
    tracker = tracker_from(args.tracker, args.token)
    try:
        code: int = work(tracker)
        return code
    except TrackerAway as err:
        print(f"choreograph instances: {err}; is it running? (--tracker)", file=sys.stderr)
        return UNREACHABLE
    except _Usage as err:
        print(f"choreograph instances: {err}", file=sys.stderr)
        return UNREACHABLE


def _answer(reply: Any, tracker: Tracker) -> tuple[int, Any]:
    """The reply's body, or the exit code and the tracker's reason, said on stderr."""
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text[:200]}
    if reply.status_code < 300:
        return 0, body
    error = body.get("error", reply.reason) if isinstance(body, dict) else reply.reason
    if reply.status_code == 401:
        error += (
            ": pass --token (CHOREOGRAPH_TRACKER_TOKEN), or sign in with "
            "`choreograph instances login --issuer URL`"
        )
    print(f"choreograph instances: {error} (HTTP {reply.status_code})", file=sys.stderr)
    return (UNREACHABLE if reply.status_code in (400, 503) else REFUSED), body


def _list(args: argparse.Namespace) -> int:
    def work(tracker: Tracker) -> int:
        code, found = _answer(
            tracker.call("GET", "/api/instances", limit=args.limit, **query_of(args)), tracker
        )
        if code:
            return code
        if args.format == "json":
            print(json.dumps(found))
            return 0
        for i in found:
            marks = "".join(
                f" ({m})" for m, on in (("paused", i.get("paused")), ("on hold", i.get("held")))
                if on
            )  # fmt: skip
            attributes = " ".join(f"{k}={v}" for k, v in sorted(i.get("attributes", {}).items()))
            print(f"{i['correlation_id']}  {i['process']} v{i['version']}  {i['business_key']}  "
                  f"{i['status']}{marks}  {i['started_at']}  {attributes}".rstrip())  # fmt: skip
        print(f"{len(found)} instance(s)", file=sys.stderr)
        return 0

    return run(args, work)


def _show(args: argparse.Namespace) -> int:
    def work(tracker: Tracker) -> int:
        path = f"/api/instances/{args.correlation_id}"
        code, trace = _answer(tracker.call("GET", path, process=args.process), tracker)
        if code:
            return code
        if args.format == "json":
            print(json.dumps(trace))
            return 0
        print(f"{trace['correlation_id']}: {trace['process']} v{trace['version']}, key "
              f"{trace['business_key']}, {trace['status']}")  # fmt: skip
        if trace.get("paused_at"):
            print(f"  paused since {trace['paused_at']}")
        if trace.get("held"):
            print(f"  on legal hold: {trace['held']}")
        if trace.get("failure_reason"):
            print(f"  why: {trace['failure_reason']}")
        for name, value in sorted((trace.get("attributes") or {}).items()):
            print(f"  {name} = {value}")
        print("steps:")
        for name, step in trace["steps"].items():
            took = trace["step_latency_ms"].get(name)
            print(f"  {name}: {step['status']}" + (f" in {took / 1000:.1f} s" if took else ""))
        print("timeline:")
        for entry in trace["timeline"]:
            what = entry["event_type"] or entry["kind"]
            step = f" [{entry['step']}]" if entry.get("step") else ""
            note = f" {entry['note']}" if entry.get("note") else ""
            print(f"  {entry['at']}  {what}{step}{note}")
        return 0

    return run(args, work)


def _totals(args: argparse.Namespace) -> int:
    def work(tracker: Tracker) -> int:
        code, totals = _answer(
            tracker.call("GET", "/api/instances/totals", **query_of(args)), tracker
        )
        if code:
            return code
        if args.format == "json":
            print(json.dumps(totals))
            return 0
        for row in totals["by_status"]:
            print(f"{row['status']:>24}  {row['count']:>8}  {row['value']:>14,.2f}")
        if totals["by_step"]:
            print("at steps:")
        for row in totals["by_step"]:
            where = f"{row['step']} ({row['step_status']})"
            print(f"{where:>24}  {row['count']:>8}  {row['value']:>14,.2f}")
        return 0

    return run(args, work)


def _act(args: argparse.Namespace) -> int:
    def work(tracker: Tracker) -> int:
        query = query_of(args)
        if args.process:
            query["process"] = args.process
        if args.correlation_id:
            if len(query) > (1 if args.process else 0) or args.all:
                raise _Usage("name one instance, or choose instances with filters, not both")
            return _one(tracker, args)
        if not query and not args.all:
            raise _Usage(
                "name an instance, or choose instances with filters (--status, --at-step, "
                "--attr, ...), or pass --all for every instance"
            )
        return run_batch(tracker, args, query)

    return run(args, work)


def _one(tracker: Tracker, args: argparse.Namespace) -> int:
    body = {"action": args.action, "reason": args.reason}
    if args.action_step:
        body["step"] = args.action_step
    if args.process:
        body["process"] = args.process
    path = f"/api/instances/{args.correlation_id}/actions"
    code, accepted = _answer(tracker.call("POST", path, body), tracker)
    if code:
        return code
    if args.format == "json":
        print(json.dumps(accepted))
    else:
        print(
            f"{args.action} of {args.correlation_id} accepted (action "
            f"{accepted['action_id']}); the tracker applies it and audits the outcome"
        )
    return 0


def run_batch(
    tracker: Tracker,
    args: argparse.Namespace,
    query: dict[str, str],
    *,
    extra: dict[str, Any] | None = None,
    show: Callable[[dict[str, Any], str, bool], None] | None = None,
) -> int:
    """A batch over the instances `query` chooses: its dry run shown (by `show`), then, unless
    `--dry-run`, run once confirmed with the count the dry run showed. `extra`: more fields of
    the request (a migration's `to_version`)."""
    body: dict[str, Any] = {"query": query, "action": args.action, "reason": args.reason,
                            "rate_per_s": args.rate, **(extra or {})}  # fmt: skip
    if args.action_step:
        body["step"] = args.action_step
    code, plan = _answer(tracker.call("POST", "/api/batches", {**body, "dry_run": True}), tracker)
    if code:
        return code
    if args.format == "text" or args.dry_run:
        (show or _print_plan)(plan, args.format, args.dry_run)
    if args.dry_run:
        return 0
    if plan["count"] == 0:
        chosen = plan.get("chosen")
        none = f"none of the {chosen} instance(s) chosen qualifies" if chosen else ""
        print(f"nothing to do: {none or 'the filters choose no instance'}", file=sys.stderr)
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise _Usage(f"{plan['count']} instance(s) would be acted on: pass --yes to run")
        answer = input(f"{args.action} {plan['count']} instance(s)? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing done", file=sys.stderr)
            return REFUSED
    code, started = _answer(
        tracker.call("POST", "/api/batches", {**body, "expect": plan["count"]}), tracker
    )
    if code:
        return code
    if args.format == "text":
        print(f"batch {started['batch_id']}: {started['count']} instance(s), at most "
              f"{started['rate_per_s']} a second")  # fmt: skip
    if args.wait:
        return _follow(tracker, started["batch_id"], args.format)
    if args.format == "json":
        print(json.dumps(started))
    return 0


def _print_plan(plan: dict[str, Any], fmt: str, dry_run: bool) -> None:
    if fmt == "json":
        print(json.dumps(plan))
        return
    print(
        f"{plan['action']}{' ' + plan['step'] if plan.get('step') else ''} would act on "
        f"{plan['count']} instance(s) chosen by {plan['query'] or 'every instance'}:"
    )
    for process, n in sorted(plan["processes"].items()):
        print(f"  {process}: {n}")
    if plan.get("sample"):
        print("for example:")
    for i in plan.get("sample", []):
        print(f"  {i['correlation_id']}  {i['process']} v{i['version']}  {i['business_key']}  "
              f"{i['status']}")  # fmt: skip
    if dry_run:
        print("dry run: nothing done", file=sys.stderr)


def _follow(tracker: Tracker, batch_id: str, fmt: str, *, once: bool = False) -> int:
    """Print the batch's progress until it ends (`once`: as it stands now); 0 when done or
    under way, 1 when cancelled."""
    last = None
    while True:
        code, batch = _answer(tracker.call("GET", f"/api/batches/{batch_id}"), tracker)
        if code == REFUSED and batch.get("error", "").startswith("no batch") and not once:
            time.sleep(0.5)  # not indexed yet
            continue
        if code:
            return code
        shown = (batch["status"], batch["dispatched"], batch["applied"], batch["refused"])
        if shown != last and fmt == "text":
            print(f"{batch['status']}: {batch['dispatched']} dispatched, {batch['applied']} "
                  f"applied, {batch['refused']} refused of {batch['total']}")  # fmt: skip
            last = shown
        if batch["status"] in ("done", "cancelled") or once:
            if fmt == "json":
                print(json.dumps(batch))
            for refusal in batch.get("refusals", []) if fmt == "text" else []:
                print(f"  refused {refusal['correlation_id']}: {refusal['detail']}")
            return REFUSED if batch["status"] == "cancelled" else 0
        time.sleep(1.0)


def _batches(args: argparse.Namespace) -> int:
    def work(tracker: Tracker) -> int:
        if args.batch_id is None:
            code, found = _answer(tracker.call("GET", "/api/batches"), tracker)
            if code:
                return code
            if args.format == "json":
                print(json.dumps(found))
            for b in found if args.format == "text" else []:
                print(
                    f"{b['batch_id']}  {b['action']}  {b['status']}  {b['answered']}/"
                    f"{b['total']}  by {b['actor']}  {b['query'] or 'every instance'}"
                )
            return 0
        if args.cancel:
            if not args.reason:
                raise _Usage("--cancel needs --reason: it goes to the audit log")
            path = f"/api/batches/{args.batch_id}/cancel"
            code, _ = _answer(tracker.call("POST", path, {"reason": args.reason}), tracker)
            if code:
                return code
            if args.format == "text":
                print(f"batch {args.batch_id}: cancel accepted")
        if args.cancel and not args.wait:
            return 0
        return _follow(tracker, args.batch_id, args.format, once=not args.wait)

    return run(args, work)


def _login(args: argparse.Namespace) -> int:
    try:
        kept = device_login(args.issuer, args.client_id)
    except SignInFailed as err:
        print(f"choreograph instances login: {err}", file=sys.stderr)
        return REFUSED
    if args.format == "json":
        print(json.dumps({"signed_in": True, "issuer": kept["issuer"]}))
    else:
        print(f"signed in at {kept['issuer']}; the tracker's commands use it from now on")
    return 0


def _logout(args: argparse.Namespace) -> int:
    forgot = logout()
    if args.format == "json":
        print(json.dumps({"signed_out": forgot}))
    else:
        print("signed out" if forgot else "nobody was signed in")
    return 0
