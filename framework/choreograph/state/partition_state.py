"""The state of one partition: its stores, and where each stands on its changelog.

The one place that knows a store's changelog coordinates. It opens the stores, says what to
restore (from the offset each backend recorded with its data; a store that recorded none is
cleared and restored whole), remembers the changelog offset of each store's last write in the
open transaction, and applies a committed transaction with those offsets in the same atomic
write as the data. So local data and its changelog offset never disagree, whatever the crash.
"""

from __future__ import annotations

from collections.abc import Callable

from choreograph.state.backends import Backend
from choreograph.state.restore import RestoreJob
from choreograph.state.store import Store

Progress = Callable[[int, int], None]  # records restored, records left


class PartitionState:
    def __init__(
        self, partition: int, changelogs: dict[str, str], open_backend: Callable[[str], Backend]
    ) -> None:
        """`changelogs`: store name -> its changelog topic; `open_backend(store)` opens one."""
        self.partition = partition
        self._written: list[Store] = []  # stores the message in hand wrote to
        self.stores = {
            name: Store(name, partition, open_backend(name), topic, self._written)
            for name, topic in changelogs.items()
        }
        self._store_list = list(self.stores.values())
        self._by_changelog = {store.changelog: store for store in self._store_list}
        self._logged: dict[str, int] = {}  # store -> next offset after its last changelog write

    # -- opening -------------------------------------------------------------------------------

    def restore_jobs(self, progress: Callable[[str], Progress] | None = None) -> list[RestoreJob]:
        """What to read from the changelogs to bring every store up to date. A store whose
        backend recorded no offset cannot be trusted: it is cleared and restored whole."""
        jobs = []
        for store in self._store_list:
            start = store.backend.applied()
            if start is None:
                store.backend.clear()
            jobs.append(
                RestoreJob(
                    store.changelog,
                    self.partition,
                    store.name,
                    store.backend,
                    start,
                    progress(store.name) if progress else None,
                )
            )
        return jobs

    # -- the open transaction ------------------------------------------------------------------

    def end_message(self, ok: bool) -> None:
        written = self._written
        if written:
            for store in written:
                store.end_message(ok)
            written.clear()

    def written(self) -> list[Store]:
        """The stores the message in hand wrote to, before it ends."""
        return self._written

    def changelog_writes(self) -> list[tuple[Store, dict[bytes, bytes | None]]]:
        """The writes of the open transaction, store by store (those with any), for the
        changelogs: the last write of each store reports where its changelog stands."""
        return [(store, store.pending()) for store in self._store_list if store.pending()]

    def logged(self, changelog: str, next_offset: int) -> None:
        """The broker acknowledged a store's changelog write up to `next_offset` (exclusive)."""
        store = self._by_changelog.get(changelog)
        if store is not None:
            self._logged[store.name] = next_offset

    def committed(self) -> None:
        """The transaction committed: apply each store's writes with its changelog offset."""
        for store in self._store_list:
            store.committed(self._logged.pop(store.name, None))

    def aborted(self) -> None:
        for store in self._store_list:
            store.aborted()
        self._logged.clear()
        self._written.clear()

    # -- closing -------------------------------------------------------------------------------

    def close(self, clean: bool = True) -> None:
        """Close every store. A clean close (a hand-over, a stop) makes what was applied
        durable first, so even a machine restart replays nothing of it."""
        for store in self._store_list:
            if clean:
                store.backend.flush()
            store.backend.close()
