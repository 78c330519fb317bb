"""Poison markers: records a process crashed on, kept in the partition's state directory.

When something escapes the engine while it handles a record (a bug, a handler that exits the
process), the engine writes the record's coordinates here before the process ends. The next
process to own the partition finds the marker and dead-letters that record instead of crashing on
it again, so no single record can stop a service for good. A marker is removed once its dead
letter is committed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Poison:
    topic: str
    partition: int
    offset: int
    error: str


class PoisonMarks:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "poison.json"

    def read(self) -> list[Poison]:
        try:
            raw = json.loads(self.path.read_text())
            return [Poison(**entry) for entry in raw]
        except (OSError, ValueError, TypeError):
            return []

    def add(self, poison: Poison) -> None:
        marks = [m for m in self.read() if m != poison] + [poison]
        self._write(marks)

    def remove(self, topic: str, offset: int) -> None:
        marks = self.read()
        kept = [m for m in marks if (m.topic, m.offset) != (topic, offset)]
        if len(kept) != len(marks):
            self._write(kept)

    def _write(self, marks: list[Poison]) -> None:
        if not marks:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump([m.__dict__ for m in marks], handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
