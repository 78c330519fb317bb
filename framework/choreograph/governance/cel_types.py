"""Avro contracts as CEL types, so that a policy is type-checked against the contract it reads.

CEL's checker knows protobuf messages, so each Avro record becomes a message in a private
descriptor pool: a policy that reads a field the contract does not have, or compares it with the
wrong type, fails to compile with the line and column. Events are converted to those messages to
be evaluated, so what the checker accepted is what runs.

Mapping: string, enum and uuid -> string; int and long -> int; float and double -> double;
boolean -> bool; bytes and fixed -> bytes; decimal -> double; timestamp-millis/micros ->
timestamp; date -> string (ISO 8601); arrays -> lists; maps -> map(string, V); records ->
messages; [null, T] -> T with `has()`; other unions -> dyn.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.message import Message

F = descriptor_pb2.FieldDescriptorProto
_WELL_KNOWN = (timestamp_pb2.DESCRIPTOR, struct_pb2.DESCRIPTOR)
_SCALARS = {
    "string": F.TYPE_STRING,
    "int": F.TYPE_INT64,
    "long": F.TYPE_INT64,
    "float": F.TYPE_DOUBLE,
    "double": F.TYPE_DOUBLE,
    "boolean": F.TYPE_BOOL,
    "bytes": F.TYPE_BYTES,
}


class UnsupportedContract(ValueError):
    """A contract a policy cannot read as CEL (e.g. a recursive record)."""


def fullname(schema: dict[str, Any], namespace: str = "") -> str:
    """The full name of a named Avro type, as the Avro specification resolves it."""
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


class ContractTypes:
    """The message types of one event contract (and the records it holds), in their own pool."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for known in _WELL_KNOWN:
            proto = descriptor_pb2.FileDescriptorProto()
            known.CopyToProto(proto)
            self.pool.Add(proto)
        self._records: dict[str, dict[str, Any]] = {}  # full name -> record schema
        self._named: dict[str, Any] = {}  # every named type seen, for references by name
        self._visiting: set[str] = set()
        self.root = self._record(schema, "")
        for file in self._files():
            self.pool.Add(file)
        self._classes: dict[str, type[Message]] = {}

    # -- building ------------------------------------------------------------------------------

    def _record(self, schema: dict[str, Any], namespace: str) -> str:
        full = fullname(schema, namespace)
        if full in self._visiting:
            raise UnsupportedContract(
                f"{full} holds itself; policies cannot read recursive records"
            )
        if full in self._records:
            return full
        self._visiting.add(full)
        self._records[full] = schema
        self._named[full] = schema
        ns = full.rpartition(".")[0]
        for f in schema.get("fields", []):
            self._walk(f["type"], ns)
        self._visiting.discard(full)
        return full

    def _walk(self, schema: Any, namespace: str) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._walk(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind == "record":
                self._record(schema, namespace)
            elif kind in ("enum", "fixed"):
                self._named[fullname(schema, namespace)] = schema
            elif kind == "array":
                self._walk(schema["items"], namespace)
            elif kind == "map":
                self._walk(schema["values"], namespace)

    def _resolve(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str) and schema not in _SCALARS and schema != "null":
            full = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
            return self._named.get(full, self._named.get(schema, schema))
        return schema

    def _files(self) -> list[descriptor_pb2.FileDescriptorProto]:
        """One file per namespace, each depending on the files it refers to."""
        by_ns: dict[str, list[str]] = {}
        for full in self._records:
            by_ns.setdefault(full.rpartition(".")[0], []).append(full)
        files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        needs: dict[str, set[str]] = {}
        for ns, names in by_ns.items():
            file = descriptor_pb2.FileDescriptorProto(
                name=f"avro/{ns or '_'}.proto", package=ns, syntax="proto3"
            )
            deps: set[str] = set()
            for full in names:
                self._message(file.message_type.add(), full, deps)
            files[ns] = file
            needs[ns] = deps - {ns}
        ordered: list[descriptor_pb2.FileDescriptorProto] = []
        done: set[str] = set()

        def visit(ns: str, path: tuple[str, ...]) -> None:
            if ns in done:
                return
            if ns in path:
                raise UnsupportedContract(f"namespaces {' -> '.join(path)} refer to each other")
            for dep in sorted(needs[ns]):
                visit(dep, (*path, ns))
            file = files[ns]
            for dep in sorted(needs[ns]):
                file.dependency.append(files[dep].name)
            file.dependency.extend(
                ["google/protobuf/timestamp.proto", "google/protobuf/struct.proto"]
            )
            ordered.append(file)
            done.add(ns)

        for ns in sorted(files):
            visit(ns, ())
        return ordered

    def _message(self, message: descriptor_pb2.DescriptorProto, full: str, deps: set[str]) -> None:
        schema = self._records[full]
        message.name = full.rpartition(".")[2]
        ns = full.rpartition(".")[0]
        for number, f in enumerate(schema.get("fields", []), start=1):
            field = message.field.add(name=f["name"], number=number)
            field.label = F.LABEL_OPTIONAL
            kind = f["type"]
            if isinstance(kind, list):
                branches = [b for b in kind if b != "null"]
                if len(branches) == 1:
                    kind = branches[0]
                    if not self._is_message(kind, ns):
                        field.proto3_optional = True
                        field.oneof_index = len(message.oneof_decl)
                        message.oneof_decl.add(name=f"_{f['name']}")
                else:
                    self._dyn(field)
                    continue
            self._type(message, field, kind, ns, deps)

    def _is_message(self, schema: Any, namespace: str) -> bool:
        resolved = self._resolve(schema, namespace)
        if not isinstance(resolved, dict):
            return False
        logical = resolved.get("logicalType")
        return resolved.get("type") == "record" or logical in (
            "timestamp-millis",
            "timestamp-micros",
        )

    @staticmethod
    def _dyn(field: descriptor_pb2.FieldDescriptorProto) -> None:
        field.type = F.TYPE_MESSAGE
        field.type_name = ".google.protobuf.Value"

    def _type(
        self,
        message: descriptor_pb2.DescriptorProto,
        field: descriptor_pb2.FieldDescriptorProto,
        schema: Any,
        ns: str,
        deps: set[str],
    ) -> None:
        schema = self._resolve(schema, ns)
        if isinstance(schema, str):
            if schema not in _SCALARS:
                raise UnsupportedContract(f"field {field.name}: unknown type {schema!r}")
            field.type = _SCALARS[schema]
            return
        if isinstance(schema, list):
            self._dyn(field)
            return
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical in ("timestamp-millis", "timestamp-micros"):
            field.type, field.type_name = F.TYPE_MESSAGE, ".google.protobuf.Timestamp"
        elif logical == "decimal":
            field.type = F.TYPE_DOUBLE
        elif logical in ("date", "uuid") or kind == "enum":
            field.type = F.TYPE_STRING
        elif kind == "fixed":
            field.type = F.TYPE_BYTES
        elif kind == "record":
            full = fullname(schema, ns)
            field.type, field.type_name = F.TYPE_MESSAGE, f".{full}"
            deps.add(full.rpartition(".")[0])
        elif kind == "array":
            if field.proto3_optional:
                raise UnsupportedContract(f"field {field.name}: a nullable array")
            field.label = F.LABEL_REPEATED
            items = self._resolve(schema["items"], ns)
            if isinstance(items, list) or (
                isinstance(items, dict) and items.get("type") in ("array", "map")
            ):
                self._dyn(field)  # a list of dyn: nested lists and maps are read as dyn
            else:
                self._type(message, field, items, ns, deps)
        elif kind == "map":
            entry = message.nested_type.add(name=f"{_camel(field.name)}Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
            value = entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL)
            self._type(entry, value, schema["values"], ns, deps)
            field.type, field.label = F.TYPE_MESSAGE, F.LABEL_REPEATED
            field.type_name = (
                f".{ns}.{message.name}.{entry.name}" if ns else f".{message.name}.{entry.name}"
            )
        elif kind in _SCALARS:
            field.type = _SCALARS[kind]
        else:
            raise UnsupportedContract(f"field {field.name}: unsupported type {schema!r}")

    # -- values --------------------------------------------------------------------------------

    def message(self, full: str, values: dict[str, Any]) -> Message:
        """The message for a record's values (as the event model holds them)."""
        cls = self._classes.get(full)
        if cls is None:
            cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full))
            self._classes[full] = cls
        msg = cls()
        _fill(msg, values)
        return msg


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _scalar(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, (str, bytes)):  # an enum member
        return value.value
    return value


