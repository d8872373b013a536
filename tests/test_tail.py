"""make tail: which events it shows and how one line reads. No broker: the
messages are built as the topic reader would hand them out."""

import pytest

from devstack.tail import COLOURS, DEAD_LETTER, Filter, fields, line
from devstack.topic import Seen, seen
from eventbus.contracts import EVENT_TYPES

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def message(event_type="PaymentCaptured", key="42", payload=None, **headers) -> Seen:
    payload = {"orderId": 42, "amount": 100, "ts": "2026-11-28T10:00:00.000Z"} if payload is None else payload
    headers = {"ce_type": event_type, "ce_id": "1a2b3c4d-5e6f", "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"} | {
        name: value for name, value in headers.items()
    }
    return Seen("orders.events", 0, 7, 1_764_324_000_123, key, headers, payload, "")


@pytest.mark.parametrize(
    "wanted, shown",
    [
        (Filter(), True),
        (Filter(order=42), True),
        (Filter(order=4), False),
        (Filter(event_type="PaymentCaptured"), True),
        (Filter(event_type="EmailSent"), False),
        (Filter(order=42, event_type="EmailSent"), False),
    ],
)
def test_the_filter_keeps_one_order_or_one_type(wanted, shown):
    assert wanted.wants(message()) is shown


def test_a_line_shows_type_order_short_id_trace_and_payload_fields():
    text = line(message())
    assert text.plain.split()[1:] == [
        "PaymentCaptured",
        "order",
        "42",
        "ce",
        "1a2b3c4d",
        "trace",
        TRACE,
        "amount=100",
        "ts=2026-11-28T10:00:00.000Z",
    ]


def style_of(text, words: str) -> str:
    """The style of the span that shows `words`."""
    return next(str(span.style) for span in text.spans if words in text.plain[span.start : span.end])


def test_each_event_type_has_a_colour_of_its_own():
    styles = {style_of(line(message(event_type)), event_type) for event_type in COLOURS}
    assert styles == {f"bold {colour}" for colour in COLOURS.values()}


def test_a_dead_letter_is_red_and_says_why():
    text = line(message(dlq_reason="OrderCreated breaks its contract: qty: 0 is less than 1"))
    assert style_of(text, "DEAD LETTER") == DEAD_LETTER
    assert style_of(text, "reason: OrderCreated breaks its contract: qty: 0 is less than 1") == DEAD_LETTER
    assert style_of(text, "amount=100") == DEAD_LETTER


def test_a_value_that_is_not_json_is_shown_as_it_came():
    poison = Seen("orders.events.dlq", 0, 0, 0, None, {"dlq_reason": "not JSON"}, None, "{not json")
    assert fields(poison) == "'{not json'"
    assert "(no type)" in line(poison).plain


def test_the_reader_decodes_a_kafka_record(kafka_record):
    record = kafka_record(headers={"ce_type": b"EmailSent", "empty": None}, key=b"9", value=b'{"orderId": 9}')
    assert seen(record) == Seen(
        "orders.events", 0, 0, 0, "9", {"ce_type": "EmailSent"}, {"orderId": 9}, '{"orderId": 9}'
    )


def test_a_json_value_that_is_not_an_object_has_no_payload(kafka_record):
    assert seen(kafka_record(value=b"[1, 2]")).payload is None


def test_every_event_type_has_a_colour():
    assert set(COLOURS) == set(EVENT_TYPES)
