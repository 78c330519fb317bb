"""Local checkpoints: the changelog offset up to which a partition's local state is complete.

Written after commits have been applied to the backend, so on restart only the changelog tail past
the checkpoint is replayed. A missing or untrusted checkpoint means a full restore.

Periodic checkpoints do not sync RocksDB's write-ahead log to disk (that costs an fsync per store):
after a process crash the page cache still holds every write, so they are trusted as long as the
machine has not restarted since, which the kernel's boot id tells. Checkpoints taken when a
partition is handed over or the service stops are synced and trusted after a reboot too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""  # unknown: only synced checkpoints will be trusted


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        """The next changelog offset to restore from, or None for a full restore."""
        try:
            data = json.loads(self.path.read_text())
            offset = int(data["next_offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("synced") or (data.get("boot_id") and data.get("boot_id") == boot_id()):
            return offset
        return None  # written unsynced before a machine restart: the state may be older

    def write(self, next_offset: int, synced: bool) -> None:
        try:
            self._write(next_offset, synced)
        except OSError as error:
            from choreograph.state.backends import StateDiskError

            raise StateDiskError(self.path.parent, error) from error

    def _write(self, next_offset: int, synced: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"next_offset": next_offset, "synced": synced, "boot_id": boot_id()})
        )
        if synced:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, self.path)
