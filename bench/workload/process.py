"""The tally service as an OS process of its own: for reliability tests and benchmarks that
crash, freeze, restart or time it from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    def __init__(
        self,
        prefix: str,
        instance: str,
        state: Path,
        servers: tuple[str, str],
        *,
        protocol: str = "classic",
        log_level: str = "INFO",
    ) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.log = state / f"{instance}.log"
        env = {
            **os.environ,
            "CHOREOGRAPH_BOOTSTRAP": servers[0],
            "CHOREOGRAPH_REGISTRY_URL": servers[1],
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.workload.service",
                "--prefix",
                prefix,
                "--instance",
                instance,
                "--state-dir",
                str(state),
                "--group-protocol",
                protocol,
                "--log-level",
                log_level,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")
