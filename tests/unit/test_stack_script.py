"""deploy/local/stack.sh says clearly what is missing before it tries anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "stack.sh"
TOOLS = (
    "bash",
    "dirname",
    "awk",
    "cat",
    "mkdir",
    "seq",
    "sleep",
    "rm",
    "mv",
    "find",
    "head",
    "tail",
)


def path_with(tmp_path: Path, **fakes: str) -> str:
    """A PATH holding the basic tools plus the given fake commands, and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    for name, body in fakes.items():
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    return str(bin_dir)


def run_up(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": path,
        "CHOREOGRAPH_CACHE": str(tmp_path / "cache"),
        "CHOREOGRAPH_STATE": str(tmp_path / "state"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=60
    )


JAVA_11 = """echo 'openjdk version "11.0.2" 2019-01-15' >&2"""
JAVA_17 = """echo 'openjdk version "17.0.15" 2025-04-15' >&2"""


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    done = run_up(tmp_path, path_with(tmp_path, mvn="exit 0", curl="exit 0"))
    assert done.returncode != 0
    assert "Java 17 or newer is required (not found on PATH)" in done.stderr


def test_old_java_is_a_clear_error(tmp_path: Path) -> None:
    done = run_up(tmp_path, path_with(tmp_path, java=JAVA_11, mvn="exit 0", curl="exit 0"))
    assert done.returncode != 0
    assert "Java 17 or newer is required for Kafka, found '11'" in done.stderr


def test_missing_maven_is_a_clear_error(tmp_path: Path) -> None:
    done = run_up(tmp_path, path_with(tmp_path, java=JAVA_17, curl="exit 0"))
    assert done.returncode != 0
    assert "Apache Maven is required" in done.stderr


@pytest.mark.parametrize("command", ["", "restart"])
def test_unknown_command_prints_usage(command: str) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "usage:" in done.stderr


def test_pausing_a_server_that_does_not_run_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "pause", "kafka"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CHOREOGRAPH_STATE": str(tmp_path)},
    )
    assert done.returncode == 1 and "kafka is not running" in done.stderr
