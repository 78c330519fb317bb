"""A key-value store of one partition, with the layers exactly-once processing needs.

Reads see, in order: the writes of the message being handled, the writes of the open transaction,
then committed state: a cache of committed values (as Kafka Streams' record cache: a key read or
committed lately is not read from RocksDB again), else the backend. A failed handler drops its
message layer; an aborted transaction drops the transaction layer; a committed one is produced
to the changelog (inside the transaction) and then applied to the backend. Values are JSON, keys
strings (or raw bytes for the runtime's own stores, e.g. timers).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import takewhile
from typing import Any

import orjson

from choreograph.state.backends import Backend


class UnstorableValue(TypeError):
    """A value JSON cannot give back as it was (a set, a Decimal, a datetime, bytes...)."""


def _refuse(value: Any) -> Any:
    kind = type(value).__name__
    hint = {
        "set": "a sorted list",
        "frozenset": "a sorted list",
        "Decimal": "str(value), and Decimal(text) when reading",
        "datetime": "value.isoformat(), and datetime.fromisoformat(text) when reading",
        "date": "value.isoformat()",
        "bytes": "value.hex() or base64",
    }.get(kind, "dicts, lists, strings, numbers, booleans and None")
    raise UnstorableValue(
        f"a {kind} cannot be stored: state is JSON and would come back as something else; "
        f"store {hint}"
    )


# Datetimes and dataclasses go to `_refuse` instead of being turned into text or dicts; keys that
# are not strings are refused by orjson itself (they would come back as strings).
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_value(value: Any) -> bytes:
    """Compact JSON. A value JSON cannot round-trip is refused (UnstorableValue), never turned
    into text that would read back as something else. orjson: every changed key of every store
    is encoded once per transaction, and the standard encoder was the largest single cost of
    state-heavy services."""
    try:
        return orjson.dumps(value, default=_refuse, option=_STRICT)
    except orjson.JSONEncodeError as err:
        cause = err.__cause__
        if isinstance(cause, UnstorableValue):
            raise cause from None
        if "Dict key must be str" in str(err):
            raise UnstorableValue(
                "a dict with keys that are not strings cannot be stored: JSON would give them "
                "back as strings; use str(key) as the key"
            ) from None
        raise UnstorableValue(f"cannot be stored as JSON: {err}") from None


def decode_value(raw: bytes) -> Any:
    return orjson.loads(raw)


class CommittedView:
    """Read-only access to what a store's last commit wrote, for readers in other threads (a
    trace API, metrics): never the open transaction's writes, which may still abort."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._backend.get(key.encode())
        return default if raw is None else decode_value(raw)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        start = prefix.encode()
        stop = _prefix_end(start) if start else None
        for key, value in self._backend.scan(start):
            if stop is not None and key >= stop:
                return
            yield key.decode(), decode_value(value)


CACHED_KEYS = 50_000  # committed values a store keeps in memory; past it the cache starts over


class Store:
    def __init__(
        self,
        name: str,
        partition: int,
        backend: Backend,
        changelog: str = "",
        written: list[Store] | None = None,
    ) -> None:
        """`changelog`: the topic its writes are logged to (the service names it). `written`:
        where the store puts itself when the message in hand first writes to it, so the message
        end visits only the stores written (the partition's state keeps that list)."""
        self.name = name
        self.partition = partition
        self.backend = backend
        self.changelog = changelog
        self._txn: dict[bytes, bytes | None] = {}
        self._msg: dict[bytes, bytes | None] = {}
        self._written = written
        # Committed values by key (None: known absent): filled by reads and by commits, never
        # by the open transaction, so it never holds what an abort takes back.
        self._cache: dict[bytes, bytes | None] = {}

    # -- raw access ------------------------------------------------------------------------------

    def get_raw(self, key: bytes) -> bytes | None:
        if key in self._msg:
            return self._msg[key]
        if key in self._txn:
            return self._txn[key]
        cache = self._cache
        if key in cache:
            return cache[key]
        value = self.backend.get(key)
        if len(cache) >= CACHED_KEYS:
            cache.clear()
        cache[key] = value
        return value

    def put_raw(self, key: bytes, value: bytes | None) -> None:
        msg = self._msg
        if not msg and self._written is not None:
            self._written.append(self)
        msg[key] = value

    def scan_raw(
        self, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys in byte order from `start` (up to `stop`, exclusive), merged over all layers."""

        def inside(key: bytes) -> bool:
            return key >= start and (stop is None or key < stop)

        overlay = {**self._txn, **self._msg}
        uncommitted = sorted((k, 0, v) for k, v in overlay.items() if inside(k))
        committed = (
            (k, 1, v) for k, v in takewhile(lambda kv: inside(kv[0]), self.backend.scan(start))
        )
        last: bytes | None = None
        for key, _, value in heapq.merge(uncommitted, committed):
            if key == last:
                continue  # the newer layer came first
            last = key
            if value is not None:
                yield key, value

    def committed_view(self) -> CommittedView:
        return CommittedView(self.backend)

    # -- user-facing JSON access -----------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.get_raw(key.encode())
        return default if raw is None else decode_value(raw)

    def put(self, key: str, value: Any) -> None:
        self.put_raw(key.encode(), encode_value(value))

    def delete(self, key: str) -> None:
        self.put_raw(key.encode(), None)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        start = prefix.encode()
        stop = _prefix_end(start) if start else None
        for key, value in self.scan_raw(start, stop):
            yield key.decode(), decode_value(value)

    # -- transaction layers ----------------------------------------------------------------------

    def end_message(self, ok: bool) -> None:
        """Keep the handled message's writes in the transaction, or drop them."""
        if self._msg:
            if ok:
                self._txn.update(self._msg)
            self._msg.clear()

    def message_writes(self) -> dict[bytes, bytes | None]:
        """Writes of the message being handled, before it ends."""
        return self._msg

    def pending(self) -> dict[bytes, bytes | None]:
        """Writes of the open transaction, to produce to the changelog before committing."""
        return self._txn

    def committed(self, applied: int | None = None) -> None:
        """The transaction committed: apply its writes locally, with `applied` (the changelog
        offset just past them) in the same atomic write."""
        if self._txn or applied is not None:
            self.backend.write(self._txn, applied)
            cache = self._cache
            if len(cache) + len(self._txn) > CACHED_KEYS:
                cache.clear()
            cache.update(self._txn)
            self._txn = {}

    def aborted(self) -> None:
        self._txn.clear()
        self._msg.clear()

    def forget_cache(self) -> None:
        """The backend was written behind the store's back (a restore): read it afresh."""
        self._cache.clear()


def _prefix_end(prefix: bytes) -> bytes | None:
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
