"""Which partition a key goes to: the Java client's rule, for every producer of the project.

Co-partitioned state only works when every writer of a topic puts a key in the same partition.
The Java client, Kafka Streams, aiokafka (so Faust) and most clients hash keys with murmur2;
librdkafka's default is CRC32. So every producer here sets librdkafka's `murmur2_random`
(murmur2 for keys, random for records without one: the Java producer's default for keyed
records), and `partition_for` computes the same thing in Python for tests and tools.
"""

from __future__ import annotations

from typing import Any

PARTITIONER = "murmur2_random"
_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


class PartitionerConflict(ValueError):
    """A producer was configured with a partitioner other clients do not share."""


def java_compatible(conf: dict[str, Any]) -> dict[str, Any]:
    """`conf` with the Java-compatible partitioner; refuses a different one, which would put
    keys on other partitions than every other writer of the topic does."""
    chosen = conf.get("partitioner", PARTITIONER)
    if chosen not in (PARTITIONER, "murmur2"):
        raise PartitionerConflict(
            f"partitioner {chosen!r} would put keys on other partitions than the Java client, "
            f"Kafka Streams and Faust do; leave it unset (choreograph uses {PARTITIONER!r})"
        )
    return {**conf, "partitioner": chosen}


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2`, as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    full = length - length % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | str, partitions: int) -> int:
    """The partition the Java client's default partitioner picks for `key`."""
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions
