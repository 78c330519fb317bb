"""What every command line of the project does the same way: `--version`, a shell completion
script from its own parser (shtab), and a quiet end when the reader of its output goes away
(`choreograph dlq inspect | head`), as Unix tools do."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import shtab

SIGPIPE_EXIT = 141  # what a shell reports for a C tool ended by SIGPIPE


def package_version() -> str:
    try:
        return version("choreograph")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def add_common(parser: argparse.ArgumentParser) -> None:
    """`--version` and `--print-completion {bash,zsh,tcsh}` on `parser`."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script")


# Help of the options many commands share, said once here rather than at every command.
SHARED_HELP = {
    "--format": "how to print the result: text for people, json for scripts",
    "--bootstrap": "Kafka bootstrap servers (CHOREOGRAPH_BOOTSTRAP)",
    "--registry": "schema registry URL (CHOREOGRAPH_REGISTRY_URL)",
    "--limit": "read at most this many records",
    "--topic": "the topic",
    "--partition": "the partition of the topic",
    "--correlation-id": "only the records of this correlation (process instance)",
    "--root": "contracts folder",
    "--out": "where to write",
    "--schemas": "contracts folder",
    "--definitions": "folder of process definitions",
    "--name": "this tracker's name: its consumer groups, stores and topics are named after it",
    "--http-host": "address the trace API and pages bind",
    "--http-port": "port of the trace API and pages",
    "--public-url": "URL the pages are reached at, for links in alerts",
    "--tokens": "file of bearer tokens and their roles",
    "--alertmanager": "Alertmanager URL incidents are sent to",
    "--metrics-port": "port of the Prometheus /metrics endpoint",
    "--metrics-host": "address the metrics endpoint binds",
}


def explain(parser: argparse.ArgumentParser) -> None:
    """Every option of `parser` and its sub-commands with help and its default shown."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                explain(child)
        elif not action.help and action.option_strings:
            action.help = SHARED_HELP.get(action.option_strings[0])


def run(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None) -> int:
    """Parse, run the chosen command, return its exit code; a closed pipe ends it quietly."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit: point stdout at nothing first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_EXIT
    return code
