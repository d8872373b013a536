"""make dlq: what a dead letter's line says, which ones the filters keep, and
that a listing reads up to the end as of its start and stops. No broker."""

import json
from dataclasses import replace

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from devstack import dlq
from devstack.topic import read_to_end, seen
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


def end_of(partition: int, offset: int) -> Message:
    """What librdkafka hands out on reaching the end of a partition."""
    return Message(topic=TOPIC, partition=partition, offset=offset, error=KafkaError(KafkaError._PARTITION_EOF))


def reading(fake_consumer, *polls, partitions=(0,)):
    consumer = fake_consumer(*polls)
    consumer.assigned = [TopicPartition(TOPIC, partition) for partition in partitions]
    return consumer


def test_a_listing_reads_up_to_the_end_of_every_partition_then_stops(fake_consumer, kafka_record):
    records = [dead_letter(kafka_record, "billing", "r", n) for n in range(4)]
    later = dead_letter(kafka_record, "billing", "later", 4)
    consumer = reading(fake_consumer, records[:2], [records[2], end_of(1, 0)], [records[3], end_of(0, 4)], [later])
    consumer.assigned.append(TopicPartition(TOPIC, 1))
    assert [record.offset() for record in read_to_end(consumer)] == [0, 1, 2, 3]


def test_the_end_is_where_the_client_says_not_after_the_last_message(fake_consumer, kafka_record):
    """A transaction's commit marker (offset 2 here) is no message: waiting for one at it would never end."""
    records = [dead_letter(kafka_record, "billing", "r", n) for n in range(2)]
    assert len(read_to_end(reading(fake_consumer, [*records, end_of(0, 3)]))) == 2


def test_a_listing_of_an_empty_topic_reads_nothing(fake_consumer):
    assert read_to_end(reading(fake_consumer, [end_of(0, 0)])) == []


def test_a_topic_that_stops_answering_is_an_error_not_a_short_listing(fake_consumer, kafka_record):
    with pytest.raises(KafkaException, match="stopped answering"):
        read_to_end(reading(fake_consumer, [dead_letter(kafka_record, "billing", "r", 0)]), timeout=0)


def test_a_dead_letter_sent_back_says_so(kafka_record):
    letter = dlq.DeadLetter.of(seen(dead_letter(kafka_record, "billing", "r", 3)))
    assert letter.place == "0@3" and "(sent back)" in dlq.line(replace(letter, sent_back=True))
    assert "(sent back)" not in dlq.line(letter)


def test_the_json_listing_is_one_array_of_every_field(kafka_record, monkeypatch, capsys):
    letters = [dlq.DeadLetter.of(seen(dead_letter(kafka_record, "notifications", "r", 0)))]
    monkeypatch.setattr(dlq, "dead_letters", lambda settings: [(letter, None) for letter in letters])
    assert dlq.main(["--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["service"] == "notifications" and listed["dlq_offset"] == 0 and listed["offset"] == 41
