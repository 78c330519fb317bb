"""Local checkpoints: the changelog offset up to which a partition's local state is complete.

Written after each commit has been applied to the backend, so on restart only the changelog tail
past the checkpoint is replayed. A missing or unreadable checkpoint means a full restore.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        """The next changelog offset to restore from, or None for a full restore."""
        try:
            data = json.loads(self.path.read_text())
            return int(data["next_offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, next_offset: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"next_offset": next_offset}))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
