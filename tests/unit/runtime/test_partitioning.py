"""Keys land where the Java client puts them. The expected values were computed with Kafka's own
`org.apache.kafka.common.utils.Utils.murmur2` (kafka-clients 4.1.1) and `toPositive(h) % n`; the
interop suite checks the same against a running Java producer."""

from __future__ import annotations

import pytest

from choreograph.runtime.partitioning import (
    PartitionerConflict,
    java_compatible,
    murmur2,
    partition_for,
)

KAFKA = [  # key, Utils.murmur2, partition of 3, partition of 12
    ("", 275646681, 0, 9),
    ("21", -973932308, 0, 0),
    ("foobar", -790332482, 0, 6),
    ("o-1", 747680922, 0, 6),
    ("ord-abc123-0001", 957837482, 2, 2),
    ("a-little-bit-long-string", -985981536, 2, 8),
    ("été-東京", -641992465, 1, 7),
]


@pytest.mark.parametrize(("key", "hashed", "of3", "of12"), KAFKA)
def test_murmur2_and_partitions_match_kafka(key: str, hashed: int, of3: int, of12: int) -> None:
    assert murmur2(key.encode()) == hashed
    assert (partition_for(key, 3), partition_for(key.encode(), 12)) == (of3, of12)


def test_producers_get_the_java_compatible_partitioner_and_refuse_another() -> None:
    assert java_compatible({"acks": "all"})["partitioner"] == "murmur2_random"
    assert java_compatible({"partitioner": "murmur2"})["partitioner"] == "murmur2"
    with pytest.raises(PartitionerConflict, match="consistent_random"):
        java_compatible({"partitioner": "consistent_random"})


def test_the_testkit_routes_records_by_the_production_partitioner() -> None:
    from choreograph import TestKit
    from choreograph_examples.payments.service import build as payments
    from tests.unit.runtime.test_records_that_lie import ORDER

    kit = TestKit(payments(), partitions=12)
    for key in ("o-1", "ord-abc123-0001"):
        kit.send(ORDER.model_copy(update={"order_id": key}), key=key)
        owner = kit.task_for(key)
        assert owner.partition == dict((k, p12) for k, _, _, p12 in KAFKA)[key]
        assert kit.store("payments").get(key) is not None
        others = [t for t in kit.tasks if t is not owner]
        assert all(t.user_store("payments").get(key) is None for t in others)
    with pytest.raises(AttributeError, match="12 partition tasks"):
        kit.task  # noqa: B018  # which one? the TestKit says
