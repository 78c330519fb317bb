"""`choreograph simulate processes/NAME.vN.yaml --capture FILE`: judge a process definition on
captured traffic before release, next to the current version (the saga tracker's own rules)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from choreograph.process.definition import (
    DefinitionError,
    ProcessDefinition,
    load_definitions,
    parse_definition,
)
from choreograph.replay.capture import Capture, CaptureError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("simulate", help="run a process definition over a capture")
    parser.add_argument("definition", type=Path)
    parser.add_argument("--capture", type=Path, required=True)
    parser.add_argument(
        "--current", type=Path, help="the definition to compare with (default: the highest "
        "earlier version of the same process beside the candidate)",
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
        capture = Capture.read(args.capture)
    except (OSError, DefinitionError, CaptureError) as err:
        print(f"choreograph simulate: {err}", file=sys.stderr)
        return 2
    report = simulate(capture, candidate, current)
    print(json.dumps(report.to_json(), indent=1) if args.format == "json" else report.text())
    return 0
