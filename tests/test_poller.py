"""Poller: a poll waits for more records only as long as the pacer says; commits are spaced."""

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from eventbus import kafka
from eventbus.envelope import seal
from eventbus.kafka import Poller
from eventbus.settings import Settings
from eventbus.tuning import BACKGROUND
from generated.order_created import OrderCreated


class FixedPacer:
    """A pacer whose holds the test sets, one per poll that brought records."""

    def __init__(self, *holds: float):
        self.holds = list(holds)
        self.counted: list[int] = []

    def count(self, events: int) -> None:
        self.counted.append(events)

    def hold(self) -> float:
        return self.holds.pop(0)


def order_record(kafka_record, offset: int = 0):
    order = OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts="2026-01-01T00:00:00Z")
    return kafka_record(seal(order, "orders"), offset=offset)


def test_a_poll_waits_for_more_only_as_long_as_the_pacer_says(fake_consumer, kafka_record):
    record = order_record(kafka_record)
    consumer = fake_consumer([record] * 3, [record], [], [record] * 3)
    pacer = FixedPacer(0.012, 0.0, 0.004)
    poller = Poller(consumer, pacer=pacer)
    for _ in range(4):
        poller.poll()
    # each poll waits up to IDLE_POLL_S for a first record, then takes what else came within the hold
    assert consumer.waits == [
        kafka.IDLE_POLL_S,
        0.012,
        kafka.IDLE_POLL_S,
        0.0,
        kafka.IDLE_POLL_S,
        kafka.IDLE_POLL_S,
        0.004,
    ]
    assert pacer.counted == [3, 1, 0, 3]


def test_a_background_poller_never_waits_for_more(fake_consumer, kafka_record):
    consumer = fake_consumer([order_record(kafka_record)] * 3, [])
    poller = Poller(consumer, pace=BACKGROUND, pacer=FixedPacer(0.02, 0.02))
    poller.poll()
    poller.poll()
    assert consumer.waits == [kafka.IDLE_POLL_S, 0.0, kafka.IDLE_POLL_S]


def test_a_background_poller_takes_a_few_records_at_a_time(fake_consumer, kafka_record):
    records = [order_record(kafka_record, offset=n) for n in range(3 * BACKGROUND.batch)]
    batches = Poller(fake_consumer(records), pace=BACKGROUND).poll()
    assert [record.offset() for record in batches[("orders.events", 0)]] == list(range(BACKGROUND.batch))


def test_records_come_out_by_partition_in_order(fake_consumer, kafka_record):
    records = [kafka_record(partition=n % 2, offset=n) for n in range(4)]
    batches = Poller(fake_consumer(records), pacer=FixedPacer(0.0)).poll()
    assert {key: [record.offset() for record in found] for key, found in batches.items()} == {
        ("orders.events", 0): [0, 2],
        ("orders.events", 1): [1, 3],
    }


def test_a_passing_error_is_only_reported_and_a_fatal_one_needs_a_new_client(fake_consumer, kafka_record, caplog):
    down = Message(error=KafkaError(KafkaError._ALL_BROKERS_DOWN, "all brokers are down"))
    assert Poller(fake_consumer([down]), pacer=FixedPacer(0.0)).poll() == {}
    assert "all brokers are down" in caplog.text
    fenced = Message(error=KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    with pytest.raises(KafkaException, match="fenced"):
        Poller(fake_consumer([fenced]), pacer=FixedPacer(0.0)).poll()
    static_fenced = Message(error=KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer"))
    with pytest.raises(KafkaException, match="Static consumer fenced"):  # as a consumer hears of it
        Poller(fake_consumer([static_fenced]), pacer=FixedPacer(0.0)).poll()


def test_positions_are_committed_at_most_every_interval_and_at_close(fake_consumer, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    consumer = fake_consumer()
    poller = Poller(consumer)
    consumer.positions[0] = 1
    poller.done()
    clock[0] += kafka.COMMIT_INTERVAL / 2
    consumer.positions[0] = 2
    poller.done()
    assert consumer.commits == [(0, 1)]
    clock[0] += kafka.COMMIT_INTERVAL
    consumer.positions[0] = 3
    poller.done()
    consumer.positions[0] = 4
    poller.done()
    poller.close()
    assert consumer.commits == [(0, 1), (0, 3), (0, 4)]


def test_the_position_past_a_transactions_commit_marker_is_committed_so_a_group_can_lag_by_zero(
    fake_consumer, kafka_record
):
    """Offset 4 is the marker: no record has it, but the client's position steps over it."""
    consumer = fake_consumer([kafka_record(offset=3)])
    poller = Poller(consumer, pacer=FixedPacer(0.0))
    poller.poll()
    consumer.positions[0] = 5
    poller.close()
    assert consumer.commits == [(0, 5)]


def test_a_partition_sought_back_is_committed_up_to_the_record_and_an_unmoved_one_is_not_committed_again(
    fake_consumer, kafka_record, monkeypatch
):
    clock = [100.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    polled = [
        kafka_record(offset=0, partition=0),
        kafka_record(offset=1, partition=0),
        kafka_record(offset=6, partition=1),
    ]
    consumer = fake_consumer(polled)
    poller = Poller(consumer, pacer=FixedPacer(0.0))
    poller.poll()
    poller.seek(polled[1])  # its work failed: no position now, as librdkafka's after a seek
    poller.done()
    clock[0] += kafka.COMMIT_INTERVAL
    poller.done()
    assert consumer.commits == [(0, 1), (1, 7)]


def test_a_seek_goes_back_to_the_record(fake_consumer, kafka_record):
    consumer = fake_consumer()
    Poller(consumer).seek(kafka_record(partition=2, offset=7))
    assert consumer.seeks == [(2, 7)]


def test_only_a_fatal_error_needs_a_new_client():
    assert kafka.needs_new_client(KafkaException(KafkaError(KafkaError._FATAL, "fenced")))
    assert kafka.needs_new_client(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert not kafka.needs_new_client(KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out")))
    assert not kafka.needs_new_client(KafkaException("no answer from Kafka"))
    assert not kafka.needs_new_client(ValueError("not Kafka's"))


def test_every_client_gives_up_on_a_broker_that_does_not_answer_within_half_a_sends_timeout(monkeypatch):
    """Not librdkafka's 60 s for a request, 30 s for a connection: a paused or
    cut-off broker would hold a consumer's fetch, a relay's send or commit, or
    the connection to its transaction coordinator, for the whole fault before
    another broker is asked. Within half a send's timeout, a send is retried
    on the new leader in time."""
    configs = []

    class Client:
        def __init__(self, config):
            configs.append(config)

        def subscribe(self, topics):
            pass

    monkeypatch.setattr(kafka, "Producer", Client)
    monkeypatch.setattr(kafka, "Consumer", Client)
    settings = Settings(service="test")
    kafka.make_producer(settings)
    kafka.make_consumer(settings, "test")
    assert [config["socket.timeout.ms"] for config in configs] == [5_000] * 2
    assert [config["socket.connection.setup.timeout.ms"] for config in configs] == [5_000] * 2
    assert kafka.SEND_TIMEOUT_MS == 10_000
