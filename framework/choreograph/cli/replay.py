"""`choreograph replay capture|run`: capture what happened to process instances, and replay it
against code (see choreograph.replay)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from choreograph.cli.check import load
from choreograph.cli.cluster import add_bootstrap, add_registry, reached, registry_client
from choreograph.contracts.serde import AvroSerde
from choreograph.replay.capture import (
    Capture,
    CapturedRecord,
    CaptureError,
    build_capture,
    select,
)
from choreograph.replay.run import ReplayReport
from choreograph.replay.sandbox import publish
from choreograph.replay.source import read_at, read_topics
from choreograph.replay.tracker_query import TrackerQuery
from choreograph.testing import replay

EXPECTATIONS = ("no-differences", "differences", "no-dead-letters", "dead-letters")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("replay", help="capture process instances and replay them")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cap = commands.add_parser("capture", help="write the records of chosen instances to a file")
    cap.add_argument(
        "--topics",
        help="comma-separated topics to scan (with --tracker: only for records no timeline holds)",
    )
    cap.add_argument("--out", type=Path, required=True)
    cap.add_argument("--correlation-id", action="append", default=[], dest="ids")
    cap.add_argument("--tracker", help="saga tracker URL: choose instances by a query")
    cap.add_argument("--process", help="only instances of this process")
    cap.add_argument("--status", help="e.g. failed, compensated, needs_manual_resolution")
    cap.add_argument("--business-key", help="only the instance with this business key")
    cap.add_argument(
        "--since", help="RFC 3339 time: records from then on (with --tracker: instances started)"
    )
    cap.add_argument("--until", help="RFC 3339 time: records up to then (same)")
    cap.add_argument("--unmasked", action="store_true", help="keep PII fields as they are")
    add_bootstrap(cap)
    add_registry(cap)
    cap.add_argument("--format", choices=("text", "json"), default="text")
    cap.set_defaults(run=run_capture)
    pub = commands.add_parser("publish", help="republish a capture into prefixed topics")
    pub.add_argument("capture", type=Path, help="capture file written by replay capture")
    pub.add_argument("--prefix", required=True, help="e.g. sandbox-42. (topics get it in front)")
    pub.add_argument("--fresh-ids", action="store_true", help="new correlation ids per instance")
    add_bootstrap(pub)
    pub.add_argument("--format", choices=("text", "json"), default="text")
    pub.set_defaults(run=run_publish)
    run = commands.add_parser("run", help="replay a capture against a service's code")
    run.add_argument("capture", type=Path, help="capture file written by replay capture")
    run.add_argument(
        "--service", required=True, metavar="MODULE:ATTR", help="the fixed service's build function"
    )
    run.add_argument(
        "--expect",
        action="append",
        choices=EXPECTATIONS,
        default=[],
        help="what the fixed service must achieve (repeatable)",
    )
    run.add_argument("--format", choices=("text", "json"), default="text")
    run.set_defaults(run=run_replay)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _progress(topic: str, read: int, remaining: int) -> None:
    print(f"\rscanning {topic}: {read} record(s) read", end="", file=sys.stderr)


def _from_tracker(
    args: argparse.Namespace, ids: set[str], topics: list[str]
) -> list[CapturedRecord] | None:
    """The chosen instances' records: those on their timelines read at the coordinates the
    tracker keeps, plus a scan of `topics` (if any) for what no timeline holds, such as commands
    or events no process definition mentions. None when there is nothing to capture."""
    query = TrackerQuery(args.tracker, os.environ.get("CHOREOGRAPH_TRACKER_TOKEN"))
    tracked = query.instances(
        process=args.process,
        status=args.status,
        business_key=args.business_key,
        started_since=_time(args.since),
        started_until=_time(args.until),
    )
    tracked += [query.instance(cid, args.process) for cid in sorted(ids)]
    print(f"the tracker lists {len(tracked)} instance(s)", file=sys.stderr)
    if not tracked:
        return None
    without = [t.correlation_id for t in tracked if not t.origins]
    if without and not topics:
        raise CaptureError(
            f"{len(without)} timeline(s) hold no record coordinates (tracked by an older "
            f"tracker), e.g. {without[0]}: add --topics to scan for their records"
        )
    origins = [o for t in tracked for o in t.origins]
    records = list(read_at(args.bootstrap, origins, client=args.client))
    print(f"read {len(records)} record(s) at their timelines' coordinates", file=sys.stderr)
    if topics:
        chosen = {t.correlation_id for t in tracked}
        since = min(t.started_at for t in tracked)
        seen = {(r.topic, r.partition, r.offset) for r in records}
        scanned = read_topics(
            args.bootstrap, topics, since_ms=_ms(since), progress=_progress, client=args.client
        )
        records += [
            r for r in select(scanned, correlation_ids=chosen)
            if (r.topic, r.partition, r.offset) not in seen
        ]  # fmt: skip
    return records


def run_capture(args: argparse.Namespace) -> int:
    ids: set[str] = set(args.ids)
    topics = [t.strip() for t in (args.topics or "").split(",") if t.strip()]
    if not args.tracker and not topics:
        print("choreograph replay: name --topics to read, or a --tracker to ask", file=sys.stderr)
        return 2
    if not args.tracker and not ids and args.since is None:
        print(
            "choreograph replay: choose instances (--correlation-id, --tracker) or a time range "
            "(--since)", file=sys.stderr,
        )  # fmt: skip
        return 2
    config = reached(args, "replay capture")
    if config is None:
        return 2
    args.client = config.client_conf()
    serde = AvroSerde(registry_client(config))
    try:
        if args.tracker:
            found = _from_tracker(args, ids, topics)
            if found is None:
                print("choreograph replay: nothing to capture", file=sys.stderr)
                return 1
            chosen: Iterable[CapturedRecord] = found
        else:
            since = _ms(_time(args.since))
            source = read_topics(
                args.bootstrap, topics, since_ms=since, progress=_progress, client=args.client
            )
            chosen = select(
                source, correlation_ids=ids or None, since_ms=since, until_ms=_ms(_time(args.until))
            )
        capture = build_capture(
            chosen,
            lambda schema_id: json.dumps(serde.writer_schema_json(schema_id)),
            mask=not args.unmasked,
            secret=os.environ.get("CHOREOGRAPH_MASK_KEY", "").encode(),
            source=f"{args.bootstrap} {args.tracker or ','.join(topics)}",
        )
    except (CaptureError, ValueError, OSError) as err:  # MissingRecords is a ValueError
        print(f"\nchoreograph replay: {err}", file=sys.stderr)
        return 2
    capture.write(args.out)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "records": len(capture.records),
                    "instances": len(capture.instances()),
                    "masked": capture.masked,
                }
            )
        )
        return 0
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
    config = reached(args, "replay publish")
    if config is None:
        return 2
    published, there = publish(
        capture,
        config.bootstrap_servers,
        args.prefix,
        fresh_ids=args.fresh_ids,
        client=config.client_conf(),
    )
    if args.format == "json":
        print(json.dumps({"published": published, "already_there": there, "prefix": args.prefix}))
    else:
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
