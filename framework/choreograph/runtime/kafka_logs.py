"""librdkafka's own log lines, through Python logging, each said once a minute.

Left to itself librdkafka writes every failed connection attempt to stderr: hundreds of lines
a minute while a broker is away, drowning the one line that says what is wrong. Every client of
the runtime logs to `choreograph.kafka` instead, where a repeated message is dropped for a
minute, and a start-up probe logs nowhere (the engine says in one line what it found).
"""

from __future__ import annotations

import logging
import time

_REPEAT_S = 60.0


class _OncePerMinute(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        # librdkafka prefixes the client instance and thread: compare what follows.
        key = text.split("]: ", 1)[-1]
        now = time.monotonic()
        if now - self._last.get(key, -_REPEAT_S) < _REPEAT_S:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


KAFKA_LOG = logging.getLogger("choreograph.kafka")
KAFKA_LOG.addFilter(_OncePerMinute())
SILENT = logging.getLogger("choreograph.kafka.silent")
SILENT.addHandler(logging.NullHandler())
SILENT.propagate = False
SILENT.setLevel(logging.CRITICAL + 1)
