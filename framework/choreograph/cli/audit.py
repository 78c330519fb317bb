"""`choreograph audit show --correlation-id ID`: an instance's decision records, in order.

Reads `choreograph.decisions` (committed records only) and chooses by the `ce_correlationid`
header, so no body of another instance is decoded."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from choreograph.cli.cluster import add_bootstrap, add_registry, reached, registry_client
from choreograph.contracts.serde import AvroSerde, SerdeError
from choreograph.governance.contracts_bound import DECISIONS_TOPIC, model
from choreograph.replay.capture import select
from choreograph.replay.source import read_topics
from choreograph.runtime.config import ServiceConfig


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("audit", help="decision records of process instances")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser("show", help="an instance's decisions, in order")
    show.add_argument("--correlation-id", required=True, dest="correlation_id")
    show.add_argument("--since", help="RFC 3339 time: only records from then on (faster)")
    show.add_argument("--topic", default=DECISIONS_TOPIC)
    show.add_argument("--format", choices=("text", "json"), default="text")
    add_bootstrap(show)
    add_registry(show)
    show.set_defaults(run=run_show)


def decisions(
    config: ServiceConfig, correlation_id: str, *, topic: str = DECISIONS_TOPIC,
    since: datetime | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The decision records of one instance, as JSON-ready dicts, oldest first."""
    serde = AvroSerde(registry_client(config))
    reader = model("dev.choreograph.DecisionRecord")
    since_ms = int(since.timestamp() * 1000) if since else None
    found = []
    for record in select(
        read_topics(
            config.bootstrap_servers, [topic], since_ms=since_ms, client=config.client_conf()
        ),
        correlation_ids={correlation_id},
    ):
        try:
            decision = serde.deserialize(record.value, reader).event
        except SerdeError as err:
            print(f"{topic}[{record.partition}]@{record.offset} unreadable: {err}", file=sys.stderr)
            continue
        data = decision.to_avro() if hasattr(decision, "to_avro") else dict(decision)
        found.append(json.loads(json.dumps(data, default=str)))
    return sorted(found, key=lambda d: str(d["at"]))


def text(decision: dict[str, Any]) -> str:
    moved = f"{decision['from_state']} -> {decision['to_state']}" if decision["to_state"] else ""
    head = (
        f"{decision['at']}  {decision['kind']:<15} {decision['subject']} {decision['name']} "
        f"v{decision['version']} {moved}".rstrip()
    )
    trigger = decision["trigger_event_type"]
    if decision["trigger_event_id"]:
        trigger += f" ({decision['trigger_event_id']})"
    lines = [head, f"    trigger {trigger}"]
    for rule in decision["rules"]:
        inputs = ", ".join(f"{k}={v}" for k, v in rule["inputs"].items())
        lines.append(f"    rule {rule['rule']} v{rule['version']} = {rule['result']}"
                     + (f" on {inputs}" if inputs else ""))  # fmt: skip
    who = decision["actor"] + (
        f" on {decision['actor_instance']}" if decision["actor_instance"] else ""
    )
    lines.append(f"    by {decision['actor_kind']} {who}")
    if decision["reason"]:
        lines.append(f"    why {decision['reason']}")
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    since = datetime.fromisoformat(args.since) if args.since else None
    config = reached(args, "audit", args.topic)
    if config is None:
        return 2
    try:
        found = decisions(config, args.correlation_id, topic=args.topic, since=since)
    except ValueError as err:
        print(f"choreograph audit: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(found, indent=1))
    else:
        print("\n".join(text(d) for d in found) or f"no decisions of {args.correlation_id}")
    return 0 if found else 1
