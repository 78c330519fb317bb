"""Event models of the `shipping` domain, generated from schemas/avro/shipping by `choreograph schemas codegen`.

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


class ShipmentDispatched(Event):
    """The parcel left the warehouse."""

    __avro_name__: ClassVar[str] = 'com.acme.shipping.ShipmentDispatched'
    __avro_domain__: ClassVar[str] = 'shipping'
    __avro_topic__: ClassVar[str] = 'shipping.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ShipmentDispatched","namespace":"com.acme.shipping","doc":"The parcel left the warehouse.","fields":[{"name":"order_id","type":"string","doc":"Order shipped."},{"name":"tracking_code","type":"string","doc":"Carrier tracking code."},{"name":"delivery_address","type":"string","pii":true,"doc":"Where the parcel goes."}]}')

    order_id: String = Field(description='Order shipped.')
    tracking_code: String = Field(description='Carrier tracking code.')
    delivery_address: String = Field(description='Where the parcel goes.')


EVENTS: tuple[type[Event], ...] = (ShipmentDispatched,)
