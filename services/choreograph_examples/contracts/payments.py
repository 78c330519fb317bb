"""Event models of the `payments` domain, generated from schemas/avro/payments by `choreograph schemas codegen`.

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


class PaymentAuthorized(Event):
    """The payment provider authorised the order amount."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.PaymentAuthorized'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"PaymentAuthorized","namespace":"com.acme.payments","doc":"The payment provider authorised the order amount.","fields":[{"name":"order_id","type":"string","doc":"Order the payment belongs to."},{"name":"payment_id","type":"string","doc":"Provider reference."},{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2},"doc":"Authorised amount."},{"name":"currency","type":"string","default":"EUR","doc":"ISO 4217 code."}]}')

    order_id: String = Field(description='Order the payment belongs to.')
    payment_id: String = Field(description='Provider reference.')
    amount: Annotated[Decimal, Field(max_digits=12, decimal_places=2)] = Field(description='Authorised amount.')
    currency: String = Field(default='EUR', description='ISO 4217 code.')


class PaymentFailed(Event):
    """The payment could not be authorised."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.PaymentFailed'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"PaymentFailed","namespace":"com.acme.payments","doc":"The payment could not be authorised.","fields":[{"name":"order_id","type":"string","doc":"Order the payment belongs to."},{"name":"reason","type":"string","doc":"Provider\'s decline reason."}]}')

    order_id: String = Field(description='Order the payment belongs to.')
    reason: String = Field(description="Provider's decline reason.")


class PaymentRefunded(Event):
    """An authorised payment was given back (confirms a RefundPayment)."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.PaymentRefunded'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"PaymentRefunded","namespace":"com.acme.payments","doc":"An authorised payment was given back (confirms a RefundPayment).","fields":[{"name":"order_id","type":"string","doc":"Order whose payment was refunded."},{"name":"reason","type":"string","doc":"Why it was refunded, as the command said."}]}')

    order_id: String = Field(description='Order whose payment was refunded.')
    reason: String = Field(description='Why it was refunded, as the command said.')


class PaymentVoidRefused(Event):
    """Answer to VoidPayment: too late to void, the payment was already made (PaymentAuthorized, or PaymentFailed if it was declined)."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.PaymentVoidRefused'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"PaymentVoidRefused","namespace":"com.acme.payments","doc":"Answer to VoidPayment: too late to void, the payment was already made (PaymentAuthorized, or PaymentFailed if it was declined).","fields":[{"name":"order_id","type":"string","doc":"Order whose payment stands."},{"name":"payment_id","type":["null","string"],"default":null,"doc":"The payment that was made, if one was."}]}')

    order_id: String = Field(description='Order whose payment stands.')
    payment_id: None | String = Field(default=None, description='The payment that was made, if one was.')


class PaymentVoided(Event):
    """Answer to VoidPayment: the payment had not been made and never will be."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.PaymentVoided'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.events'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"PaymentVoided","namespace":"com.acme.payments","doc":"Answer to VoidPayment: the payment had not been made and never will be.","fields":[{"name":"order_id","type":"string","doc":"Order whose payment was voided."},{"name":"reason","type":"string","doc":"Why it was voided, as the command said."}]}')

    order_id: String = Field(description='Order whose payment was voided.')
    reason: String = Field(description='Why it was voided, as the command said.')


class RefundPayment(Event):
    """Command: give back an authorised payment (compensation of the payment step)."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.RefundPayment'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.commands'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"RefundPayment","namespace":"com.acme.payments","doc":"Command: give back an authorised payment (compensation of the payment step).","fields":[{"name":"order_id","type":"string","doc":"Order whose payment to refund."},{"name":"reason","type":"string","doc":"Why the refund is due."}]}')

    order_id: String = Field(description='Order whose payment to refund.')
    reason: String = Field(description='Why the refund is due.')


class VoidPayment(Event):
    """Command: settle a payment whose step timed out before it reported. Cancel it if it was not made yet (never make it afterwards), and answer which: PaymentVoided or PaymentVoidRefused."""

    __avro_name__: ClassVar[str] = 'com.acme.payments.VoidPayment'
    __avro_domain__: ClassVar[str] = 'payments'
    __avro_topic__: ClassVar[str] = 'payments.commands'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"VoidPayment","namespace":"com.acme.payments","doc":"Command: settle a payment whose step timed out before it reported. Cancel it if it was not made yet (never make it afterwards), and answer which: PaymentVoided or PaymentVoidRefused.","fields":[{"name":"order_id","type":"string","doc":"Order whose payment is in doubt."},{"name":"reason","type":"string","doc":"Why the payment is in doubt."}]}')

    order_id: String = Field(description='Order whose payment is in doubt.')
    reason: String = Field(description='Why the payment is in doubt.')


EVENTS: tuple[type[Event], ...] = (PaymentAuthorized, PaymentFailed, PaymentRefunded, PaymentVoidRefused, PaymentVoided, RefundPayment, VoidPayment,)
