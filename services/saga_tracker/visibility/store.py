"""The read side of the tracker: every instance, indexed in SQL, so any replica or a separate
`saga-tracker ui` answers for all of them without scanning.

SQLite (embedded, the default) or PostgreSQL (a `postgresql://` URL). Rows come from the
tracker's committed changelogs (`Indexer`); each row remembers the changelog partition and
offset it came from, and an older record never overwrites a newer one, so indexing is
idempotent: replaying a changelog from its start changes nothing. The changelog positions are
written in the same SQL transaction as the rows.

Every list is one index range read in (started_at, key) order, newest first, paged by a cursor
that names the last row seen (keyset pagination: page N costs what page 1 costs).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from choreograph.runtime.errors import ConfigurationError
from saga_tracker.codec import decode
from saga_tracker.instance import ACTIVE_STEP, ENDED, Instance, attribute_value

log = logging.getLogger("saga_tracker.visibility")
MAX_PAGE = 500
POOL_IDLE = 8  # idle connections kept for the next requests
IDLE_CHECK_S = 2.0  # a connection idle this long is checked before use


class VisibilityUnavailable(Exception):
    """The SQL store does not answer (a pause: readers get 503, the indexer retries)."""


class VisibilityMisconfigured(ConfigurationError):
    """The store cannot work as configured (a login refused, a database that does not exist, a
    driver not installed): waiting would not help, so the tracker stops and says what to change."""


class BadQuery(ValueError):
    """A list request the store cannot answer as asked; the message says what to change."""


@dataclass(frozen=True)
class ChangelogRecord:
    """One committed changelog record: `value` is the stored JSON, None for a deletion;
    `raw`, when given, is its text as stored (kept as the document, not encoded again)."""

    topic: str
    partition: int
    offset: int
    key: str
    value: Any
    raw: bytes | None = None


@dataclass(frozen=True)
class AttributeFilter:
    """One search attribute condition: equal to `equals`, or within [`at_least`, `at_most`]."""

    name: str
    equals: str | None = None
    at_least: float | None = None
    at_most: float | None = None


@dataclass(frozen=True)
class Filters:
    process: str | None = None
    version: int | None = None
    status: str | None = None
    business_key: str | None = None
    started_after: datetime | None = None  # inclusive
    started_before: datetime | None = None  # exclusive
    open_incidents: bool = False
    step: str | None = None  # the step is under way or needs attention (ACTIVE_STEP)
    paused: bool | None = None
    attributes: tuple[AttributeFilter, ...] = ()
    # The processes the reader may see (None: all); set by the API from who asks, never by the
    # query.
    processes: frozenset[str] | None = None

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Filters:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values and values[0] != "" else None  # a form's empty field

        def when(name: str) -> datetime | None:
            text = one(name)
            if text is None:
                return None
            text = text.replace(" ", "+")  # a "+01:00" offset sent unencoded reads as a space
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise BadQuery(f"{name}={text!r} is not an ISO 8601 time") from None
            if moment.tzinfo is None:
                raise BadQuery(f"{name}={text!r} needs a UTC offset, e.g. {text}Z")
            return moment

        def flag(name: str) -> bool | None:
            text = (one(name) or "").lower()
            if text not in ("", "true", "false", "1", "0", "on"):
                raise BadQuery(f"{name}={text!r}: use true or false")
            return None if text == "" else text in ("true", "1", "on")

        version = one("version")
        if version is not None and not (version.isascii() and version.isdigit()):
            raise BadQuery(f"version={version!r}: a process version is a whole number")
        return cls(
            process=one("process"),
            version=int(version) if version is not None else None,
            status=one("status"),
            business_key=one("business_key"),
            started_after=when("started_after"),
            started_before=when("started_before"),
            open_incidents=bool(flag("open_incidents")),
            step=one("step"),
            paused=flag("paused"),
            attributes=attribute_filters(query),
        )

    def query(self) -> dict[str, str]:
        """These filters as query parameters (what `from_query` reads back)."""
        found: dict[str, str] = {}
        for name in ("process", "version", "status", "business_key", "step"):
            value = getattr(self, name)
            if value is not None:
                found[name] = str(value)
        for name in ("started_after", "started_before"):
            moment = getattr(self, name)
            if moment is not None:
                found[name] = moment.isoformat()
        if self.open_incidents:
            found["open_incidents"] = "true"
        if self.paused is not None:
            found["paused"] = "true" if self.paused else "false"
        for a in self.attributes:
            if a.equals is not None:
                found[f"attr.{a.name}"] = a.equals
            for suffix, bound in ((".min", a.at_least), (".max", a.at_most)):
                if bound is not None:
                    found[f"attr.{a.name}{suffix}"] = canonical(bound)
        return found


ATTRIBUTE_NAME = re.compile(r"^attr\.([a-z][a-z0-9_]*)(\.min|\.max)?$")


def attribute_filters(query: dict[str, list[str]]) -> tuple[AttributeFilter, ...]:
    """`attr.NAME=value` (equal), `attr.NAME.min=` and `attr.NAME.max=` (a numeric range)."""
    found: dict[str, dict[str, Any]] = {}
    for key, values in query.items():
        if not key.startswith("attr.") or not values or values[0] == "":
            continue
        matched = ATTRIBUTE_NAME.match(key)
        if matched is None:
            raise BadQuery(
                f"{key}: name a search attribute as attr.NAME, attr.NAME.min or attr.NAME.max"
            )
        name, bound = matched.group(1), matched.group(2)
        if bound is None:
            found.setdefault(name, {})["equals"] = values[0]
            continue
        try:
            number = float(values[0])
        except ValueError:
            raise BadQuery(f"{key}={values[0]!r}: a range bound is a number") from None
        found.setdefault(name, {})["at_least" if bound == ".min" else "at_most"] = number
    return tuple(AttributeFilter(name, **found[name]) for name in sorted(found))


def canonical(value: Any) -> str:
    """An attribute value as text: numbers the same however they were written (12, 12.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    return str(value)


def spellings(text: str) -> list[str]:
    """What an asked-for value may be stored as: as written, and as a number's text if it is
    one (asking for total=12.50 finds 12.5)."""
    try:
        number = float(text)
    except ValueError:
        return [text]
    if number != number or number in (float("inf"), float("-inf")):
        return [text]
    return list(dict.fromkeys([text, canonical(number)]))


@dataclass(frozen=True)
class Page:
    summaries: list[dict[str, Any]]
    next_cursor: str | None


class InstanceReader(Protocol):
    """What the trace API reads instances through."""

    def page(self, filters: Filters, limit: int, cursor: str | None) -> Page: ...

    def find(self, correlation_id: str, process: str | None = None) -> Instance | None: ...

    def count(self, filters: Filters | None = None) -> int: ...

    def keys(self, filters: Filters, most: int) -> list[tuple[str, str]]: ...

    def totals(self, filters: Filters) -> dict[str, list[dict[str, Any]]]: ...

    def at_risk_by_step(self) -> list[dict[str, Any]]: ...


def encode_cursor(started_ms: int, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_ms, key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        started, key = raw
        if isinstance(started, int) and isinstance(key, str):
            return started, key
    except (ValueError, TypeError):
        pass
    raise BadQuery("cursor is not one this API gave out; start again without it")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def summary_of(row: Sequence[Any]) -> dict[str, Any]:
    """A listed instance (the columns of `_SUMMARY`), as the API shows it."""
    corr, process, version, business_key, status, started, ended, reason, incidents = row[:9]
    paused, held, attributes = row[10:13]
    return {
        "correlation_id": corr,
        "process": process,
        "version": version,
        "business_key": business_key,
        "status": status,
        "started_at": _iso(started),
        "ended_at": _iso(ended) if ended is not None else None,
        "failure_reason": reason,
        "open_incidents": orjson.loads(incidents),
        "paused": bool(paused),
        "held": bool(held),
        "attributes": orjson.loads(attributes) if attributes else {},
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


_SUMMARY = ", ".join(
    f"i.{c}"
    for c in (
        "correlation_id", "process", "version", "business_key", "status", "started_at",
        "ended_at", "failure_reason", "incidents", "key", "paused", "held", "attributes",
    )
)  # fmt: skip
_ENDED = ENDED
SCHEMA_VERSION = "3"  # another version found: the store is rebuilt from the changelogs


class VisibilityStore:
    """Tables are named after the tracker (`<name>_instances`, ...), so trackers of several
    names can share one database."""

    def __init__(self, url: str, tracker: str = "saga-tracker") -> None:
        self.url = url
        self.prefix = re.sub(r"[^a-z0-9_]", "_", tracker.lower())[:40]
        self._postgres = url.startswith(("postgresql://", "postgres://"))
        self._idle: list[tuple[Any, float]] = []  # pooled connections, with when last used
        self._closed = False
        self._lock = threading.Lock()
        self._schema_ready = False  # made at first use: a database away at start is a pause
        self._statements()

    # -- connections -----------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._postgres:
            try:
                import psycopg
            except ImportError:
                raise VisibilityMisconfigured(
                    "a postgresql:// visibility URL needs psycopg: "
                    "pip install 'choreograph[postgres]'"
                ) from None
            try:
                return psycopg.connect(self.url, connect_timeout=5)
            except psycopg.OperationalError as err:
                where = f"PostgreSQL at {_safe(self.url)}"
                refused = next((fix for sign, fix in _REFUSALS if sign in str(err)), None)
                if refused:
                    raise VisibilityMisconfigured(f"{where}: {refused} ({err})") from None
                raise VisibilityUnavailable(f"{where}: {err}") from err
        path = self.url.removeprefix("sqlite:///").removeprefix("sqlite://")
        if path not in (":memory:", ""):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path or ":memory:", timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the indexer
        db.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB of pages, grown as used: the indexes' inner pages of a million instances stay
        # cached, so an insert reads no page from disk (2 MiB, the default, halves indexing).
        db.execute("PRAGMA cache_size=-32768")
        return db

    def _take(self) -> Any:
        """An idle connection from the pool, or a new one. The HTTP server answers each request
        in a thread of its own, so connections are pooled, not kept per thread. One that sat
        idle is checked first: a database restart ends it without telling the client."""
        while True:
            with self._lock:
                idle = self._idle.pop() if self._idle else None
            if idle is None:
                return self._connect()
            db, since = idle
            if not self._postgres or time.monotonic() - since < IDLE_CHECK_S:
                return db
            try:
                db.execute("SELECT 1")
                db.rollback()
                return db
            except Exception:
                with suppress(Exception):
                    db.close()

    def _give_back(self, db: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_IDLE:
                self._idle.append((db, time.monotonic()))
                return
        with suppress(Exception):
            db.close()

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[_Cursor]:
        """A cursor in a transaction (`write`), or for one read statement: a PostgreSQL read
        then runs in autocommit, without the round trips of BEGIN and COMMIT."""
        try:
            db = self._take()
        except Exception as err:
            if _is_outage(err):
                raise VisibilityUnavailable(f"{_safe(self.url)}: {err}") from err
            raise
        try:
            cursor = _Cursor(db.cursor(), self._postgres)
            if not self._schema_ready:
                if self._postgres:  # replicas starting together: one creates, the others wait
                    db.autocommit = False
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [self.prefix])
                self._migrate(cursor)
                db.commit()
                self._schema_ready = True
            if self._postgres and db.autocommit == write:
                db.autocommit = not write
            yield cursor
            if write or not self._postgres:
                db.commit()
        except BaseException as err:
            outage = isinstance(err, Exception) and _is_outage(err)
            try:
                db.rollback()
            except Exception:
                outage = True
            if outage:
                with suppress(Exception):
                    db.close()
                if isinstance(err, Exception):
                    raise VisibilityUnavailable(f"{_safe(self.url)}: {err}") from err
                raise
            self._give_back(db)
            raise
        self._give_back(db)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db, _ in idle:
            with suppress(Exception):
                db.close()

    # -- schema ----------------------------------------------------------------------------------

    TABLES = ("instances", "steps", "attributes", "documents", "positions")

    def _migrate(self, cursor: _Cursor) -> None:
        """Make the tables; a store of another schema version is dropped first. It is a copy of
        the changelogs, so its positions go with it and the indexers read them again."""
        p = self.prefix
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {p}_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        cursor.execute(f"SELECT value FROM {p}_meta WHERE name = 'schema'")
        found = cursor.fetchone()
        if found is None or found[0] != SCHEMA_VERSION:
            if found is not None or self._has_table(cursor, f"{p}_instances"):
                log.warning(
                    "visibility store %s: schema %s, this tracker writes %s: rebuilt from the "
                    "changelogs", p, found[0] if found else "1", SCHEMA_VERSION
                )  # fmt: skip
            for table in self.TABLES:
                cursor.execute(f"DROP TABLE IF EXISTS {p}_{table}")
            cursor.execute(f"DELETE FROM {p}_meta WHERE name = 'schema'")
            cursor.execute(
                f"INSERT INTO {p}_meta (name, value) VALUES ('schema', ?)", [SCHEMA_VERSION]
            )
        for statement in self._schema():
            cursor.execute(statement)

    def _has_table(self, cursor: _Cursor, name: str) -> bool:
        if self._postgres:
            cursor.execute("SELECT to_regclass(?) IS NOT NULL", [name])
        else:
            cursor.execute("SELECT count(*) > 0 FROM sqlite_master WHERE name = ?", [name])
        row = cursor.fetchone()
        return bool(row and row[0])

    def _schema(self) -> list[str]:
        p, big = self.prefix, "BIGINT"
        real = "DOUBLE PRECISION" if self._postgres else "REAL"
        # SQLite keeps a table with a composite key as a table and an index; without a rowid,
        # the key is the table: one tree fewer to write per row.
        keyed = "" if self._postgres else " WITHOUT ROWID"
        return [
            f"""CREATE TABLE IF NOT EXISTS {p}_instances (
                key TEXT PRIMARY KEY, correlation_id TEXT NOT NULL, process TEXT NOT NULL,
                version INTEGER NOT NULL, business_key TEXT NOT NULL, status TEXT NOT NULL,
                started_at {big} NOT NULL, ended_at {big}, failure_reason TEXT,
                open_incidents INTEGER NOT NULL, incidents TEXT NOT NULL, value {real},
                paused INTEGER NOT NULL, held INTEGER NOT NULL, attributes TEXT NOT NULL,
                doc TEXT NOT NULL, src_partition INTEGER NOT NULL, src_offset {big} NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {p}_by_started ON {p}_instances (started_at, key)",
            f"""CREATE INDEX IF NOT EXISTS {p}_by_status
                ON {p}_instances (status, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_by_process
                ON {p}_instances (process, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_by_process_status
                ON {p}_instances (process, status, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_by_business_key
                ON {p}_instances (business_key, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_by_correlation
                ON {p}_instances (correlation_id, started_at)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_with_incidents
                ON {p}_instances (started_at, key) WHERE open_incidents > 0""",
            f"""CREATE INDEX IF NOT EXISTS {p}_paused
                ON {p}_instances (started_at, key) WHERE paused > 0""",
            f"""CREATE INDEX IF NOT EXISTS {p}_ended
                ON {p}_instances (ended_at) WHERE ended_at IS NOT NULL""",
            # A row per step under way or needing attention: "instances at step X" is an index
            # range, and counts per step read these rows alone.
            f"""CREATE TABLE IF NOT EXISTS {p}_steps (
                key TEXT NOT NULL, step TEXT NOT NULL, step_status TEXT NOT NULL,
                process TEXT NOT NULL, status TEXT NOT NULL, started_at {big} NOT NULL,
                value {real}, PRIMARY KEY (key, step)){keyed}""",
            f"""CREATE INDEX IF NOT EXISTS {p}_steps_by_step
                ON {p}_steps (step, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_steps_by_process
                ON {p}_steps (process, step, step_status, status)""",
            # A row per search attribute of an instance: an equality is an index range in
            # start order; a number also has its value for ranges and sums.
            f"""CREATE TABLE IF NOT EXISTS {p}_attributes (
                key TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, num {real},
                started_at {big} NOT NULL, PRIMARY KEY (key, name)){keyed}""",
            f"""CREATE INDEX IF NOT EXISTS {p}_attributes_by_text
                ON {p}_attributes (name, text, started_at, key)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_attributes_by_num
                ON {p}_attributes (name, num, started_at, key) WHERE num IS NOT NULL""",
            f"""CREATE TABLE IF NOT EXISTS {p}_documents (
                kind TEXT NOT NULL, key TEXT NOT NULL, correlation_id TEXT, status TEXT,
                doc TEXT NOT NULL, src_partition INTEGER NOT NULL, src_offset {big} NOT NULL,
                PRIMARY KEY (kind, key))""",
            f"""CREATE INDEX IF NOT EXISTS {p}_documents_by_status
                ON {p}_documents (kind, status)""",
            f"""CREATE INDEX IF NOT EXISTS {p}_documents_by_correlation
                ON {p}_documents (kind, correlation_id)""",
            f"""CREATE TABLE IF NOT EXISTS {p}_positions (
                topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset {big} NOT NULL,
                PRIMARY KEY (topic, part))""",
        ]

    # -- writing (the indexer) -------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        """Where each changelog partition is indexed up to (the next offset to read)."""
        with self._transaction() as db:
            db.execute(f"SELECT topic, part, next_offset FROM {self.prefix}_positions")
            return {(t, p): o for t, p, o in db.fetchall()}

    def apply(self, kinds: dict[str, str], records: Iterable[ChangelogRecord]) -> int:
        """Index `records` (`kinds`: changelog topic -> "instances", "decisions" or
        "approvals") and move the positions past them, in one transaction. Returns how many
        rows changed; a record older than the row it would replace changes nothing.

        Only the last record of a key in the batch counts (a changelog is latest-wins), and
        each kind of statement goes to the database as one batch."""
        ends: dict[tuple[str, int], int] = {}
        latest: dict[tuple[str, str], ChangelogRecord] = {}
        for r in records:
            ends[(r.topic, r.partition)] = r.offset + 1
            latest[(kinds[r.topic], r.key)] = r
        upserts: dict[str, list[tuple[Any, ...]]] = {"instances": [], "documents": []}
        deletes: dict[str, list[tuple[Any, ...]]] = {"instances": [], "documents": []}
        # An instance's step and attribute rows follow its row: replaced where its row took
        # this record (an older record changes nothing), dropped where its row is gone.
        followers: dict[str, tuple[int, int, list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
        gone: list[str] = []
        for (kind, key), r in latest.items():
            table = "instances" if kind == "instances" else "documents"
            if r.value is None:
                head = (key,) if table == "instances" else (kind, key)
                deletes[table].append((*head, r.partition, r.offset))
                if table == "instances":
                    gone.append(key)
            elif table == "instances":
                row = _instance_row(r)
                upserts[table].append(row)
                followers[key] = (r.partition, r.offset, _step_rows(r, row),
                                  _attribute_rows(r, row))  # fmt: skip
            else:
                upserts[table].append(_document_row(kind, r))
        changed = 0
        p = self.prefix
        with self._transaction(write=True) as db:
            for table, rows in upserts.items():
                if rows:
                    db.executemany(self._upsert[table], rows)
                    changed += db.rowcount
            for table, rows in deletes.items():
                if rows:
                    db.executemany(self._delete[table], rows)
                    changed += db.rowcount
            # Which rows took their record: read back in this transaction, which holds them
            # (another indexer writing the same rows waits for it to end).
            took = [
                k
                for k, part, off in _rows_of(db, p, "key, src_partition, src_offset", followers)
                if followers[k][:2] == (part, off)
            ]
            left = {row[0] for row in _rows_of(db, p, "key", gone)}
            gone_now = [k for k in gone if k not in left]
            replaced = took + gone_now
            for table in ("steps", "attributes"):
                for start in range(0, len(replaced), 500):
                    chunk = replaced[start : start + 500]
                    db.execute(
                        f"DELETE FROM {p}_{table} WHERE key IN ({', '.join('?' for _ in chunk)})",
                        chunk,
                    )
            steps = [row for k in took for row in followers[k][2]]
            attributes = [row for k in took for row in followers[k][3]]
            if steps:
                db.executemany(
                    f"""INSERT INTO {p}_steps (key, step, step_status, process, status,
                            started_at, value) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    steps,
                )
            if attributes:
                db.executemany(
                    f"""INSERT INTO {p}_attributes (key, name, text, num, started_at)
                        VALUES (?, ?, ?, ?, ?)""",
                    attributes,
                )
            if ends:
                db.executemany(
                    f"""INSERT INTO {p}_positions (topic, part, next_offset) VALUES (?, ?, ?)
                        ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset
                        WHERE excluded.next_offset > {p}_positions.next_offset""",
                    [(topic, part, offset) for (topic, part), offset in ends.items()],
                )
        return changed

    def _statements(self) -> None:
        p = self.prefix
        newer = (
            "{t}.src_partition <> excluded.src_partition OR {t}.src_offset < excluded.src_offset"
        )
        self._upsert = {
            "instances": f"""INSERT INTO {p}_instances (key, correlation_id, process, version,
                    business_key, status, started_at, ended_at, failure_reason, open_incidents,
                    incidents, value, paused, held, attributes, doc, src_partition, src_offset)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET
                    status = excluded.status, version = excluded.version,
                    business_key = excluded.business_key, started_at = excluded.started_at,
                    ended_at = excluded.ended_at, failure_reason = excluded.failure_reason,
                    open_incidents = excluded.open_incidents, incidents = excluded.incidents,
                    value = excluded.value, paused = excluded.paused, held = excluded.held,
                    attributes = excluded.attributes, doc = excluded.doc,
                    src_partition = excluded.src_partition, src_offset = excluded.src_offset
                WHERE {newer.format(t=f"{p}_instances")}""",
            "documents": f"""INSERT INTO {p}_documents (kind, key, correlation_id, status, doc,
                    src_partition, src_offset) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (kind, key) DO UPDATE SET
                    correlation_id = excluded.correlation_id, status = excluded.status,
                    doc = excluded.doc, src_partition = excluded.src_partition,
                    src_offset = excluded.src_offset
                WHERE {newer.format(t=f"{p}_documents")}""",
        }
        self._delete = {
            "instances": f"""DELETE FROM {p}_instances
                WHERE key = ? AND (src_partition <> ? OR src_offset < ?)""",
            "documents": f"""DELETE FROM {p}_documents
                WHERE kind = ? AND key = ? AND (src_partition <> ? OR src_offset < ?)""",
        }

    # -- reading (the trace API) -----------------------------------------------------------------

    def page(self, filters: Filters, limit: int = 50, cursor: str | None = None) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise BadQuery(f"limit={limit}: ask for 1 to {MAX_PAGE} instances per page")
        sql, args = self.list_query(filters, limit + 1, cursor)
        with self._transaction() as db:
            db.execute(sql, args)
            rows = db.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return Page(
            [summary_of(r) for r in rows],
            encode_cursor(last[5], last[9]) if more and last is not None else None,
        )

    def list_query(self, filters: Filters, limit: int, cursor: str | None) -> tuple[str, list[Any]]:
        """The SQL of one page: walked newest first along one index (of the step, the first
        attribute equality, or the instances), each other filter checked on the way."""
        source, walked, where, args = self._filtered(filters)
        if cursor is not None:
            started, key = decode_cursor(cursor)
            where.append(f"({walked}.started_at, {walked}.key) < (?, ?)")  # one index range
            args += [started, key]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT {_SUMMARY} FROM {source} {clause} "
            f"ORDER BY {walked}.started_at DESC, {walked}.key DESC LIMIT {int(limit)}"
        )
        return sql, args

    def _filtered(self, filters: Filters) -> tuple[str, str, list[str], list[Any]]:
        """FROM, the alias of the table walked (`d`, or `i` when it is the instances), and the
        WHERE conditions and arguments of `filters` (`i` is the instance)."""
        p = self.prefix
        where: list[str] = []
        args: list[Any] = []
        equalities = [a for a in filters.attributes if a.equals is not None]
        driver: AttributeFilter | None = None
        walked = "d"
        if filters.step is not None:
            source = f"{p}_steps d JOIN {p}_instances i ON i.key = d.key"
            where.append("d.step = ?")
            args.append(filters.step)
        elif equalities:
            driver = equalities[0]
            source = f"{p}_attributes d JOIN {p}_instances i ON i.key = d.key"
            where.append("d.name = ?")
            args.append(driver.name)
            where.append(_one_of("d.text", spellings(str(driver.equals)), args))
        else:
            source, walked = f"{p}_instances i", "i"
        for column in ("process", "version", "status", "business_key"):
            value = getattr(filters, column)
            if value is not None:
                where.append(f"i.{column} = ?")
                args.append(value)
        if filters.processes is not None:
            where.append(_one_of("i.process", sorted(filters.processes), args))
        if filters.started_after is not None:
            where.append(f"{walked}.started_at >= ?")
            args.append(millis(filters.started_after))
        if filters.started_before is not None:
            where.append(f"{walked}.started_at < ?")
            args.append(millis(filters.started_before))
        if filters.open_incidents:
            where.append("i.open_incidents > 0")
        if filters.paused is not None:
            where.append("i.paused > 0" if filters.paused else "i.paused = 0")
        for attribute in filters.attributes:
            if attribute is driver:
                continue
            test = ["a.key = i.key", "a.name = ?"]
            args.append(attribute.name)
            if attribute.equals is not None:
                test.append(_one_of("a.text", spellings(str(attribute.equals)), args))
            if attribute.at_least is not None:
                test.append("a.num >= ?")
                args.append(attribute.at_least)
            if attribute.at_most is not None:
                test.append("a.num <= ?")
                args.append(attribute.at_most)
            where.append(f"EXISTS (SELECT 1 FROM {p}_attributes a WHERE {' AND '.join(test)})")
        return source, walked, where, args

    def count(self, filters: Filters | None = None) -> int:
        """How many instances `filters` choose (all without)."""
        source, _, where, args = self._filtered(filters or Filters())
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._transaction() as db:
            db.execute(f"SELECT count(*) FROM {source} {clause}", args)
            row = db.fetchone()
        return int(row[0]) if row else 0

    def keys(self, filters: Filters, most: int) -> list[tuple[str, str]]:
        """(correlation id, process) of every instance `filters` choose, newest first, up to
        `most` (a batch's targets), read a page at a time."""
        found: list[tuple[str, str]] = []
        cursor: str | None = None
        while len(found) < most:
            page = min(5000, most - len(found))
            sql, args = self.list_query(filters, page, cursor)
            with self._transaction() as db:
                db.execute(sql, args)
                rows = db.fetchall()
            found += [(row[0], row[1]) for row in rows]
            if len(rows) < page:
                break
            cursor = encode_cursor(rows[-1][5], rows[-1][9])
        return found

    def totals(self, filters: Filters) -> dict[str, list[dict[str, Any]]]:
        """How many instances `filters` choose, and the sum of their value, per process and per
        status; and per step under way or needing attention, with the step's status."""
        source, _, where, args = self._filtered(filters)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        p = self.prefix
        with self._transaction() as db:
            db.execute(
                f"SELECT i.process, i.status, count(*), sum(i.value) FROM {source} {clause} "
                "GROUP BY i.process, i.status ORDER BY i.process, i.status",
                args,
            )
            by_process_status = db.fetchall()
            if filters.step is None:  # the steps table joined in
                source = f"{source} JOIN {p}_steps s ON s.key = i.key"
                step = "s"
            else:
                step = "d"
            db.execute(
                f"SELECT {step}.step, {step}.step_status, count(*), sum(i.value) "
                f"FROM {source} {clause} GROUP BY {step}.step, {step}.step_status "
                f"ORDER BY {step}.step, {step}.step_status",
                args,
            )
            by_step = [
                {"step": st, "step_status": ss, "count": int(n), "value": float(v or 0)}
                for st, ss, n, v in db.fetchall()
            ]
        return grouped(by_process_status, by_step)

    def at_risk_by_step(self) -> list[dict[str, Any]]:
        """Open instances per process and step under way or needing attention, with their
        value: the console's front page. Reads the step rows alone."""
        ended = sorted(_ENDED)
        marks = ", ".join("?" for _ in ended)
        with self._transaction() as db:
            db.execute(
                f"SELECT process, step, step_status, count(*), sum(value) FROM {self.prefix}_steps "
                f"WHERE status NOT IN ({marks}) GROUP BY process, step, step_status "
                "ORDER BY process, step, step_status",
                ended,
            )
            return [
                {"process": pr, "step": st, "step_status": ss, "count": int(n),
                 "value": float(v or 0)}
                for pr, st, ss, n, v in db.fetchall()
            ]  # fmt: skip

    def ended_before(self, moment: datetime, most: int) -> list[str]:
        """Keys of instances that ended before `moment` (the oldest first)."""
        with self._transaction() as db:
            db.execute(
                f"SELECT key FROM {self.prefix}_instances WHERE ended_at < ? "
                f"ORDER BY ended_at LIMIT {int(most)}",
                [millis(moment)],
            )
            return [row[0] for row in db.fetchall()]

    def explain(self, filters: Filters, cursor: str | None = None) -> str:
        """The database's plan for one page (to check that no request scans every row)."""
        sql, args = self.list_query(filters, 51, cursor)
        with self._transaction() as db:
            db.execute(("EXPLAIN " if self._postgres else "EXPLAIN QUERY PLAN ") + sql, args)
            return "\n".join(" ".join(str(c) for c in row) for row in db.fetchall())

    def find(self, correlation_id: str, process: str | None = None) -> Instance | None:
        sql = f"SELECT doc FROM {self.prefix}_instances WHERE correlation_id = ?"
        args: list[Any] = [correlation_id]
        if process is not None:
            sql += " AND process = ?"
            args.append(process)
        with self._transaction() as db:
            db.execute(sql + " ORDER BY started_at DESC LIMIT 1", args)
            row = db.fetchone()
        return decode(orjson.loads(row[0])) if row else None

    def decisions(self, correlation_id: str) -> list[dict[str, Any]]:
        found = self._documents("decisions", "key = ?", [correlation_id])
        return list(found[0]) if found else []

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        where, args = ("status = ?", [status]) if status else ("1 = 1", [])
        found = self._documents("approvals", where, args)
        return sorted(found, key=lambda a: str(a.get("requested_at", "")))

    def batches(self) -> list[dict[str, Any]]:
        """Every batch operation, as the batch runner keeps it."""
        return [b for b in self._documents("batches", "1 = 1", []) if isinstance(b, dict)]

    def approvals_of(self, correlation_id: str) -> list[dict[str, Any]]:
        found = self._documents("approvals", "correlation_id = ?", [correlation_id])
        return sorted(found, key=lambda a: str(a.get("requested_at", "")))

    def _documents(self, kind: str, where: str, args: list[Any]) -> list[Any]:
        sql = f"SELECT doc FROM {self.prefix}_documents WHERE kind = ? AND {where}"
        with self._transaction() as db:
            db.execute(sql, [kind, *args])
            return [orjson.loads(row[0]) for row in db.fetchall()]

    def drop(self) -> None:
        """Remove this tracker's tables (benchmarks and tests on a shared database)."""
        with self._transaction(write=True) as db:
            for table in (*self.TABLES, "meta"):
                db.execute(f"DROP TABLE IF EXISTS {self.prefix}_{table}")
        self._schema_ready = False


def grouped(
    by_process_status: Iterable[Sequence[Any]], by_step: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Totals as the API shows them, from (process, status, count, value sum) rows."""
    processes: dict[str, list[float]] = {}
    statuses: dict[str, list[float]] = {}
    for process, status, n, value in by_process_status:
        for found, name in ((processes, process), (statuses, status)):
            row = found.setdefault(name, [0, 0.0])
            row[0] += int(n)
            row[1] += float(value or 0)
    return {
        "by_process": [{"process": k, "count": int(n), "value": v}
                       for k, (n, v) in sorted(processes.items())],
        "by_status": [{"status": k, "count": int(n), "value": v}
                      for k, (n, v) in sorted(statuses.items())],
        "by_step": by_step,
    }  # fmt: skip


def _rows_of(db: _Cursor, prefix: str, columns: str, keys: Iterable[str]) -> list[Any]:
    """`columns` of the instance rows of `keys`, read 500 keys a statement."""
    listed, found = list(keys), []
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        db.execute(f"SELECT {columns} FROM {prefix}_instances WHERE key IN ({marks})", chunk)
        found += db.fetchall()
    return found


def _one_of(column: str, values: list[str], args: list[Any]) -> str:
    """`column = ?` for one value, `column IN (...)` for several (an empty list: nothing)."""
    args += values
    if len(values) == 1:
        return f"{column} = ?"
    return f"{column} IN ({', '.join('?' for _ in values)})" if values else "1 = 0"


def _instance_row(r: ChangelogRecord) -> tuple[Any, ...]:
    v = r.value
    incidents = sorted(v.get("open_incidents") or {})
    ended = v.get("ended_at")
    return (
        r.key,
        v["correlation_id"],
        v["process"],
        v["version"],
        v["business_key"],
        v["status"],
        millis(datetime.fromisoformat(v["started_at"])),
        millis(datetime.fromisoformat(ended)) if ended else None,
        v.get("failure_reason"),
        len(incidents),
        json.dumps(incidents),
        v.get("value"),
        1 if v.get("paused_at") else 0,
        1 if v.get("held") else 0,
        json.dumps(v.get("attributes") or {}, separators=(",", ":")),
        r.raw.decode() if r.raw is not None else json.dumps(v, separators=(",", ":")),
        r.partition,
        r.offset,
    )


def _step_rows(r: ChangelogRecord, row: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """(key, step, step status, process, instance status, started at, value) per active step."""
    key, _, process, _, _, status, started = row[:7]
    value = row[11]
    return [
        (key, name, step["status"], process, status, started, value)
        for name, step in (r.value.get("steps") or {}).items()
        if step.get("status") in ACTIVE_STEP
    ]


def _attribute_rows(r: ChangelogRecord, row: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """(key, name, text, number, started at) per recorded search attribute."""
    rows = []
    for name, raw in (r.value.get("attributes") or {}).items():
        if raw is None:
            continue
        value = attribute_value(raw)
        number = float(value) if isinstance(value, float) else None
        rows.append((row[0], name, canonical(value), number, row[6]))
    return rows


def _document_row(kind: str, r: ChangelogRecord) -> tuple[Any, ...]:
    v = r.value
    # Decisions are filed by correlation id; an approval names its instance.
    correlation = r.key if kind == "decisions" else v.get("correlation_id")
    status = v.get("status") if isinstance(v, dict) else None
    doc = r.raw.decode() if r.raw is not None else json.dumps(v, separators=(",", ":"))
    return (kind, r.key, correlation, status, doc, r.partition, r.offset)


class _Cursor:
    """SQLite's and psycopg's cursors behind one placeholder style (`?`)."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor = cursor
        self._postgres = postgres

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql.replace("?", "%s") if self._postgres else sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql.replace("?", "%s") if self._postgres else sql, list(rows))

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return max(int(self._cursor.rowcount), 0)


# What PostgreSQL says when the URL itself is wrong, and what to change.
_REFUSALS = (
    ("password authentication failed", "the login was refused; check the user and the password "
     "(in the URL or PGPASSWORD)"),
    ("no password supplied", "no password: put it in the URL or in PGPASSWORD"),
    ("does not exist", "the database or the user does not exist; check the URL's last part and "
     "its user, or create them"),
)  # fmt: skip


def _is_outage(err: Exception) -> bool:
    if isinstance(err, VisibilityUnavailable):
        return True
    if isinstance(err, sqlite3.OperationalError):
        return "locked" in str(err) or "unable to open" in str(err)
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError))


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
