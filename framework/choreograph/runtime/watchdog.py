"""Deadlines for blocking client calls.

librdkafka's transactional calls take a timeout, but some of them block far past it (for example
`send_offsets_to_transaction` against a stale coordinator after a broker restart), and a call
blocked inside the C library also blocks signal handling. The watchdog runs such a call on a
daemon thread and stops waiting at its bound: the caller gets `Stalled`, abandons the client the
call was made on, and builds a fresh one. The abandoned call finishes (or not) on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

GRACE_S = 5.0  # beyond a call's own timeout, before it counts as stalled


class Stalled(Exception):
    """A client call did not return within its bound; the client must not be used again."""


class Watchdog:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stalled_calls = 0

    def call(self, what: str, bound: float, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` or its exception, if it returns within `bound` seconds; else `Stalled`."""
        done = threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            # An outcome is recorded before `done`, whatever happens in between.
            result: tuple[bool, Any] = (False, RuntimeError(f"{what} ended without an outcome"))
            try:
                result = (True, fn(*args))
            except BaseException as error:  # handed to the caller below
                result = (False, error)
            finally:
                outcome.append(result)
                done.set()

        threading.Thread(target=run, name=f"{self.name}:{what}", daemon=True).start()
        if not done.wait(bound):
            self.stalled_calls += 1
            raise Stalled(f"{what} did not return within {bound:.1f} s")
        ok, value = outcome[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value
