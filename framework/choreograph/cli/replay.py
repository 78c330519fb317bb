"""`choreograph replay capture|run`: capture what happened to process instances, and replay it
against code (see choreograph.replay)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from choreograph.cli.check import load
from choreograph.contracts.serde import AvroSerde
from choreograph.replay.capture import Capture, CaptureError, build_capture, select
from choreograph.replay.run import ReplayReport
from choreograph.replay.sandbox import publish
from choreograph.replay.source import read_topics
from choreograph.testing import replay

EXPECTATIONS = ("no-differences", "differences", "no-dead-letters", "dead-letters")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("replay", help="capture process instances and replay them")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cap = commands.add_parser("capture", help="write the records of chosen instances to a file")
    cap.add_argument("--topics", required=True, help="comma-separated topics to read")
    cap.add_argument("--out", type=Path, required=True)
    cap.add_argument("--correlation-id", action="append", default=[], dest="ids")
    cap.add_argument("--tracker", help="saga tracker URL: choose instances by a query")
    cap.add_argument("--process")
    cap.add_argument("--status", help="e.g. failed, compensated, needs_manual_resolution")
    cap.add_argument("--business-key")
    cap.add_argument("--since", help="RFC 3339 time: records from then on")
    cap.add_argument("--until", help="RFC 3339 time: records up to then")
    cap.add_argument("--unmasked", action="store_true", help="keep PII fields as they are")
    cap.add_argument(
        "--bootstrap", default=os.environ.get("CHOREOGRAPH_BOOTSTRAP", "127.0.0.1:9092")
    )
    cap.add_argument(
        "--registry",
        default=os.environ.get("CHOREOGRAPH_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
    )
    cap.set_defaults(run=run_capture)
    pub = commands.add_parser("publish", help="republish a capture into prefixed topics")
    pub.add_argument("capture", type=Path)
    pub.add_argument("--prefix", required=True, help="e.g. sandbox-42. (topics get it in front)")
    pub.add_argument("--fresh-ids", action="store_true", help="new correlation ids per instance")
    pub.add_argument(
        "--bootstrap", default=os.environ.get("CHOREOGRAPH_BOOTSTRAP", "127.0.0.1:9092")
    )
    pub.set_defaults(run=run_publish)
    run = commands.add_parser("run", help="replay a capture against a service's code")
    run.add_argument("capture", type=Path)
    run.add_argument("--service", required=True, metavar="MODULE:ATTR")
    run.add_argument("--expect", action="append", choices=EXPECTATIONS, default=[])
    run.add_argument("--format", choices=("text", "json"), default="text")
    run.set_defaults(run=run_replay)


def _ms(text: str | None) -> int | None:
    return None if text is None else int(datetime.fromisoformat(text).timestamp() * 1000)


def tracker_instances(url: str, query: dict[str, str]) -> set[str]:
    """Correlation ids the tracker's trace API lists for `query` (process, status, key)."""
    wanted = {k: v for k, v in query.items() if v}
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/instances?{urllib.parse.urlencode(wanted)}"
    )
    token = os.environ.get("CHOREOGRAPH_TRACKER_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        listed: list[dict[str, Any]] = json.load(reply)
    return {item["correlation_id"] for item in listed}


def run_capture(args: argparse.Namespace) -> int:
    ids: set[str] | None = set(args.ids) or None
    if args.tracker:
        query = {"process": args.process, "status": args.status, "business_key": args.business_key}
        found = tracker_instances(args.tracker, query)
        print(f"the tracker lists {len(found)} instance(s)", file=sys.stderr)
        ids = (ids or set()) | found
        if not ids:
            print("choreograph replay: nothing to capture", file=sys.stderr)
            return 1
    if ids is None and args.since is None:
        print(
            "choreograph replay: choose instances (--correlation-id, --tracker) or a time range "
            "(--since)", file=sys.stderr,
        )  # fmt: skip
        return 2
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    serde = AvroSerde(args.registry)

    def progress(topic: str, read: int, remaining: int) -> None:
        print(f"\rscanning {topic}: {read} record(s) read", end="", file=sys.stderr)

    source = read_topics(args.bootstrap, topics, since_ms=_ms(args.since), progress=progress)
    chosen = select(source, correlation_ids=ids, since_ms=_ms(args.since), until_ms=_ms(args.until))
    try:
        capture = build_capture(
            chosen,
            lambda schema_id: json.dumps(serde.writer_schema_json(schema_id)),
            mask=not args.unmasked,
            secret=os.environ.get("CHOREOGRAPH_MASK_KEY", "").encode(),
            source=f"{args.bootstrap} {','.join(topics)}",
        )
    except (CaptureError, ValueError) as err:
        print(f"\nchoreograph replay: {err}", file=sys.stderr)
        return 2
    capture.write(args.out)
    masked = "PII masked" if capture.masked else "PII NOT masked"
    print(
        f"\nwrote {len(capture.records)} record(s) of {len(capture.instances())} instance(s) to "
        f"{args.out} ({masked})", file=sys.stderr,
    )  # fmt: skip
    return 0


def run_publish(args: argparse.Namespace) -> int:
    try:
        capture = Capture.read(args.capture)
    except CaptureError as err:
        print(f"choreograph replay: {err}", file=sys.stderr)
        return 2
    published, there = publish(capture, args.bootstrap, args.prefix, fresh_ids=args.fresh_ids)
    print(f"published {published} record(s) under {args.prefix}*; {there} were there already")
    return 0


def holds(report: ReplayReport, expectation: str) -> bool:
    return {
        "no-differences": not report.differences,
        "differences": bool(report.differences),
        "no-dead-letters": not report.dead_letters,
        "dead-letters": bool(report.dead_letters),
    }[expectation]


def run_replay(args: argparse.Namespace) -> int:
    try:
        capture = Capture.read(args.capture)
        service, _ = load(args.service)
    except (CaptureError, ImportError, AttributeError, ValueError) as err:
        print(f"choreograph replay: {err}", file=sys.stderr)
        return 2
    report = replay(capture, service)
    print(
        json.dumps(report.to_json(), indent=1, default=str)
        if args.format == "json"
        else report.text()
    )
    expected = args.expect or ["no-differences"]
    return 0 if all(holds(report, e) for e in expected) else 1
