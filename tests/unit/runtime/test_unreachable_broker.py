"""A service pointed at an address where no broker listens says so in one line and exits 2,
within about the start-up bound: no pages of client errors, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ports import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_an_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CHOREOGRAPH_BOOTSTRAP": address, "CHOREOGRAPH_STATE_DIR": str(tmp_path)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "choreograph_examples.payments"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, lines
    assert took < 20, took
    assert len(lines) == 1, lines
    assert address in lines[0] and "CHOREOGRAPH_BOOTSTRAP" in lines[0]
