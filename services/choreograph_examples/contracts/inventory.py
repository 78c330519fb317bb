"""Event models of the `inventory` domain, generated from schemas/avro/inventory by `choreograph schemas codegen`.

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


class ReleaseStock(Event):
    """Command: release the order's reservation (compensation of the reservation step)."""

    __avro_name__: ClassVar[str] = 'com.acme.inventory.ReleaseStock'
    __avro_domain__: ClassVar[str] = 'inventory'
    __avro_topic__: ClassVar[str] = 'inventory.commands'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ReleaseStock","namespace":"com.acme.inventory","doc":"Command: release the order\'s reservation (compensation of the reservation step).","fields":[{"name":"order_id","type":"string","doc":"Order whose reservation to release."},{"name":"reason","type":"string","doc":"Why the stock is released."}]}')

    order_id: String = Field(description='Order whose reservation to release.')
    reason: String = Field(description='Why the stock is released.')


class ReserveStock(Event):
    """Command from the saga tracker, for an operator's redrive: reserve an order's stock again, as if its payment had just been authorised."""

    __avro_name__: ClassVar[str] = 'com.acme.inventory.ReserveStock'
    __avro_domain__: ClassVar[str] = 'inventory'
    __avro_topic__: ClassVar[str] = 'inventory.commands'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ReserveStock","namespace":"com.acme.inventory","doc":"Command from the saga tracker, for an operator\'s redrive: reserve an order\'s stock again, as if its payment had just been authorised.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"customer_id","type":"string","default":"","doc":"Who ordered, as the tracker recorded it."},{"name":"reason","type":"string","doc":"Why it is asked again."}]}')

    order_id: String = Field(description='Business key of the order.')
    customer_id: String = Field(default='', description='Who ordered, as the tracker recorded it.')
    reason: String = Field(description='Why it is asked again.')


class StockReleased(Event):
    """Stock reserved for an order is available again (confirms a ReleaseStock)."""

    __avro_name__: ClassVar[str] = 'com.acme.inventory.StockReleased'
    __avro_domain__: ClassVar[str] = 'inventory'
    __avro_topic__: ClassVar[str] = 'inventory.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"StockReleased","namespace":"com.acme.inventory","doc":"Stock reserved for an order is available again (confirms a ReleaseStock).","fields":[{"name":"order_id","type":"string","doc":"Order whose reservation was released."}]}')

    order_id: String = Field(description='Order whose reservation was released.')


class StockReservationFailed(Event):
    """At least one line of the order could not be reserved."""

    __avro_name__: ClassVar[str] = 'com.acme.inventory.StockReservationFailed'
    __avro_domain__: ClassVar[str] = 'inventory'
    __avro_topic__: ClassVar[str] = 'inventory.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"StockReservationFailed","namespace":"com.acme.inventory","doc":"At least one line of the order could not be reserved.","fields":[{"name":"order_id","type":"string","doc":"Order the reservation was for."},{"name":"sku","type":"string","doc":"First product that was short."}]}')

    order_id: String = Field(description='Order the reservation was for.')
    sku: String = Field(description='First product that was short.')


class StockReserved(Event):
    """Every line of the order is reserved in the warehouse."""

    __avro_name__: ClassVar[str] = 'com.acme.inventory.StockReserved'
    __avro_domain__: ClassVar[str] = 'inventory'
    __avro_topic__: ClassVar[str] = 'inventory.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"StockReserved","namespace":"com.acme.inventory","doc":"Every line of the order is reserved in the warehouse.","fields":[{"name":"order_id","type":"string","doc":"Order the reservation is for."},{"name":"warehouse","type":"string","doc":"Warehouse holding the stock."}]}')

    order_id: String = Field(description='Order the reservation is for.')
    warehouse: String = Field(description='Warehouse holding the stock.')


EVENTS: tuple[type[Event], ...] = (ReleaseStock, ReserveStock, StockReleased, StockReservationFailed, StockReserved,)
