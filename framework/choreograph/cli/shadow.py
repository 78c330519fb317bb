"""`choreograph shadow MODULE:ATTR`: run a new build of a service beside the live one, on the
live inputs, in its own consumer group and state, with every output written to `<topic>.shadow`
(never to the live topics), and report per key how its outputs differ from the live service's.

Exit 0 when no key differed, 1 when some did (with the report), 2 when the cluster does not
answer. Metrics (`choreograph_shadow_keys_compared_total`, `..._differing_total`) are served on
`--metrics-port`, beside the shadow engine's own."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from choreograph.cli.check import load
from choreograph.cli.cluster import add_bootstrap, add_registry, reached
from choreograph.shadow.compare import Difference
from choreograph.shadow.runner import ShadowRun


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("shadow", help="run a new build beside the live service, compare")
    parser.add_argument("service", metavar="MODULE:ATTR", help="the new build")
    parser.add_argument("--from", dest="start", choices=("latest", "earliest"), default="latest",
                        help="inputs from now on (default), or the whole history")  # fmt: skip
    parser.add_argument("--ignore-field", action="append", default=[], dest="ignore",
                        help="a field that differs by nature (an id per run)")  # fmt: skip
    parser.add_argument("--settle-s", type=float, default=10.0,
                        help="compare a key once no output came for it this long")  # fmt: skip
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--report", type=Path, help="write the differences here (JSON)")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--state-dir", type=Path, default=Path("./state"),
                        help="the shadow's local state goes under it")  # fmt: skip
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="json: a line per difference, then the summary")  # fmt: skip
    add_bootstrap(parser)
    add_registry(parser)
    parser.set_defaults(run=run_shadow)


def run_shadow(args: argparse.Namespace) -> int:
    config = reached(args, "shadow")
    if config is None:
        return 2
    service, _ = load(args.service)
    config = config.model_copy(update={"state_dir": args.state_dir,
                                       "metrics_port": args.metrics_port})  # fmt: skip
    shadow = ShadowRun(service, config, ignore=set(args.ignore), settle_s=args.settle_s,
                       start=args.start)  # fmt: skip

    def said(difference: Difference) -> None:
        if args.format == "json":
            print(json.dumps(difference.to_json(), default=str), flush=True)
            return
        print(f"differs  {difference.topic}  {difference.key}  {difference.kind}: "
              f"{difference.detail}", flush=True)  # fmt: skip

    shadow.on_difference = said
    signal.signal(signal.SIGTERM, lambda *_: shadow.stop())
    signal.signal(signal.SIGINT, lambda *_: shadow.stop())
    outputs = ", ".join(f"{live} -> {copy}" for live, copy in shadow.outputs.items())
    print(f"shadow {shadow.service.name} of {shadow.live_name}: outputs {outputs}",
          file=sys.stderr, flush=True)  # fmt: skip
    comparison = shadow.run(args.duration)
    summary = {
        "service": shadow.live_name,
        "compared": comparison.compared,
        "same": comparison.same,
        "differing": sorted(comparison.differing),
        "differences": [d.to_json() for d in comparison.differences],
    }
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2, default=str))
    if args.format == "json":
        print(json.dumps({k: v for k, v in summary.items() if k != "differences"}))
    print(f"compared {comparison.compared} keys: {comparison.same} the same, "
          f"{len(comparison.differing)} differing", file=sys.stderr)  # fmt: skip
    return 1 if comparison.differing else 0
