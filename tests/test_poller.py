"""Poller: fetches are batched only while records keep coming; commits are spaced."""

from eventbus import kafka
from eventbus.envelope import seal
from eventbus.kafka import Poller
from generated.order_created import OrderCreated


def test_fetches_wait_to_fill_while_polls_are_full_and_return_at_once_otherwise(fake_consumer, kafka_record):
    record = kafka_record(seal(OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts="2026-01-01T00:00:00Z"), "orders"))
    full, one = [record] * kafka.BUSY_RECORDS, [record]
    consumer = fake_consumer(full, full, one, [], full)
    poller = Poller(consumer)
    seen = []
    for _ in range(5):
        poller.poll()
        seen.append(dict(consumer._fetcher.config))
    assert seen == [kafka.BUSY, kafka.BUSY, kafka.IDLE, kafka.IDLE, kafka.BUSY]
    assert kafka.IDLE["fetch_min_bytes"] == 1


def test_offsets_are_committed_at_most_every_interval_and_at_close(fake_consumer, kafka_record, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    consumer = fake_consumer()
    poller = Poller(consumer)
    tp = kafka.TopicPartition("orders.events", 0)
    poller.done({tp: 1})
    clock[0] += kafka.COMMIT_INTERVAL / 2
    poller.done({tp: 2})
    assert consumer.commits == [(0, 1)]
    clock[0] += kafka.COMMIT_INTERVAL
    poller.done({tp: 3})
    poller.done({tp: 4})
    poller.close()
    assert consumer.commits == [(0, 1), (0, 3), (0, 4)]


def test_a_relaxed_poller_always_has_its_fetches_held_to_fill(fake_consumer, kafka_record):
    record = kafka_record(seal(OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts="2026-01-01T00:00:00Z"), "orders"))
    consumer = fake_consumer([record] * kafka.BUSY_RECORDS, [record], [])
    poller = Poller(consumer, relaxed=True)
    seen = []
    for _ in range(3):
        poller.poll()
        seen.append(dict(consumer._fetcher.config))
    assert seen == [kafka.RELAXED] * 3
    assert kafka.RELAXED["fetch_min_bytes"] > kafka.BUSY["fetch_min_bytes"]
