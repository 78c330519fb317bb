"""The failure policy and the pieces that keep infrastructure faults from becoming business
failures: classification, the watchdog, the schema cache, the publisher's bound, dead letters too
large to copy, poison markers, and state-disk messages."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde, RegistryUnavailable, SerdeError
from choreograph.runtime.dlq import slim_dead_letter
from choreograph.runtime.errors import Failure, RecordTooLarge, classify
from choreograph.runtime.limits import record_size
from choreograph.runtime.transactions import ProducerUnavailable, unproducible
from choreograph.runtime.watchdog import Stalled, Watchdog
from choreograph.state.backends import RocksBackend, StateDiskError
from choreograph.state.poison import Poison, PoisonMarks
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced

ORDER = OrderPlaced(
    order_id="o-1",
    customer_id="c-1",
    customer_email="a@example.com",
    lines=[OrderLine(sku="MUG-1", quantity=1)],
    total=Decimal("12.50"),
    placed_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_each_kind_of_failure_has_one_answer() -> None:
    assert classify(RegistryUnavailable("http://r", "down")) is Failure.INFRASTRUCTURE
    assert classify(ProducerUnavailable("no producer")) is Failure.INFRASTRUCTURE
    assert classify(Stalled("commit")) is Failure.INFRASTRUCTURE
    assert classify(KafkaException(KafkaError(KafkaError._TRANSPORT, retriable=True))) is (
        Failure.INFRASTRUCTURE
    )
    assert classify(SerdeError("garbage")) is Failure.BAD_RECORD
    assert classify(RecordTooLarge("2 MB")) is Failure.BAD_RECORD
    assert classify(ValueError("a bug")) is Failure.BUSINESS
    assert classify(ConnectionError("the handler's own dependency")) is Failure.BUSINESS
    assert unproducible(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert not unproducible(KafkaError(KafkaError._TRANSPORT))


def test_watchdog_returns_results_raises_errors_and_stops_waiting_at_its_bound() -> None:
    dog = Watchdog("test")
    assert dog.call("add", 1.0, lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        dog.call("divide", 1.0, lambda: 1 / 0)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(Stalled, match=r"hang did not return within 0\.3 s"):
        dog.call("hang", 0.3, release.wait)
    assert time.monotonic() - started < 1.0
    assert dog.stalled_calls == 1
    release.set()


class FailingRegistry(SchemaRegistryClient):  # type: ignore[misc]
    """A real client whose server is away: every call fails as the transport would."""

    def __init__(self, failure: Exception) -> None:
        super().__init__({"url": "http://registry.invalid:8081"})
        self.failure = failure

    def get_schema(self, *_args: object, **_kwargs: object) -> object:
        raise self.failure

    def lookup_schema(self, *_args: object, **_kwargs: object) -> object:
        raise self.failure


def test_registry_faults_are_infrastructure_and_unknown_ids_are_bad_records() -> None:
    down = AvroSerde(FailingRegistry(ConnectionRefusedError("refused")))
    with pytest.raises(RegistryUnavailable, match=r"registry\.invalid"):
        down.deserialize(b"\x00\x00\x00\x00\x07payload")
    with pytest.raises(RegistryUnavailable):
        AvroSerde(FailingRegistry(SchemaRegistryError(503, 50301, "busy"))).serialize(ORDER, "t")
    unknown = AvroSerde(FailingRegistry(SchemaRegistryError(404, 40403, "no such id")))
    with pytest.raises(SerdeError, match="unknown to the registry"):
        unknown.deserialize(b"\x00\x00\x00\x00\x07payload")


def test_schemas_seen_keep_working_from_disk_while_the_registry_is_away(tmp_path: Path) -> None:
    mock = SchemaRegistryClient.new_client({"url": "mock://cache-test"})
    first = AvroSerde(mock, models=[OrderPlaced], auto_register=True, cache_dir=tmp_path)
    encoded = first.serialize(ORDER, "orders.events")
    # A restarted service: empty memory, the registry away, the same state directory.
    restarted = AvroSerde(
        FailingRegistry(ConnectionRefusedError("refused")),
        models=[OrderPlaced],
        cache_dir=tmp_path,
    )
    restarted.url = first.url  # the same registry, reached at the same address
    restarted.cache = type(first.cache)(tmp_path, first.url)  # type: ignore[misc]
    assert restarted.serialize(ORDER, "orders.events") == encoded
    assert restarted.deserialize(encoded).event == ORDER
    never_seen = AvroSerde(FailingRegistry(ConnectionRefusedError("refused")), cache_dir=tmp_path)
    with pytest.raises(RegistryUnavailable):
        never_seen.deserialize(b"\x00\x00\x00\x99\x99payload")


def test_publisher_waits_within_its_bound_then_names_the_registry() -> None:
    serde = AvroSerde(FailingRegistry(ConnectionRefusedError("refused")))
    publisher = EventPublisher(
        {"bootstrap.servers": "127.0.0.1:1"}, serde, "shop", registry_wait_s=0.6
    )
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as raised:
        publisher.publish(ORDER, "o-1")
    assert 0.5 <= time.monotonic() - started < 3
    message = str(raised.value)
    assert "http://registry.invalid:8081" in message and "was not published" in message


def test_a_dead_letter_too_large_to_copy_keeps_its_headers_and_points_at_the_original() -> None:
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_type", b"com.acme.orders.OrderPlaced"),
        ("ce_id", b"e-1"),
        ("dlq_origin_topic", "orders.events"),
        ("dlq_origin_offset", "41"),
        ("x-blob", b"y" * 10_000),
    ]
    key, value, kept = slim_dead_letter(b"o-1", b"z" * 2_000_000, headers, 1_000_000)
    names = dict(kept)
    assert value is None and key == b"o-1"
    assert names["dlq_value_omitted"] == "2000000"
    assert names["dlq_origin_topic"] == "orders.events" and "x-blob" not in names
    assert record_size(key, value, kept) < 2_000


def test_poison_marks_survive_a_restart_and_go_once_handled(tmp_path: Path) -> None:
    marks = PoisonMarks(tmp_path)
    marks.add(Poison("orders.events", 2, 41, "SystemExit: 3"))
    marks.add(Poison("orders.events", 2, 44, "MemoryError"))
    assert [m.offset for m in PoisonMarks(tmp_path).read()] == [41, 44]
    marks.remove("orders.events", 41)
    assert [m.offset for m in PoisonMarks(tmp_path).read()] == [44]
    marks.remove("orders.events", 44)
    assert not (tmp_path / "poison.json").exists()


def test_a_state_disk_that_refuses_writes_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StateDiskError) as raised:
        RocksBackend(blocker / "0" / "orders")
    assert str(blocker) in str(raised.value) and "CHOREOGRAPH_STATE_DIR" in str(raised.value)


class ComingBack(FailingRegistry):
    """Unreachable at first, then up but answering "not found" while it loads its schemas."""

    def __init__(self) -> None:
        super().__init__(ConnectionRefusedError("refused"))
        self.calls = 0

    def get_schema(self, *_args: object, **_kwargs: object) -> object:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionRefusedError("refused")
        raise SchemaRegistryError(404, 40403, "Schema 7 not found")


def test_not_found_right_after_an_outage_is_still_the_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serde = AvroSerde(ComingBack())
    record = b"\x00\x00\x00\x00\x07payload"
    with pytest.raises(RegistryUnavailable):
        serde.deserialize(record)  # unreachable
    with pytest.raises(RegistryUnavailable, match="may still be loading"):
        serde.deserialize(record)  # back, not loaded: a pause, not a dead letter
    monkeypatch.setattr("choreograph.contracts.serde.RECOVERY_WINDOW_S", 0.0)
    with pytest.raises(SerdeError, match="unknown to the registry"):
        serde.deserialize(record)  # past the window: not found means not found
    never_away = AvroSerde(FailingRegistry(SchemaRegistryError(404, 40403, "Schema 7 not found")))
    with pytest.raises(SerdeError):
        never_away.deserialize(record)
