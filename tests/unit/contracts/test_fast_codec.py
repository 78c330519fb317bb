"""The generated Avro readers and writers agree with fastavro byte for byte and value for value,
for every contract of the repository they cover and for a schema of every covered type; what
they do not cover is left to fastavro; broken bodies are refused."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choreograph.contracts.fast_codec import _fields, reader_for, writer_for

REPO = Path(__file__).resolve().parents[3]
EVERY_TYPE = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.codec",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "raw", "type": "bytes"},
        {"name": "n", "type": "null"},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "maybe_s", "type": ["null", "string"], "default": None},
        {"name": "s_or_null", "type": ["string", "null"]},
        {"name": "maybe_l", "type": ["null", "long"]},
        {"name": "maybe_e",
         "type": ["null", {"type": "enum", "name": "Size", "symbols": ["S", "M", "L"]}]},
        {"name": "typed", "type": {"type": "string"}},
    ],
}  # fmt: skip


def contracts() -> list[dict[str, Any]]:
    found = [EVERY_TYPE]
    for path in sorted((REPO / "schemas/avro").rglob("*.avsc")) + sorted(
        (REPO / "bench/workload").glob("*.avsc")
    ):
        found.append(json.loads(path.read_text()))
    return found


COVERED = [s for s in contracts() if _fields(s) is not None]


def value_of(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, dict) and kind.get("type") == "enum":
        return st.sampled_from(kind["symbols"])
    if isinstance(kind, dict):
        return value_of(kind["type"])
    if isinstance(kind, list):
        other = next(k for k in kind if k != "null")
        return st.one_of(st.none(), value_of(other))
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=300),
        "string": st.text(max_size=300),
    }[kind]


def records(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f["name"]: value_of(f["type"]) for f in schema["fields"]})


def fastavro_bytes(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema, named_schemas={}), record)
    return out.getvalue()


def test_the_repositorys_flat_contracts_and_the_benchmark_are_covered() -> None:
    names = {s["name"] for s in COVERED}
    assert {"Everything", "Tick", "Tallied", "RefundPayment", "ReleaseStock"} <= names
    not_covered = {s["name"] for s in contracts()} - names
    assert {"OrderPlaced", "ProcessTrace"} <= not_covered  # arrays, nested records, decimals


@pytest.mark.parametrize("schema", COVERED, ids=lambda s: s["name"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_codecs_agree_with_fastavro(schema: dict[str, Any], data: st.DataObject) -> None:
    record = data.draw(records(schema))
    expected = fastavro_bytes(schema, record)
    writer, reader = writer_for(schema), reader_for(schema)
    assert writer is not None and reader is not None
    assert writer(record, b"\x00frame") == b"\x00frame" + expected
    parsed = fastavro.parse_schema(schema, named_schemas={})
    assert reader(b"\x00frame" + expected, 6) == fastavro.schemaless_reader(
        io.BytesIO(expected), parsed, None
    )


def test_what_is_not_covered_stays_with_fastavro() -> None:
    for field_type in (
        {"type": "array", "items": "string"},
        {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
        {"type": "long", "logicalType": "timestamp-millis"},
        ["null", "string", "long"],
        {"type": "record", "name": "Inner", "fields": []},
        {"type": "fixed", "name": "F", "size": 2},
    ):
        schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
        assert reader_for(schema) is None and writer_for(schema) is None, field_type


def test_a_broken_body_is_refused() -> None:
    reader = reader_for(EVERY_TYPE)
    assert reader is not None
    record = {"s": "é" * 10, "i": 1, "l": 2, "b": True, "d": 1.5, "f": 0.5, "raw": b"xy",
              "n": None, "e": "GREEN", "maybe_s": None, "s_or_null": "a", "maybe_l": 7,
              "maybe_e": "M", "typed": "t"}  # fmt: skip
    body = fastavro_bytes(EVERY_TYPE, record)
    assert reader(body, 0) == record
    for broken in (body[:5], body[:-3], b"\x01" + body[1:], b"\x06\xff\xfe\xfd" + body[4:]):
        with pytest.raises((IndexError, ValueError, UnicodeDecodeError)):
            reader(broken, 0)


def test_the_serde_uses_them_and_its_bytes_do_not_change() -> None:
    from bench.workload import Tallied, Tick
    from bench.workload.service import build

    from choreograph.testing.testkit import TestKit

    kit = TestKit(build("codec"), partitions=1)
    serde = kit.serde
    tick = Tick(id="i-1", key="k", seq=2**40, amount=-3)
    value = serde.serialize(tick, "codec.ticks")
    assert value[5:] == fastavro_bytes(Tick.__avro_schema__, tick.to_avro())
    assert serde.deserialize(value).event == tick
    [encoder] = [e for (topic, model), e in serde._encoders.items() if model is Tick]
    assert encoder[1] is not None  # generated
    plan = next(p for (_, model), p in serde._plans.items() if p.writer_name == Tick.__avro_name__)
    assert plan.fast is not None
    tallied = Tallied(input_id="i-1", key="k", count=1, total=5)
    assert serde.deserialize(serde.serialize(tallied, "codec.tallies"), Tallied).event == tallied


def model_of(schema: dict[str, Any]) -> Any:
    """The pydantic model codegen binds for `schema`, as a service gets it."""
    from choreograph.contracts.catalog import Policy, parse_contract
    from choreograph.contracts.codegen import bind_models

    contract = parse_contract(json.dumps(schema), f"{schema['name']}.avsc", "test", Policy())
    name = f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")
    return bind_models([contract], f"fast_codec_models_{schema['name']}")[name]


FLAT_MODELS = [(s, m) for s in COVERED if (m := model_of(s))._is_flat()]


def named(value: object) -> str:
    """A test id for (schema, model) parameters: the schema's name."""
    return str(value.get("name", "")) if isinstance(value, dict) else ""


@pytest.mark.parametrize(("schema", "model"), FLAT_MODELS, ids=named)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_reader_into_the_model_builds_what_trusted_builds(
    schema: dict[str, Any], model: Any, data: st.DataObject
) -> None:
    record = data.draw(records(schema))
    body = b"\x00frame" + fastavro_bytes(schema, record)
    plain, into = reader_for(schema), reader_for(schema, into=model)
    assert plain is not None and into is not None
    built, expected = into(body, 6), model.trusted(plain(body, 6))
    assert type(built) is model
    assert built == expected
    for part in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__",
                 "__pydantic_private__"):  # fmt: skip
        assert getattr(built, part) == getattr(expected, part), part


def test_the_serde_reads_events_straight_into_models_and_refuses_what_deserialize_refuses() -> None:
    from bench.workload import Tallied, Tick
    from bench.workload.service import build

    from choreograph.contracts.serde import MislabelledRecord, SerdeError
    from choreograph.testing.testkit import TestKit

    serde = TestKit(build("into"), partitions=1).serde
    tick = Tick(id="i-1", key="k", seq=7, amount=-3)
    value = serde.serialize(tick, "into.ticks")
    assert serde.event_of(value, Tick.__avro_name__) == tick  # the first read plans it
    assert value[:5] in serde._event_readers  # later reads take the generated path
    again = serde.event_of(value, Tick.__avro_name__)
    assert again == tick and type(again) is Tick
    with pytest.raises(MislabelledRecord):
        serde.event_of(value, Tallied.__avro_name__)
    with pytest.raises(SerdeError, match=r"cannot decode bench.workload.Tick \(schema id \d+\)"):
        serde.event_of(value[:-2], Tick.__avro_name__)
    with pytest.raises(SerdeError):
        serde.event_of(b"\x00", Tick.__avro_name__)