def _fill(msg: Message, values: dict[str, Any]) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        field = fields.get(name)
        if field is None or value is None:
            continue
        target = field.message_type
        if target is not None and target.GetOptions().map_entry:
            value_field = target.fields_by_name["value"]
            container = getattr(msg, name)
            for k, v in value.items():
                if value_field.message_type is None:
                    container[k] = _scalar(v)
                else:
                    _set_message(container[k], v)
        elif field.is_repeated:
            container = getattr(msg, name)
            for item in value:
                if target is None:
                    container.append(_scalar(item))
                else:
                    _set_message(container.add(), item)
        elif target is not None:
            _set_message(getattr(msg, name), value)
        else:
            setattr(msg, name, _scalar(value))


def _set_message(msg: Message, value: Any) -> None:
    full = msg.DESCRIPTOR.full_name
    well_known: Any = msg  # the pool's own class of a well-known type, with its methods
    if full == "google.protobuf.Timestamp":
        well_known.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    elif full == "google.protobuf.Value":
        _set_value(well_known, value)
    else:
        _fill(msg, value if isinstance(value, dict) else dict(value))


def _set_value(msg: struct_pb2.Value, value: Any) -> None:
    value = _scalar(value)
    if value is None:
        msg.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        msg.bool_value = value
    elif isinstance(value, (int, float)):
        msg.number_value = float(value)
    elif isinstance(value, str):
        msg.string_value = value
    elif isinstance(value, dict):
        for k, v in value.items():
            _set_value(msg.struct_value.fields[k], v)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _set_value(msg.list_value.values.add(), item)
    else:
        msg.string_value = str(value)
