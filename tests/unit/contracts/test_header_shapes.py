"""The envelope read from a known header shape is the envelope the full CloudEvents validation
gives, and a record the full validation refuses is never read on the short path: every case of
the envelope tests, and header lists mutated at random from the platform's own."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choreograph.contracts import header_shapes
from choreograph.contracts.envelope import Envelope, EnvelopeError, handling
from choreograph.contracts.header_shapes import known_shape
from tests.unit.contracts.test_cloudevents_interop import REQUIRED, SPEC_CASES, with_header
from tests.unit.contracts.test_models_and_envelope import BAD_HEADERS

SUBJECT = ("ce_subject", b"o-1")
_ids = itertools.count()


def reference(headers: list[tuple[str, Any]]) -> Envelope | None:
    try:
        return Envelope.from_headers(headers)
    except EnvelopeError:
        return None


def renumbered(headers: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The same shape with another event id, as the next record of a producer has."""
    return [(k, f"id-{next(_ids)}".encode() if k == "ce_id" and v else v) for k, v in headers]


def agrees(headers: list[tuple[str, Any]]) -> Envelope | None:
    """Read twice (the first read learns the shape, the second uses it): each short read is
    exactly the full one, and none happens where the full validation refuses."""
    for record in (headers, renumbered(headers)):
        fast, full = known_shape(record), reference(record)
        if fast is not None:
            assert full is not None, record
            if not dict(record).get("ce_time"):  # both read "now", microseconds apart
                assert abs((fast.time - full.time).total_seconds()) < 5
                fast = replace(fast, time=full.time)
            assert fast == full, record
    return known_shape(renumbered(headers))


def platform_headers(**parts: Any) -> list[tuple[str, Any]]:
    parent = Envelope.new("com.acme.orders.OrderPlaced", "orders", "o-1")
    with handling(parent):
        return Envelope.new(
            "com.acme.payments.PaymentAuthorized", "payments", "o-1", **parts
        ).to_headers()


def test_the_platforms_own_records_take_the_short_path() -> None:
    headers = platform_headers()
    assert agrees(headers) is not None
    assert agrees([*headers, ("ce_tenant", b"eu"), ("x-custom", b"\xff\xfe")]) is not None


@pytest.mark.parametrize(("header", "value", "says"), SPEC_CASES)
def test_every_spec_case_is_refused_or_read_as_the_full_path_reads_it(
    header: str, value: bytes, says: str
) -> None:
    for headers in (with_header(header, value), [*with_header(header, value), SUBJECT]):
        assert reference(headers) is None
        assert known_shape(headers) is None and known_shape(renumbered(headers)) is None


@pytest.mark.parametrize(("headers", "message"), BAD_HEADERS)
def test_every_bad_header_case_is_left_to_the_full_path(headers: list, message: str) -> None:
    for record in (headers, [*headers, SUBJECT]):
        assert known_shape(record) is None


def test_a_shape_that_is_valid_once_is_still_checked_per_record() -> None:
    headers = [*REQUIRED, SUBJECT, ("ce_time", b"2026-01-01T10:00:00.000000Z")]
    assert agrees(headers) is not None
    for header, value in (("ce_id", b""), ("ce_time", b"yesterday"), ("ce_subject", b"\xff"),
                          ("ce_causationid", b"\xc3"), ("ce_id", "text, not bytes")):  # fmt: skip
        changed = [(k, value if k == header else v) for k, v in headers]
        if header not in dict(headers):
            changed.append((header, value))
        assert known_shape(changed) is None, header


def test_the_table_of_shapes_is_bounded() -> None:
    for n in range(header_shapes.MAX_SHAPES + 10):
        known_shape([*REQUIRED[:2], ("ce_source", f"/s/{n}".encode()), REQUIRED[3], SUBJECT])
    assert len(header_shapes._SHAPES) <= header_shapes.MAX_SHAPES


VALUES = st.one_of(
    st.binary(max_size=12), st.text(max_size=8).map(str.encode), st.none(), st.text(max_size=4),
    st.sampled_from([b"", b"\xff", b"1.0", b"0.3", b"/a/b", b"not a uri", b"application/avro",
                     b"application/cloudevents+json", b"2026-01-01T10:00:00Z",
                     b"2026-01-01T10:00:00.123456Z", b"yesterday"]),
)  # fmt: skip
NAMES = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time",
                         "ce_subject", "content-type", "ce_correlationid", "ce_causationid",
                         "traceparent", "tracestate", "ce_tenant", "ce_Tenant", "ce_x_y",
                         "x-other"])  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_mutated_headers_agree_with_the_full_validation(data: st.DataObject) -> None:
    headers = platform_headers()
    for _ in range(data.draw(st.integers(0, 4))):
        change = data.draw(st.sampled_from(["set", "drop", "add", "repeat"]))
        if change == "set" and headers:
            i = data.draw(st.integers(0, len(headers) - 1))
            headers[i] = (headers[i][0], data.draw(VALUES))
        elif change == "drop" and headers:
            headers.pop(data.draw(st.integers(0, len(headers) - 1)))
        elif change == "add":
            headers.append((data.draw(NAMES), data.draw(VALUES)))
        elif headers:
            headers.append(headers[data.draw(st.integers(0, len(headers) - 1))])
    agrees(headers)
