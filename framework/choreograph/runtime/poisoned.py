"""Records known to fail for good, so none of them can stop a service for good.

Two kinds: a record a process crashed on (its marker is left beside the partition's state and
read back when the partition opens), and a record whose outputs the broker refused outright.
Either is dead-lettered when it comes round again; a marker is removed once the dead letter is
committed. The markers' storage is `state.poison`; this is the one owner of what they mean.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from choreograph.state.poison import Poison, PoisonMarks

log = logging.getLogger("choreograph.engine")
Coordinates = tuple[str, int, int]  # topic, partition, offset


class Doomed(Exception):
    """A record known to fail for good (it crashed a process, or cannot be produced on)."""


class PoisonedRecords:
    def __init__(self, directory: Callable[[int], Path]) -> None:
        self._directory = directory
        self.doomed: dict[Coordinates, Doomed] = {}  # changed in place, never replaced

    def __bool__(self) -> bool:
        return bool(self.doomed)

    def get(self, topic: str, partition: int, offset: int) -> Doomed | None:
        return self.doomed.get((topic, partition, offset))

    def unproducible(self, topic: str, partition: int, offset: int, why: str) -> None:
        """Its outputs were refused: the transaction is redone without it."""
        self.doomed[(topic, partition, offset)] = Doomed(f"cannot produce: {why}")

    def leave_marker(self, record: Coordinates, error: BaseException) -> None:
        """Something escaped while `record` was in hand: remember it beside the partition's
        state, so the next process dead-letters it instead of crashing."""
        topic, partition, offset = record
        text = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
        PoisonMarks(self._directory(partition)).add(Poison(topic, partition, offset, text))
        log.critical(
            "crashed on a record; it will be dead-lettered on restart",
            extra={"topic": topic, "partition": partition, "offset": offset, "error": text},
        )

    def load(self, partition: int) -> None:
        """Markers left by a process that crashed while it owned `partition`."""
        for poison in PoisonMarks(self._directory(partition)).read():
            self.doomed[(poison.topic, poison.partition, poison.offset)] = Doomed(
                f"a process crashed handling this record: {poison.error}"
            )

    def committed(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Records now dead-lettered and committed past are done with."""
        for topic, partition, offset in [k for k in self.doomed if (k[0], k[1]) in offsets]:
            if offsets[(topic, partition)] > offset:
                del self.doomed[(topic, partition, offset)]
                PoisonMarks(self._directory(partition)).remove(topic, offset)

    def forget_partition(self, partition: int) -> None:
        """Revoked: its markers stay on disk for whoever owns it next."""
        for key in [k for k in self.doomed if k[1] == partition]:
            del self.doomed[key]

    def clear(self) -> None:
        self.doomed.clear()
