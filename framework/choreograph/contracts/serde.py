"""Avro serde in Confluent wire format over a schema registry, TopicRecordNameStrategy.

Value bytes: 0x00, 4-byte big-endian schema id, Avro binary (fastavro). The subject of a record
on a topic is `<topic>-<record full name>`, so one topic carries several event types. Writer schema
ids and parsed schemas are cached; reading resolves the writer's version (possibly older) against
the reader's model schema, so new code reads old data with defaults filled in.

With a `cache_dir`, schemas and ids already seen are also kept on disk (ids are immutable in a
registry), so a service restarted while the registry is away still reads and writes what it
knew. A registry that cannot be reached, times out or fails (5xx) raises `RegistryUnavailable`:
the record is not at fault, and the runtime pauses instead of dead-lettering it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import fastavro
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from choreograph.contracts.event import ContractViolation, Event
from choreograph.contracts.fast_codec import Reader, Writer, reader_for, writer_for

MAGIC = 0
_HEADER = struct.Struct(">bI")
_SCHEMA_ID = struct.Struct(">I")
# A registry that hangs must not hang its caller: every request is bounded. Generous, since a
# direct caller (a tool, a test harness) may not retry; services set their own tighter bound
# (ServiceConfig.registry_conf) and pause and retry above it.
REGISTRY_CLIENT_DEFAULTS = {
    "timeout": 30,
    "max.retries": 1,
    "retries.wait.ms": 100,
    "retries.max.wait.ms": 500,
}


class SerdeError(Exception):
    """An event cannot be encoded or decoded. Decoding failures go to the DLQ as they are."""


class MislabelledRecord(SerdeError):
    """The body's writer schema is not the event type its envelope claims (`ce_type`). Acting on
    either would be acting on a lie, so the record goes to the DLQ with both names."""

    def __init__(self, claimed: str, written: str) -> None:
        self.claimed = claimed
        self.written = written
        super().__init__(f"ce_type says {claimed} but the body was written as {written}")


class UnknownSubject(SerdeError):
    """Auto-registration is off and the registry has no such schema under the subject.

    A deployment's mistake, not the record's: the service pauses (errors.classify) until the
    schema is registered (`choreograph schemas register`), rather than dead-letter every
    record that emits the type."""


class RegistryUnavailable(Exception):
    """The schema registry cannot be reached or failed to answer: an infrastructure fault, not a
    fault of the record (so not a SerdeError)."""

    def __init__(self, url: str, cause: BaseException | str) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"schema registry at {url} is unavailable: {_describe(cause)}")


def _describe(cause: BaseException | str) -> str:
    if isinstance(cause, str):
        return cause
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def _registry_failure(url: str, err: Exception) -> Exception:
    """Turn a registry client error into what it means here. 404 and other 4xx answers are about
    the request; anything else (no answer, timeout, 5xx, 408, 429) is about the registry."""
    if isinstance(err, SchemaRegistryError):
        status = err.http_status_code
        if 400 <= status < 500 and status not in (408, 429):
            return err
    return RegistryUnavailable(url, err)


# A registry that has just come back can answer before it has loaded its schemas (Apicurio's
# KafkaSQL storage replays its journal): for this long after it was last unreachable, "not found"
# counts as the outage going on. Past it, "not found" means not found again, so a record naming
# an unknown schema is held up for this long at most.
RECOVERY_WINDOW_S = 60.0


def registry_url_of(registry: SchemaRegistryClient) -> str:
    rest = getattr(registry, "_rest_client", None)
    urls = getattr(rest, "base_urls", None) or ["(unknown registry)"]
    return str(urls[0])


class SchemaCache:
    """Schemas by id and ids by (subject, schema), on disk: what a registry said never changes."""

    def __init__(self, folder: Path, registry_url: str) -> None:
        digest = hashlib.sha256(registry_url.encode()).hexdigest()[:12]
        self.folder = folder / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "url").write_text(registry_url + "\n")

    def schema(self, schema_id: int) -> str | None:
        return self._read(self.folder / f"id-{schema_id}.avsc")

    def put_schema(self, schema_id: int, schema: str) -> None:
        self._write(self.folder / f"id-{schema_id}.avsc", schema)

    def schema_id(self, subject: str, schema: str) -> int | None:
        found = self._read(self._lookup(subject, schema))
        return int(found) if found and found.isdigit() else None

    def put_schema_id(self, subject: str, schema: str, schema_id: int) -> None:
        self._write(self._lookup(subject, schema), str(schema_id))

    def _lookup(self, subject: str, schema: str) -> Path:
        key = hashlib.sha256(f"{subject}\n{schema}".encode()).hexdigest()
        return self.folder / f"subject-{key}.id"

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text()
        except OSError:
            return None

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache: a disk that refuses only costs a registry call next time


class _ReadPlan(NamedTuple):
    writer_name: str
    writer: Any  # parsed writer schema
    model: type[Event] | None  # None: a plain dict in the writer's shape
    reader: Any  # parsed reader schema when it differs from the writer's, else None
    flat: bool  # the model is built directly from what Avro decoding guarantees
    fast: Reader | None  # a reader generated for the writer's schema (see fast_codec)


_read = fastavro.schemaless_reader
_Buffer = io.BytesIO


def _framed(data: bytes | None) -> tuple[int, bytes]:
    """Schema id and Avro body of a value in the Confluent wire format (SerdeError if it is
    not one)."""
    if not data or len(data) < _HEADER.size:
        raise SerdeError("value too short for the Confluent wire format")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SerdeError(f"unknown magic byte {magic}; not Confluent wire format")
    return schema_id, data[_HEADER.size :]


class Decoded(NamedTuple):
    """A decoded value: the writer's schema id and record name, and the event."""

    schema_id: int
    writer_name: str
    event: Event | dict[str, Any]


