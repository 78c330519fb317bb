"""Liveness and readiness of a service, as `/healthz` and `/readyz` answer them.

Live: the processing loop went round within its bound (`ServiceConfig.liveness_bound_s`). The
loop beats once a step, a restore beats as it reads, and waiting for a broker that is away
beats too: an infrastructure fault is a pause, which a restart would not cure. What is not live
is a loop that stopped going round: a handler blocked on a call that never returns, a client
call wedged past its watchdog. Kubernetes restarts such a pod; its partitions go to another.

Ready: the loop runs (the group joined), no assigned partition is being restored, and the broker
answers. A pod restoring a large store is alive but not ready, so a rolling update waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping


class Health:
    """One engine's liveness and readiness. Thread-safe enough for its use: the engine's thread
    writes plain attributes, the HTTP server's threads read them."""

    def __init__(
        self,
        name: str,
        bound_s: float,
        away: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.bound_s = bound_s
        self.clock = clock
        self.away: Mapping[str, float] = away if away is not None else {}  # dependency -> since
        self.last_beat = clock()  # starting counts as going round
        self.running = False  # the group is joined and its first assignment restored
        self.restoring = ""  # what is being restored, while it is

    def beat(self) -> None:
        self.last_beat = self.clock()

    def live(self) -> tuple[bool, str]:
        quiet = self.clock() - self.last_beat
        if quiet > self.bound_s:
            return False, (
                f"{self.name}: the processing loop has not gone round for {quiet:.0f} s (bound "
                f"{self.bound_s:.0f} s): a handler or a client call is blocked"
            )
        return True, f"{self.name}: the loop went round {quiet:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        if self.restoring:
            return False, f"{self.name}: restoring {self.restoring}"
        if not self.running:
            return False, f"{self.name}: starting (joining its group)"
        if "broker" in self.away:
            return False, f"{self.name}: the broker does not answer"
        return True, f"{self.name}: ready"


def verdict(healths: Iterable[Health], which: str) -> tuple[bool, str]:
    """Several engines' answers as one (a saga tracker runs three): every one must be."""
    answers = [h.live() if which == "live" else h.ready() for h in healths]
    ok = all(good for good, _ in answers)
    said = [text for good, text in answers if not good] if not ok else [t for _, t in answers]
    return ok, "\n".join(said)
