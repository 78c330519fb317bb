"""Event models of the `choreograph` domain, generated from schemas/avro/choreograph by `choreograph schemas codegen`.

Do not edit: change the .avsc files and generate again.
"""
# ruff: noqa
import datetime
import json
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from choreograph.contracts.event import AvroRecord, Boolean, Bytes, Event, Int32, Int64, String


class IncidentStatus(StrEnum):
    """Raised or resolved."""
    RAISED = 'RAISED'
    RESOLVED = 'RESOLVED'
    UNKNOWN = 'UNKNOWN'


class Incident(Event):
    """A process instance needs attention (raised) or no longer does (resolved); on choreograph.alerts."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.Incident'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.alerts'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"Incident","namespace":"dev.choreograph","doc":"A process instance needs attention (raised) or no longer does (resolved); on choreograph.alerts.","fields":[{"name":"incident_id","type":"string","doc":"Stable across raise and resolve: correlation id and incident name."},{"name":"status","type":{"type":"enum","name":"IncidentStatus","doc":"Raised or resolved.","symbols":["RAISED","RESOLVED","UNKNOWN"],"default":"UNKNOWN"},"doc":"Raised or resolved."},{"name":"severity","type":"string","doc":"warning or critical."},{"name":"process","type":"string","doc":"Process definition name."},{"name":"version","type":"int","doc":"Definition version the instance runs on."},{"name":"step","type":["null","string"],"default":null,"doc":"Step concerned, if any."},{"name":"correlation_id","type":"string","doc":"Process instance."},{"name":"business_key","type":"string","doc":"Entity the process is about."},{"name":"owner","type":"string","doc":"On-call route of the process."},{"name":"summary","type":"string","doc":"What happened, for humans."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was raised or resolved."}]}')

    incident_id: String = Field(description='Stable across raise and resolve: correlation id and incident name.')
    status: IncidentStatus = Field(description='Raised or resolved.')
    severity: String = Field(description='warning or critical.')
    process: String = Field(description='Process definition name.')
    version: Int32 = Field(description='Definition version the instance runs on.')
    step: None | String = Field(default=None, description='Step concerned, if any.')
    correlation_id: String = Field(description='Process instance.')
    business_key: String = Field(description='Entity the process is about.')
    owner: String = Field(description='On-call route of the process.')
    summary: String = Field(description='What happened, for humans.')
    at: datetime.datetime = Field(description='When it was raised or resolved.')


EVENTS: tuple[type[Event], ...] = (Incident,)
