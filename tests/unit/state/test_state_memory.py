"""RocksDB memory is one budget per process: every store's memtables and blocks are counted in
one shared cache, so a service with many stores and partitions stays within it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from choreograph.state.backends import RocksBackend, StateMemory


def test_stores_share_one_bounded_budget(tmp_path: Path) -> None:
    memory = StateMemory(16)
    stores = [RocksBackend(tmp_path / f"store-{i}", memory) for i in range(4)]
    value = os.urandom(1500)
    for i in range(30_000):  # 45 MB of writes: each store alone would keep it in its memtables
        stores[i % 4].write({b"k%08d" % i: value})
        if i % 7 == 0:
            stores[(i // 2) % 4].get(b"k%08d" % (i // 2))
    # Counted in the shared cache, and within it once the background flushes have run (on a
    # loaded machine they may lag the writes for a moment).
    deadline = time.monotonic() + 15
    while (used := memory.cache.get_usage()) > 16 * 2**20 * 1.1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 0 < used <= 16 * 2**20 * 1.1, used
    assert stores[1].get(b"k%08d" % 1) == value  # what was flushed is still there
    for store in stores:
        store.close()


def test_the_budget_is_shared_per_size() -> None:
    assert StateMemory.shared(64) is StateMemory.shared(64)
