"""`saga-tracker ui`: the trace pages and read API as a process of their own, read-only.

It answers for every instance from the visibility store. With SQLite it indexes the tracker's
changelogs itself; with a PostgreSQL the tracker replicas feed, `index=False` only reads.
Nobody can act through it (no action desk): operators act through a tracker replica.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choreograph.runtime.errors import ConfigurationError
from saga_tracker.access import Access
from saga_tracker.definitions import Definitions, DefinitionsUnreadable, ProcessFacts
from saga_tracker.signin import OidcSettings
from saga_tracker.throttle import ClientKeys, FailedAttempts
from saga_tracker.traces import TraceServer
from saga_tracker.visibility.indexer import Indexer, changelog_kinds
from saga_tracker.visibility.store import VisibilityStore, VisibilityUnavailable

log = logging.getLogger("saga_tracker.ui")


@dataclass
class UiSettings:
    visibility_url: str
    client_conf: dict[str, Any]
    tracker: str = "saga-tracker"
    index: bool = True
    instance_id: str = "ui"
    http_host: str = "127.0.0.1"
    http_port: int = 8089
    tokens: Path | None = None
    open_reads: bool = False
    trusted_proxies: list[str] = field(default_factory=list)  # see ClientKeys
    signin: OidcSettings | None = None  # people sign in to the pages (see signin)
    jaeger_url: str | None = None  # each trace page links its instance's trace there
    # The definitions: owners (for scoped reads), steps and search attributes (for the filters).
    definitions: Path | None = None
    scoped_reads: bool = False


class TrackerUi:
    def __init__(self, settings: UiSettings) -> None:
        self.settings = s = settings
        self.store = VisibilityStore(s.visibility_url, s.tracker)
        self.indexer = (
            Indexer(
                self.store,
                s.client_conf,
                changelog_kinds(s.tracker),
                name=f"{s.tracker}-visibility-{s.instance_id}",
            )
            if s.index
            else None
        )
        access = (
            Access.load(s.tokens, open_reads=s.open_reads, scoped_reads=s.scoped_reads)
            if s.tokens
            else Access({}, open_reads=s.open_reads, scoped_reads=s.scoped_reads)
        )
        facts = ProcessFacts()
        if s.definitions is not None and s.definitions.is_dir():
            facts = Definitions.load(s.definitions).facts()
        elif s.scoped_reads:
            raise DefinitionsUnreadable(
                f"--scoped-reads needs the process definitions (who owns each process), and "
                f"{s.definitions} is no folder: pass --definitions"
            )
        self.server = TraceServer(
            self.store,
            decisions=self.store.decisions,
            approvals=self.store.approvals,
            approvals_of=self.store.approvals_of,
            access=access,
            host=s.http_host,
            port=s.http_port,
            failures=FailedAttempts(),
            clients=ClientKeys(s.trusted_proxies),
            signin=s.signin,
            jaeger_url=s.jaeger_url,
            facts=facts,
            batches=self.store.batches,
        )
        self.failed = threading.Event()
        self.misconfigured = False
        self._thread: threading.Thread | None = None

    def start(self) -> TrackerUi:
        """ConfigurationError when the store's URL cannot work; a store that is away is a pause
        (requests answer 503 until it is back)."""
        with suppress(VisibilityUnavailable):
            self.store.positions()
        if self.indexer is not None:
            self._thread = threading.Thread(target=self._index, name="visibility-indexer")
            self._thread.daemon = True
            self._thread.start()
        self.server.start()
        return self

    def _index(self) -> None:
        assert self.indexer is not None
        try:
            self.indexer.run()
        except ConfigurationError as err:
            log.error(str(err))
            self.misconfigured = True
            self.failed.set()
        except BaseException:
            log.exception("the visibility indexer failed; stopping the UI")
            self.failed.set()

    def stop(self) -> None:
        if self.indexer is not None:
            self.indexer.stop()
        if self._thread is not None:
            self._thread.join(30)
        self.server.stop()
        self.store.close()