def subject_for(topic: str, record_name: str) -> str:
    """TopicRecordNameStrategy."""
    return f"{topic}-{record_name}"


def _parse(schema: dict[str, Any]) -> Any:
    return fastavro.parse_schema(schema, named_schemas={})


class AvroSerde:
    """Encode generated event models and decode them back, through the registry."""

    def __init__(
        self,
        registry: SchemaRegistryClient | str,
        *,
        models: Iterable[type[Event]] = (),
        auto_register: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.registry = (
            SchemaRegistryClient({"url": registry, **REGISTRY_CLIENT_DEFAULTS})
            if isinstance(registry, str)
            else registry
        )
        self.url = registry if isinstance(registry, str) else registry_url_of(registry)
        self._unreachable_at: float | None = None
        self.cache = SchemaCache(cache_dir, self.url) if cache_dir is not None else None
        self.auto_register = auto_register
        self._same_schema: dict[tuple[int, type[Event]], bool] = {}
        self._writer_raw: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, type[Event]], int] = {}
        self._parsed_models: dict[type[Event], Any] = {}
        self._writers: dict[int, tuple[str, Any]] = {}
        self._readers: dict[str, type[Event]] = {}
        self._plans: dict[tuple[int, type[Event] | None], _ReadPlan] = {}
        self._projections: dict[tuple[int, tuple[str, ...]], tuple[str, Any, Any]] = {}
        # Per (topic, model): the frame and a generated writer, or None (fastavro writes it).
        self._encoders: dict[tuple[str, type[Event]], tuple[bytes, Writer | None]] = {}
        # Per frame (the magic byte and schema id, as the value starts): the writer's record name
        # and a generated reader straight into its model, for what the registered models read
        # without schema resolution (`event_of`, the hot path).
        self._event_readers: dict[bytes, tuple[str, Reader]] = {}
        for model in models:
            self.add_model(model)

    def add_model(self, model: type[Event]) -> None:
        """Decode records named like `model` (or like one of its aliases) into `model`."""
        self._readers[model.__avro_name__] = model
        self._plans.clear()
        self._event_readers.clear()
        namespace = model.__avro_name__.rsplit(".", 1)[0] if "." in model.__avro_name__ else ""
        for alias in model.__avro_schema__.get("aliases", []):
            self._readers[alias if "." in alias else f"{namespace}.{alias}"] = model

    def _failure(self, error: Exception) -> Exception:
        """What a registry error means, remembering when the registry was last unreachable."""
        err = _registry_failure(self.url, error)
        if isinstance(err, RegistryUnavailable):
            self._unreachable_at = time.monotonic()
            return err
        if (
            isinstance(err, SchemaRegistryError)
            and err.http_status_code == 404
            and self._unreachable_at is not None
            and time.monotonic() - self._unreachable_at < RECOVERY_WINDOW_S
        ):
            return RegistryUnavailable(
                self.url, f"answered {err} right after an outage; it may still be loading"
            )
        return err

    # -- encoding ------------------------------------------------------------------------------

    def _parsed(self, model: type[Event]) -> Any:
        parsed = self._parsed_models.get(model)
        if parsed is None:
            parsed = self._parsed_models[model] = _parse(model.__avro_schema__)
        return parsed

    def schema_id(self, topic: str, model: type[Event]) -> int:
        key = (topic, model)
        found = self._ids.get(key)
        if found is not None:
            return found
        subject = subject_for(topic, model.__avro_name__)
        text = json.dumps(model.__avro_schema__)
        if self.cache is not None:
            found = self.cache.schema_id(subject, text)
            if found is not None:
                self._ids[key] = found
                return found
        schema = RegistrySchema(text, "AVRO")
        try:
            if self.auto_register:
                found = self.registry.register_schema(subject, schema)
            else:
                found = self.registry.lookup_schema(subject, schema).schema_id
        except Exception as error:
            err = self._failure(error)
            if isinstance(err, RegistryUnavailable):
                raise err from error
            if isinstance(err, SchemaRegistryError) and err.http_status_code == 404:
                raise UnknownSubject(
                    f"{model.__avro_name__} as defined here is not registered under subject "
                    f"{subject}; register it (`choreograph schemas register`) or enable "
                    "auto-registration"
                ) from None
            raise SerdeError(f"registry refused {subject}: {err}") from err
        if found is None:
            raise SerdeError(f"registry returned no schema id for {subject}")
        self._ids[key] = found
        if self.cache is not None:
            self.cache.put_schema_id(subject, text, found)
            if self.cache.schema(found) is None:  # what this id means, for reading it back
                self.cache.put_schema(found, text)
        return found

    def serialize(self, event: Event, topic: str) -> bytes:
        """Encode `event` (valid by construction: see AvroRecord) for `topic`: by a writer
        generated for its schema where one covers it (flat records of primitives), else by
        fastavro; the bytes are the same."""
        model = type(event)
        encoder = self._encoders.get((topic, model))
        if encoder is None:
            frame = _HEADER.pack(MAGIC, self.schema_id(topic, model))
            fast = writer_for(model.__avro_schema__) if model._is_flat() else None
            encoder = self._encoders[(topic, model)] = (frame, fast)
        frame, fast = encoder
        try:
            if fast is not None:
                return fast(event.__dict__, frame)
            buf = io.BytesIO()
            buf.write(frame)
            fastavro.schemaless_writer(buf, self._parsed(model), event.to_avro())
            return buf.getvalue()
        except (ValueError, TypeError, AttributeError, KeyError, struct.error) as err:
            raise SerdeError(f"{model.__avro_name__} cannot be encoded: {err}") from err

    # -- decoding ------------------------------------------------------------------------------

    def writer_schema(self, schema_id: int) -> tuple[str, Any]:
        found = self._writers.get(schema_id)
        if found is None:
            text = self.cache.schema(schema_id) if self.cache is not None else None
            if text is None:
                try:
                    registered = self.registry.get_schema(schema_id)
                except Exception as error:
                    err = self._failure(error)
                    if isinstance(err, RegistryUnavailable):
                        raise err from error
                    raise SerdeError(f"schema id {schema_id} is unknown to the registry") from err
                text = registered.schema_str or "null"
                if self.cache is not None:
                    self.cache.put_schema(schema_id, text)
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("type") != "record":
                raise SerdeError(f"schema id {schema_id} is not an Avro record schema")
            name = (
                raw["name"] if "." in raw["name"] else f"{raw.get('namespace', '')}.{raw['name']}"
            )
            found = self._writers[schema_id] = (name.lstrip("."), _parse(raw))
            self._writer_raw[schema_id] = raw
        return found

    def writer_schema_json(self, schema_id: int) -> Any:
        """The writer schema of `schema_id` as JSON data (fetched and cached as for decoding)."""
        self.writer_schema(schema_id)
        return self._writer_raw[schema_id]

    def _same(self, schema_id: int, model: type[Event]) -> bool:
        """Writer and reader schemas are identical: decoding needs no schema resolution."""
        key = (schema_id, model)
        same = self._same_schema.get(key)
        if same is None:
            writer = json.dumps(self._writer_raw[schema_id], sort_keys=True)
            same = writer == json.dumps(model.__avro_schema__, sort_keys=True)
            self._same_schema[key] = same
        return same

    def _plan(self, schema_id: int, reader: type[Event] | None) -> _ReadPlan:
        """How to read values of `schema_id` (into `reader`): worked out once per pair."""
        writer_name, writer = self.writer_schema(schema_id)
        model = reader or self._readers.get(writer_name)
        fast = reader_for(self._writer_raw[schema_id])
        if model is None:
            plan = _ReadPlan(writer_name, writer, None, None, False, fast)
        else:
            resolved = None if self._same(schema_id, model) else self._parsed(model)
            fast = fast if resolved is None else None  # resolution (defaults...) is fastavro's
            plan = _ReadPlan(writer_name, writer, model, resolved, model._is_flat(), fast)
            if reader is None and plan.flat and fast is not None:
                into = reader_for(self._writer_raw[schema_id], into=model)
                if into is not None:
                    self._event_readers[_HEADER.pack(MAGIC, schema_id)] = (writer_name, into)
        self._plans[(schema_id, reader)] = plan
        return plan

    def event_of(self, data: bytes | None, claimed: str) -> Event | dict[str, Any]:
        """`deserialize(data, claimed=claimed).event` in one step for the common case: a value
        whose frame was read before by a generated reader straight into the model."""
        if data:
            fast = self._event_readers.get(data[:5])
            if fast is not None:
                if fast[0] != claimed:
                    raise MislabelledRecord(claimed, fast[0])
                try:
                    return fast[1](data, 5)  # type: ignore[no-any-return]
                except Exception as err:
                    schema_id = _SCHEMA_ID.unpack_from(data, 1)[0]
                    raise SerdeError(
                        f"cannot decode {fast[0]} (schema id {schema_id}): {err}"
                    ) from err
        return self.deserialize(data, claimed=claimed).event

    def read_fields(
        self, data: bytes | None, fields: tuple[str, ...], *, claimed: str | None = None
    ) -> dict[str, Any]:
        """Only `fields` of a value, as a plain dict (fields the writer lacks are left out):
        Avro skips the rest instead of building it, several times cheaper than `deserialize`
        for a reader that needs one field of a large record."""
        schema_id, body = _framed(data)
        key = (schema_id, fields)
        projection = self._projections.get(key)
        if projection is None:
            writer_name, writer = self.writer_schema(schema_id)
            raw = self._writer_raw[schema_id]
            kept = [f for f in raw["fields"] if f["name"] in fields]
            try:
                reader = _parse({**raw, "fields": kept}) if kept else None
            except Exception:  # a kept field names a type defined in one left out
                reader = writer
            projection = self._projections[key] = (writer_name, writer, reader)
        writer_name, writer, reader = projection
        if claimed is not None and claimed != writer_name:
            raise MislabelledRecord(claimed, writer_name)
        if reader is None:
            return {}
        try:
            read: dict[str, Any] = _read(_Buffer(body), writer, reader)  # type: ignore[assignment]
        except Exception as err:
            raise SerdeError(f"cannot decode {writer_name} (schema id {schema_id}): {err}") from err
        return read if reader is not writer else {f: read[f] for f in fields if f in read}

    def deserialize(
        self, data: bytes | None, reader: type[Event] | None = None, *, claimed: str | None = None
    ) -> Decoded:
        """Decode a value; into `reader`, else the model registered for the writer's record name,
        else into a plain dict in the writer's own shape. `claimed`: the event type the envelope
        says this is; a body written as anything else raises MislabelledRecord."""
        if not data or len(data) < _HEADER.size or data[0] != MAGIC:
            _framed(data)  # says what is wrong
        assert data is not None
        schema_id = _SCHEMA_ID.unpack_from(data, 1)[0]
        plan = self._plans.get((schema_id, reader)) or self._plan(schema_id, reader)
        writer_name = plan.writer_name
        if claimed is not None and claimed != writer_name:
            raise MislabelledRecord(claimed, writer_name)
        try:
            if plan.fast is not None:
                record = plan.fast(data, _HEADER.size)
            else:
                body = data[_HEADER.size :]
                record = _read(_Buffer(body), plan.writer, plan.reader)
        except Exception as err:
            raise SerdeError(f"cannot decode {writer_name} (schema id {schema_id}): {err}") from err
        model = plan.model
        if model is None:
            return Decoded(schema_id, writer_name, record)
        try:
            if plan.flat:
                # Avro decoding already guarantees each value's type and range.
                return Decoded(schema_id, writer_name, model.trusted(record))
            return Decoded(schema_id, writer_name, model.from_avro(record))
        except ContractViolation as err:
            raise SerdeError(str(err)) from err
