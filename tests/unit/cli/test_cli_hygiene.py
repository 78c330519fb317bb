"""Both command lines as a user meets them: every option explained, every result printable as
JSON for scripts, a version, completion, and a quiet end on a closed pipe."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from choreograph.cli.main import build_parser as choreograph_parser
from saga_tracker.__main__ import build_parser as tracker_parser

# Commands that print no result to parse: they start a server or a service, or write files.
NO_RESULT = {
    "saga-tracker run",
    "saga-tracker ui",
    "choreograph new service",
    "choreograph init",
    "choreograph dev up",
    "choreograph dev down",
}


def leaves(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaves(child, f"{path} {name}")


ALL = [
    *leaves(choreograph_parser(), "choreograph"),
    *leaves(tracker_parser(), "saga-tracker"),
]


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[p for p, _ in ALL])
def test_every_option_has_help(path: str, parser: argparse.ArgumentParser) -> None:
    missing = [
        a.option_strings[0] if a.option_strings else a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert missing == [], f"{path}: options without help: {missing}"


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[p for p, _ in ALL])
def test_every_leaf_that_prints_results_speaks_json(
    path: str, parser: argparse.ArgumentParser
) -> None:
    if path in NO_RESULT:
        return
    formats = [a for a in parser._actions if "--format" in a.option_strings]
    assert formats and "json" in (formats[0].choices or ()), f"{path}: no --format json"


@pytest.mark.parametrize("command", ["choreograph", "saga-tracker"])
def test_version_and_completion(command: str) -> None:
    tool = f"{sys.prefix}/bin/{command}"
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(f"{command} ")
    completion = subprocess.run(
        [tool, "--print-completion", "bash"], capture_output=True, text=True, check=True
    )
    assert f"-F _shtab_{command.replace('-', '_')} {command}" in completion.stdout


def test_a_closed_pipe_is_no_traceback() -> None:
    done = subprocess.run(
        f"{sys.prefix}/bin/choreograph settings --format json | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "[\n"
    assert done.stderr == ""
