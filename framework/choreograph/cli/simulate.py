"""`choreograph simulate processes/NAME.vN.yaml --capture FILE`: judge a process definition on
captured traffic before release, next to the current version (the saga tracker's own rules)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from choreograph.cli.cluster import (
    ClusterUnreachable,
    add_bootstrap,
    add_registry,
    cluster_config,
    reach,
    registry_client,
)
from choreograph.contracts.serde import AvroSerde
from choreograph.process.definition import (
    DefinitionError,
    ProcessDefinition,
    load_definitions,
    parse_definition,
)
from choreograph.replay.capture import Capture, CaptureError, build_capture, select
from choreograph.replay.source import read_topics


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("simulate", help="run a process definition over a capture")
    parser.add_argument("definition", type=Path, help="the process definition (YAML) to try")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--capture", type=Path, help="replay a capture file through it")
    source.add_argument("--topics", help="or read straight from these topics (comma-separated)")
    parser.add_argument("--since", help="with --topics: RFC 3339 start of the time range")
    parser.add_argument("--until", help="with --topics: RFC 3339 end of the time range")
    add_bootstrap(parser)
    add_registry(parser)
    parser.add_argument(
        "--current", type=Path, help="the definition to compare with (default: the highest "
        "earlier version of the same process beside the candidate)",
    )  # fmt: skip
    parser.add_argument(
        "--migration", action="store_true",
        help="judge each captured instance for moving to the candidate now: its history run "
        "under both versions up to now; safe when the same states are reached, no deadline of "
        "the candidate has passed and nothing unsent would be sent",
    )  # fmt: skip
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from saga_tracker.simulate import simulate  # the tracker's rules: the process semantics

    current: ProcessDefinition | None
    try:
        candidate = parse_definition(args.definition.read_text(), str(args.definition)).definition
        if args.current:
            current = parse_definition(args.current.read_text(), str(args.current)).definition
        else:
            loaded, _ = load_definitions(args.definition.parent)
            earlier = [
                item.definition
                for item in loaded
                if item.definition.name == candidate.name
                and item.definition.version < candidate.version
            ]
            current = max(earlier, key=lambda d: d.version) if earlier else None
        capture = Capture.read(args.capture) if args.capture else _from_topics(args)
    except (OSError, DefinitionError, CaptureError, ClusterUnreachable) as err:
        print(f"choreograph simulate: {err}", file=sys.stderr)
        return 2
    if args.migration:
        report = simulate(capture, candidate, current, until=datetime.now(UTC))
        if args.format == "json":
            print(json.dumps({**report.to_json(), "migration": report.migration()}, indent=1))
        else:
            print(report.migration_text())
        return 0
    report = simulate(capture, candidate, current)
    print(json.dumps(report.to_json(), indent=1) if args.format == "json" else report.text())
    return 0


def _from_topics(args: argparse.Namespace) -> Capture:
    """A capture of the time range, in memory (nothing written, so nothing to mask)."""
    if not args.since:
        raise CaptureError("--topics needs --since (and, optionally, --until)")
    since = int(datetime.fromisoformat(args.since).timestamp() * 1000)
    until = int(datetime.fromisoformat(args.until).timestamp() * 1000) if args.until else None
    config = cluster_config(args)
    reach(config)  # ClusterUnreachable: said in one line, exit 2
    serde = AvroSerde(registry_client(config))
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    source = read_topics(config.bootstrap_servers, topics, since_ms=since,
                         client=config.client_conf())  # fmt: skip
    records = select(source, since_ms=since, until_ms=until)
    return build_capture(
        records, lambda schema_id: json.dumps(serde.writer_schema_json(schema_id)), mask=False
    )
