"""Failed attempts at the trace and action API, per client, in fixed windows.

Someone guessing tokens, or a script sending broken requests in a loop, must neither fill the
audit topic nor keep the API busy. Within a window, a client's first failed attempt is audited at
once with its detail; later anonymous ones are counted and audited as one entry when the window
closes. Failures of a known token holder are evidence about that person and are audited one by
one, but they count towards the limit too. Past `limit` failures in a window the client is
refused (429) until the window ends, before its request is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Window:
    opened: float
    failures: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    refused: int = 0


@dataclass(frozen=True)
class Closed:
    """A window that held more failures than the one audited at once."""

    client: str
    seconds: float
    unaudited: dict[str, int]  # outcome -> count, after the first
    refused: int  # requests answered 429 without being read


class FailedAttempts:
    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._closed: list[Closed] = []
        self._lock = threading.Lock()

    def _window(self, client: str, now: float) -> _Window:
        window = self._windows.get(client)
        if window is not None and now - window.opened >= self.window_s:
            self._close(client, window)
            window = None
        if window is None:
            window = self._windows[client] = _Window(now)
        return window

    def _close(self, client: str, window: _Window) -> None:
        del self._windows[client]
        extra = dict(window.outcomes)
        if extra or window.refused:
            self._closed.append(Closed(client, self.window_s, extra, window.refused))

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now (a refusal is counted)."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(client)
            if window is None or window.failures < self.limit:
                return 0.0
            left = self.window_s - (now - window.opened)
            if left <= 0:
                self._close(client, window)
                return 0.0
            window.refused += 1
            return left

    def failed(self, client: str, outcome: str, *, anonymous: bool = True) -> bool:
        """Count a failed attempt; True when it should be audited now: the window's first, or
        any of a known token holder. The others are left for the window's one entry."""
        now = self.clock()
        with self._lock:
            window = self._window(client, now)
            window.failures += 1
            if window.failures == 1 or not anonymous:
                return True
            window.outcomes[outcome] = window.outcomes.get(outcome, 0) + 1
            return False

    def closed(self, *, all_windows: bool = False) -> list[Closed]:
        """Windows that have ended (or all, when stopping) with failures not yet audited,
        each returned once."""
        now = self.clock()
        with self._lock:
            for client, window in list(self._windows.items()):
                if all_windows or now - window.opened >= self.window_s:
                    self._close(client, window)
            found, self._closed = self._closed, []
        return found
