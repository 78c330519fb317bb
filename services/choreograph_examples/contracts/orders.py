"""Event models of the `orders` domain, generated from schemas/avro/orders by `choreograph schemas codegen`.

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


class GoodwillRefundApproved(Event):
    """A goodwill refund was approved by somebody other than who asked for it."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.GoodwillRefundApproved'
    __avro_domain__: ClassVar[str] = 'orders'
    __avro_topic__: ClassVar[str] = 'orders.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"GoodwillRefundApproved","namespace":"com.acme.orders","doc":"A goodwill refund was approved by somebody other than who asked for it.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"doc":"Amount to refund."},{"name":"requested_by","type":"string","pii":false,"doc":"Staff identity of the agent who asked."}]}')

    order_id: String = Field(description='Business key of the order.')
    amount: Annotated[Decimal, Field(max_digits=12, decimal_places=2)] = Field(description='Amount to refund.')
    requested_by: String = Field(description='Staff identity of the agent who asked.')


class GoodwillRefundRequested(Event):
    """Customer service asks to refund part of an order as a goodwill gesture; it needs another person's approval."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.GoodwillRefundRequested'
    __avro_domain__: ClassVar[str] = 'orders'
    __avro_topic__: ClassVar[str] = 'orders.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"GoodwillRefundRequested","namespace":"com.acme.orders","doc":"Customer service asks to refund part of an order as a goodwill gesture; it needs another person\'s approval.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"doc":"Amount to refund."},{"name":"requested_by","type":"string","pii":false,"doc":"Staff identity of the agent who asks (not the customer)."},{"name":"reason","type":"string","doc":"Why, in the agent\'s words."}]}')

    order_id: String = Field(description='Business key of the order.')
    amount: Annotated[Decimal, Field(max_digits=12, decimal_places=2)] = Field(description='Amount to refund.')
    requested_by: String = Field(description='Staff identity of the agent who asks (not the customer).')
    reason: String = Field(description="Why, in the agent's words.")


class CancelReason(StrEnum):
    """Why the order was cancelled."""
    PAYMENT_FAILED = 'PAYMENT_FAILED'
    OUT_OF_STOCK = 'OUT_OF_STOCK'
    CUSTOMER_REQUEST = 'CUSTOMER_REQUEST'
    TIMEOUT = 'TIMEOUT'
    OTHER = 'OTHER'


class OrderCancelled(Event):
    """The order will not be fulfilled; ends the process as failed."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.OrderCancelled'
    __avro_domain__: ClassVar[str] = 'orders'
    __avro_topic__: ClassVar[str] = 'orders.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"OrderCancelled","namespace":"com.acme.orders","doc":"The order will not be fulfilled; ends the process as failed.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"reason","type":{"type":"enum","name":"CancelReason","doc":"Why the order was cancelled.","symbols":["PAYMENT_FAILED","OUT_OF_STOCK","CUSTOMER_REQUEST","TIMEOUT","OTHER"],"default":"OTHER"},"doc":"Why the order was cancelled."},{"name":"detail","type":["null","string"],"default":null,"doc":"Free text for humans."}]}')

    order_id: String = Field(description='Business key of the order.')
    reason: CancelReason = Field(description='Why the order was cancelled.')
    detail: None | String = Field(default=None, description='Free text for humans.')


class OrderCompleted(Event):
    """The order was paid, reserved and shipped; ends the process successfully."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.OrderCompleted'
    __avro_domain__: ClassVar[str] = 'orders'
    __avro_topic__: ClassVar[str] = 'orders.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"OrderCompleted","namespace":"com.acme.orders","doc":"The order was paid, reserved and shipped; ends the process successfully.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"completed_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the last step finished."}]}')

    order_id: String = Field(description='Business key of the order.')
    completed_at: datetime.datetime = Field(description='When the last step finished.')


class OrderLine(AvroRecord):
    """One product line of an order."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.OrderLine'

    sku: String = Field(description='Stock keeping unit.')
    quantity: Int32 = Field(description='Units ordered, at least 1.')


class OrderPlaced(Event):
    """A customer placed an order; starts the order fulfilment process."""

    __avro_name__: ClassVar[str] = 'com.acme.orders.OrderPlaced'
    __avro_domain__: ClassVar[str] = 'orders'
    __avro_topic__: ClassVar[str] = 'orders.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"OrderPlaced","namespace":"com.acme.orders","doc":"A customer placed an order; starts the order fulfilment process.","fields":[{"name":"order_id","type":"string","doc":"Business key of the order."},{"name":"customer_id","type":"string","doc":"Who ordered."},{"name":"customer_email","type":"string","pii":true,"doc":"Where confirmations go."},{"name":"lines","doc":"What was ordered.","type":{"type":"array","items":{"type":"record","name":"OrderLine","doc":"One product line of an order.","fields":[{"name":"sku","type":"string","doc":"Stock keeping unit."},{"name":"quantity","type":"int","doc":"Units ordered, at least 1."}]}}},{"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"doc":"Order total in the order currency."},{"name":"currency","type":"string","default":"EUR","doc":"ISO 4217 code."},{"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the customer placed the order."}]}')

    order_id: String = Field(description='Business key of the order.')
    customer_id: String = Field(description='Who ordered.')
    customer_email: String = Field(description='Where confirmations go.')
    lines: list[OrderLine] = Field(description='What was ordered.')
    total: Annotated[Decimal, Field(max_digits=12, decimal_places=2)] = Field(description='Order total in the order currency.')
    currency: String = Field(default='EUR', description='ISO 4217 code.')
    placed_at: datetime.datetime = Field(description='When the customer placed the order.')


EVENTS: tuple[type[Event], ...] = (GoodwillRefundApproved, GoodwillRefundRequested, OrderCancelled, OrderCompleted, OrderPlaced,)
