"""`choreograph dlq`: look at a service's dead letters and send them back to where they failed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from choreograph.cli.cluster import (
    ClusterUnreachable,
    add_bootstrap,
    cluster_config,
    reach,
    reached,
)
from choreograph.runtime.dlq import SkipRefused, read_dead_letters, replay, skip, summary


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("dlq", help="inspect and replay a service's dead-letter topic")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, helptext in (
        ("inspect", "print dead letters: origin, error, attempts, event type, correlation"),
        ("replay", "send dead letters back to their origin topics (each once)"),
    ):
        p = commands.add_parser(name, help=helptext)
        p.add_argument("--service", required=True, help="service name; its DLQ is <service>.dlq")
        add_bootstrap(p)
        p.add_argument("--limit", type=int)
        p.add_argument("--format", choices=("text", "json"), default="text")
        if name == "inspect":
            p.set_defaults(run=run_inspect)
        else:
            p.add_argument("--error-class", help="only records that failed with this exception")
            p.set_defaults(run=run_replay)
    p = commands.add_parser(
        "skip",
        help="move a stopped service past one record, dead-lettering it first (audited)",
    )
    p.add_argument("--service", required=True, help="service name (its consumer group)")
    add_bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--partition", type=int, required=True)
    p.add_argument("--offset", type=int, required=True, help="where the group stands now")
    p.add_argument("--reason", required=True, help="why: it goes to the audit log")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run_skip)


def _reached(args: argparse.Namespace) -> dict[str, Any] | None:
    """The client configuration of the cluster, once its broker and the DLQ topic answered;
    None (having said why) when not."""
    config = cluster_config(args)
    try:
        reach(config, f"{args.service}.dlq")
    except ClusterUnreachable as err:
        print(f"choreograph dlq: {err}", file=sys.stderr)
        return None
    return config.client_conf()


def run_inspect(args: argparse.Namespace) -> int:
    cluster = _reached(args)
    if cluster is None:
        return 2
    rows = [
        summary(record)
        for _, record in read_dead_letters(cluster, f"{args.service}.dlq", limit=args.limit)
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['dlq_offset']}  {row['type']}  key={row['key']}  from "
            f"{row['origin_topic']}[{row['origin_partition']}]@{row['origin_offset']}  "
            f"{row['reason']} after {row['attempts']} attempt(s)\n    {row['error_message']}"
        )
    print(f"{len(rows)} dead letter(s) in {args.service}.dlq")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    cluster = _reached(args)
    if cluster is None:
        return 2
    replayed, skipped = replay(
        cluster, f"{args.service}.dlq", error_class=args.error_class, limit=args.limit
    )
    if args.format == "json":
        print(json.dumps({"replayed": replayed, "skipped": skipped}))
    else:
        print(f"replayed {replayed}, skipped {skipped}")
    return 0


def run_skip(args: argparse.Namespace) -> int:
    config = reached(args, "dlq skip", args.topic)
    if config is None:
        return 2
    try:
        entry = skip(
            config.client_conf(),
            args.service,
            args.topic,
            args.partition,
            args.offset,
            reason=args.reason,
        )
    except SkipRefused as refused:
        print(f"dlq skip: {refused}", file=sys.stderr)
        return 1
    print(json.dumps(entry))
    if args.format == "text":
        print(
            f"{args.service} moved past {args.topic}[{args.partition}]@{args.offset}; "
            f"the record is in {entry['dead_letter']}"
        )
    return 0
