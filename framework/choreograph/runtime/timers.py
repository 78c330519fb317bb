"""Durable timers: per key deadlines kept in a changelog-backed store of the partition.

Key layout: 8-byte big-endian deadline (ms) + entity key + 0x00 + timer name, so a byte-ordered
scan yields timers in deadline order and stops at the first one not yet due. An index store maps
(entity key, name) to the deadline, so scheduling again replaces and cancelling finds the entry.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from choreograph.state.store import Store, decode_value, encode_value

TIMERS_STORE = "__timers"
TIMER_INDEX_STORE = "__timer_index"
_DEADLINE = struct.Struct(">Q")
_UNKNOWN = -1  # no deadline is negative


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def deadline_ms(when: datetime) -> int:
    """`when` in epoch milliseconds, rounded up: a timer never fires before its deadline (a
    due check at a whole millisecond would otherwise fire up to 1 ms early). Integer arithmetic:
    a float product can land a hair above a whole millisecond."""
    micros = (when - _EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


@dataclass(frozen=True)
class Timer:
    deadline_ms: int
    key: str
    name: str
    payload: dict[str, Any]


def _timer_key(deadline_ms: int, key: str, name: str) -> bytes:
    return _DEADLINE.pack(deadline_ms) + key.encode() + b"\x00" + name.encode()


def _index_key(key: str, name: str) -> bytes:
    return key.encode() + b"\x00" + name.encode()


class Timers:
    def __init__(self, timers: Store, index: Store) -> None:
        self.timers = timers
        self.index = index
        # No pending timer has a deadline below the floor, so a scan for due timers starts there
        # instead of at the beginning, where fired and cancelled timers leave RocksDB tombstones
        # that every seek would otherwise step over again. Only lowered by scheduling, raised by
        # scans, and reset when writes are dropped (a dropped cancel brings a timer back).
        self._floor = 0
        # The earliest pending deadline when known (None: nothing pending), so that a partition
        # without a due timer costs no scan at all. Lowered by scheduling, learnt by scans,
        # forgotten with the floor.
        self._next: int | None = _UNKNOWN

    def reset_floor(self) -> None:
        self._floor = 0
        self._next = _UNKNOWN

    def schedule(self, key: str, name: str, deadline_ms: int, payload: dict[str, Any]) -> None:
        self._floor = min(self._floor, deadline_ms)
        if self._next != _UNKNOWN:
            self._next = deadline_ms if self._next is None else min(self._next, deadline_ms)
        self.cancel(key, name)
        self.timers.put_raw(_timer_key(deadline_ms, key, name), encode_value(payload))
        self.index.put_raw(_index_key(key, name), _DEADLINE.pack(deadline_ms))

    def cancel(self, key: str, name: str) -> bool:
        existing = self.index.get_raw(_index_key(key, name))
        if existing is None:
            return False
        (deadline,) = _DEADLINE.unpack(existing)
        self.timers.put_raw(_timer_key(deadline, key, name), None)
        self.index.put_raw(_index_key(key, name), None)
        return True

    def pending(self, key: str, name: str) -> Timer | None:
        """The timer set for (`key`, `name`), if one is."""
        at = self.deadline(key, name)
        if at is None:
            return None
        raw = self.timers.get_raw(_timer_key(at, key, name))
        return None if raw is None else Timer(at, key, name, decode_value(raw))

    def deadline(self, key: str, name: str) -> int | None:
        existing = self.index.get_raw(_index_key(key, name))
        return None if existing is None else int(_DEADLINE.unpack(existing)[0])

    def due(self, now_ms: int, limit: int = 1000) -> Iterator[Timer]:
        """Timers with deadline <= now, earliest first; never one that is not yet due."""
        if self._next is None or (self._next != _UNKNOWN and self._next > now_ms):
            return  # known: nothing is due yet
        self._next = _UNKNOWN  # what is yielded is about to fire; learnt again below
        stop = _DEADLINE.pack(now_ms + 1)
        found = False
        for n, (raw_key, raw_value) in enumerate(
            self.timers.scan_raw(_DEADLINE.pack(self._floor), stop)
        ):
            if n >= limit:
                return
            (deadline,) = _DEADLINE.unpack_from(raw_key)
            if not found:
                found, self._floor = True, deadline  # nothing pending between floor and here
            key, _, name = raw_key[_DEADLINE.size :].partition(b"\x00")
            yield Timer(deadline, key.decode(), name.decode(), decode_value(raw_value))
        if not found:
            self._floor = max(self._floor, now_ms + 1)  # nothing pending up to now
            self._next = self._first_from(self._floor)

    def _first_from(self, start_ms: int) -> int | None:
        for raw_key, _ in self.timers.scan_raw(_DEADLINE.pack(start_ms)):
            return int(_DEADLINE.unpack_from(raw_key)[0])
        return None

    def next_deadline(self) -> int | None:
        for raw_key, _ in self.timers.scan_raw():
            return int(_DEADLINE.unpack_from(raw_key)[0])
        return None

    def fired(self, timer: Timer) -> None:
        self.timers.put_raw(_timer_key(timer.deadline_ms, timer.key, timer.name), None)
        if self.deadline(timer.key, timer.name) == timer.deadline_ms:
            self.index.put_raw(_index_key(timer.key, timer.name), None)
