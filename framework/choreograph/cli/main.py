"""Entry point of the `choreograph` command: one sub-command group per concern."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from choreograph.cli import (
    acls,
    audit,
    check,
    contracts,
    deploy_gate,
    dev,
    dlq,
    entry,
    governance,
    image,
    init,
    instances,
    machines,
    new,
    policies,
    processes,
    replay,
    schemas,
    settings,
    shadow,
    simulate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="choreograph", description="Kafka-native event choreography."
    )
    entry.add_common(parser)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    dev.register(groups)
    schemas.register(groups)
    contracts.register(groups)
    deploy_gate.register(groups)
    dlq.register(groups)
    processes.register(groups)
    policies.register(groups)
    audit.register(groups)
    instances.register(groups)
    machines.register(groups)
    governance.register(groups)
    acls.register(groups)
    init.register(groups)
    image.register(groups)
    new.register(groups)
    check.register(groups)
    replay.register(groups)
    simulate.register(groups)
    shadow.register(groups)
    settings.register(groups)
    entry.explain(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return entry.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
