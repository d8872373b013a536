"""make dlq: what a dead letter's line says, which ones the filters keep, and
that a listing reads up to the end as of its start and stops. No broker."""

import json

import pytest

from devstack import dlq
from devstack.topic import seen
from tests.conftest import TOPIC


def dead_letter(kafka_record, service: str, reason: str, offset: int, value: bytes = b"not json", **headers):
    return kafka_record(
        headers={
            "ce_type": b"OrderCreated",
            "dlq_reason": reason.encode(),
            "dlq_topic": b"orders.events",
            "dlq_partition": b"2",
            "dlq_offset": b"41",
            "dlq_service": service.encode(),
            **headers,
        },
        key=b"7",
        value=value,
        offset=offset,
    )


def test_a_dead_letter_says_who_set_it_aside_why_and_where_it_came_from(kafka_record):
    letter = dlq.DeadLetter.of(seen(dead_letter(kafka_record, "billing", "not JSON: Expecting value", 3)))
    assert (letter.service, letter.reason, letter.type, letter.order) == (
        "billing",
        "not JSON: Expecting value",
        "OrderCreated",
        "7",
    )
    assert (letter.topic, letter.partition, letter.offset, letter.dlq_offset) == ("orders.events", 2, 41, 3)
    line = dlq.line(letter)
    for shown in ("billing", "OrderCreated", "order 7", "orders.events[2]@41", "reason: not JSON", "'not json'"):
        assert shown in line


def test_only_the_first_bytes_of_a_payload_are_shown(kafka_record):
    letter = dlq.DeadLetter.of(seen(dead_letter(kafka_record, "orders", "r", 0, value=b"x" * 500)))
    assert letter.payload == "x" * dlq.PAYLOAD_SHOWN


@pytest.mark.parametrize(
    ("wanted", "kept"),
    [
        (dlq.Filter(), [0, 1, 2]),
        (dlq.Filter(service="billing"), [0, 2]),
        (dlq.Filter(reason="CONTRACT"), [1, 2]),
        (dlq.Filter(service="billing", reason="contract"), [2]),
    ],
)
def test_filters_keep_one_services_or_one_reasons_dead_letters(kafka_record, wanted, kept):
    letters = [
        dlq.DeadLetter.of(seen(dead_letter(kafka_record, service, reason, n)))
        for n, (service, reason) in enumerate(
            [("billing", "not JSON"), ("orders", "fails its contract: qty"), ("billing", "fails its contract: x")]
        )
    ]
    assert [letter.dlq_offset for letter in letters if wanted.wants(letter)] == kept


def test_a_listing_reads_up_to_the_end_as_of_its_start_then_stops(fake_consumer, kafka_record):
    records = [dead_letter(kafka_record, "billing", "r", n) for n in range(5)]
    consumer = fake_consumer(records[:2], records[2:], [dead_letter(kafka_record, "billing", "later", 5)])
    found = dlq.read_all(consumer, {(TOPIC, 0): 5})
    assert [message.offset for message in found] == [0, 1, 2, 3, 4]


def test_a_listing_of_an_empty_topic_reads_nothing(fake_consumer):
    assert dlq.read_all(fake_consumer(), {(TOPIC, 0): 0}) == []


def test_the_json_listing_is_one_array_of_every_field(kafka_record, monkeypatch, capsys):
    letters = [dlq.DeadLetter.of(seen(dead_letter(kafka_record, "notifications", "r", 0)))]
    monkeypatch.setattr(dlq, "dead_letters", lambda servers, topic: letters)
    assert dlq.main(["--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["service"] == "notifications" and listed["dlq_offset"] == 0 and listed["offset"] == 41
