"""Poller: fetches are held as the pacer says; commits are spaced."""

from eventbus import kafka
from eventbus.envelope import seal
from eventbus.kafka import Poller
from generated.order_created import OrderCreated


class FixedPacer:
    """A pacer whose holds the test sets, one per poll."""

    def __init__(self, *holds: float):
        self.holds = list(holds)
        self.counted: list[int] = []

    def count(self, events: int) -> None:
        self.counted.append(events)

    def hold(self) -> float:
        return self.holds.pop(0)


def test_fetches_are_held_as_long_as_the_pacer_says_and_return_at_once_otherwise(fake_consumer, kafka_record):
    record = kafka_record(seal(OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts="2026-01-01T00:00:00Z"), "orders"))
    consumer = fake_consumer([record] * 3, [record] * 3, [record], [], [record] * 3)
    pacer = FixedPacer(0.012, 0.012, 0.0, 0.0, 0.004)
    poller = Poller(consumer, pacer=pacer)
    seen = []
    for _ in range(5):
        poller.poll()
        seen.append(dict(consumer._fetcher.config))
    assert seen == [kafka.held(12), kafka.held(12), kafka.IDLE, kafka.IDLE, kafka.held(4)]
    assert pacer.counted == [3, 3, 1, 0, 3]
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
    consumer = fake_consumer([record] * 3, [record], [])
    poller = Poller(consumer, relaxed=True, pacer=FixedPacer(0.02, 0.02, 0.02))
    seen = []
    for _ in range(3):
        poller.poll()
        seen.append(dict(consumer._fetcher.config))
    assert seen == [kafka.RELAXED] * 3
    assert kafka.RELAXED["fetch_min_bytes"] > kafka.HELD_MIN_BYTES
