"""Where committed state lives: RocksDB on disk in production, a dict in the TestKit.

Each backend also keeps how far its store's changelog is applied (the next changelog offset),
written in the same atomic write as the data it covers: after any crash, even one that loses
the tail of RocksDB's write-ahead log, data and offset agree, so a restart replays exactly the
changelog records the local copy lacks.

RocksDB's memory is bounded per process, not per store: a service holds one RocksDB per store
and partition, and each would otherwise keep memtables of up to 128 MB and a block cache of its
own, so a tracker with a dozen stores on several partitions grew towards gigabytes. One shared
block cache, with the memtables charged to it by a `WriteBufferManager` (`StateMemory`), caps
them all together, as Kafka Streams' bounded memory configuration does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar, Protocol

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteBufferManager


class StateMemory:
    """The process's one budget for RocksDB memory: a block cache of `megabytes` shared by every
    store opened with it, with their memtables (up to half of it) counted in the same cache."""

    _shared: ClassVar[dict[int, StateMemory]] = {}

    def __init__(self, megabytes: int) -> None:
        self.megabytes = megabytes
        self.cache = Cache(megabytes * 2**20)
        self.memtables = WriteBufferManager.new_write_buffer_manager_with_cache(
            megabytes * 2**19, False, self.cache
        )

    @classmethod
    def shared(cls, megabytes: int) -> StateMemory:
        found = cls._shared.get(megabytes)
        if found is None:
            found = cls._shared[megabytes] = cls(megabytes)
        return found

    def apply(self, options: Options, table: BlockBasedOptions) -> None:
        options.set_write_buffer_manager(self.memtables)
        table.set_block_cache(self.cache)


class StateDiskError(OSError):
    """Local state cannot be written: says which path and what to do."""

    def __init__(self, path: Path, error: BaseException) -> None:
        super().__init__(
            f"state directory {path} cannot be written ({error}); free space on it, make it "
            "writable, or point CHOREOGRAPH_STATE_DIR elsewhere: on restart the service restores "
            "what it lacks from its changelogs, and nothing committed is lost"
        )
        self.path = path


class Backend(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def write(self, changes: Mapping[bytes, bytes | None], applied: int | None = None) -> None:
        """Apply `changes` and, with them atomically, `applied` (the next changelog offset)."""

    def applied(self) -> int | None:
        """The next changelog offset the data covers; None when unknown (restore it all)."""

    def scan(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...
    def flush(self) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._applied: int | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], applied: int | None = None) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        if applied is not None:
            self._applied = applied

    def applied(self) -> int | None:
        return self._applied

    def scan(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self.data if k >= start):
            yield key, self.data[key]

    def flush(self) -> None:
        pass

    def clear(self) -> None:
        self.data.clear()
        self._applied = None

    def close(self) -> None:
        pass


META = "choreograph"  # column family beside the data: what the runtime knows of it
APPLIED = b"changelog-next"


class RocksBackend:
    """One RocksDB per store and partition, in raw (bytes) mode, keys in byte order. The
    changelog offset lives in its own column family, so no scan of the data ever meets it."""

    def __init__(self, path: Path, memory: StateMemory | None = None) -> None:
        """`memory`: the process's shared budget (`StateMemory.shared`); none: RocksDB's own
        per-store sizes."""
        self.path = path
        self.memory = memory
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateDiskError(path.parent, error) from error
        self.db = self._open()

    def _open(self) -> Rdict:
        options = Options(raw_mode=True)
        table = BlockBasedOptions()
        # A key that is not there (a new instance, a first timer: most of a tracker's lookups)
        # is answered from the filter, without reading a block.
        table.set_bloom_filter(10, False)
        if self.memory is not None:
            self.memory.apply(options, table)
        options.set_block_based_table_factory(table)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        try:
            db = Rdict(str(self.path), options, column_families={META: Options(raw_mode=True)})
            self._meta = db.get_column_family_handle(META)
            self._meta_db = db.get_column_family(META)
        except Exception as error:  # rocksdict raises plain exceptions for I/O errors
            raise StateDiskError(self.path, error) from error
        return db

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return value if value is None or isinstance(value, bytes) else bytes(value)

    def write(self, changes: Mapping[bytes, bytes | None], applied: int | None = None) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if applied is not None:
            batch.put(APPLIED, str(applied).encode(), self._meta)
        try:
            self.db.write(batch)
        except Exception as error:
            raise StateDiskError(self.path, error) from error

    def applied(self) -> int | None:
        raw = self._meta_db.get(APPLIED)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    def scan(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        it = self.db.iter()
        it.seek(start)
        while it.valid():
            yield it.key(), it.value()
            it.next()

    def flush(self) -> None:
        """Make applied writes durable (when a partition is handed over or the service stops),
        so that even a machine restart replays nothing: syncing the write-ahead log is enough
        (RocksDB replays it on open) and far cheaper than flushing memtables."""
        try:
            self.db.flush_wal(True)
        except Exception as error:
            raise StateDiskError(self.path, error) from error

    def close(self) -> None:
        self.__dict__.pop("_meta", None)  # the column family handles hold the database open
        self.__dict__.pop("_meta_db", None)
        self.db.close()

    def clear(self) -> None:
        """Drop every key: delete the files and open an empty database in their place."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.db = self._open()
