"""The one consumer loop, against a fake consumer and a real SQLite store:
work and outgoing events commit together, and only then the offset."""

import json
import threading
import time
from dataclasses import asdict

import pytest
from confluent_kafka import Message

from eventbus import consumer as consumer_loop
from eventbus import ledger, service
from eventbus.consumer import ConsumerLoop, Handler, Rejected, StoreOutage
from eventbus.envelope import seal
from eventbus.settings import Settings
from eventbus.store import StoreUnavailable
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured

SETTINGS = Settings(service="test")
TS = "2026-11-27T10:00:00.000Z"


def order(order_id: int = 1) -> OrderCreated:
    return OrderCreated(orderId=order_id, userId=1, itemId=2, qty=1, ts=TS)


def charge(event: OrderCreated, tx) -> list:
    return [PaymentCaptured(orderId=event.orderId, amount=100, ts=TS)]


@pytest.fixture
def run(store, stop):
    """Run the loop over a fake consumer until it has played all its polls."""

    def run(consumer, handler: Handler, published=lambda: None) -> None:
        ConsumerLoop(consumer, store, SETTINGS, {OrderCreated: handler}, published).run(stop)

    return run


def test_the_handlers_events_are_queued_before_the_offset_is_committed(
    run, fake_consumer, kafka_record, store, outbox_rows
):
    consumer = fake_consumer([kafka_record(seal(order(), "orders"), offset=5)])
    queued_at_commit = []
    consumer.on_commit = lambda: queued_at_commit.append(len(outbox_rows()))
    published = []
    run(consumer, Handler(charge), published=lambda: published.append(True))

    [row] = outbox_rows()
    assert row["topic"] == "orders.events"
    assert row["headers"]["ce_type"] == b"PaymentCaptured"
    assert json.loads(row["value"]) == {"orderId": 1, "amount": 100, "ts": TS}
    assert consumer.commits == [(0, 6)]
    assert queued_at_commit == [1]
    assert published == [True]


def test_a_duplicate_key_goes_to_on_duplicate_and_writes_nothing(run, fake_consumer, kafka_record, outbox_rows):
    duplicates = []
    handler = Handler(
        charge, once_per=lambda event: event.orderId, ledger_name="test.charge", on_duplicate=duplicates.append
    )
    consumer = fake_consumer(
        [kafka_record(seal(order(1), "orders"), offset=0)],
        [kafka_record(seal(order(1), "orders"), offset=1)],
    )
    run(consumer, handler)
    assert len(outbox_rows()) == 1
    assert duplicates == [order(1)]
    assert consumer.commits == [(0, 1), (0, 2)]


def test_a_relays_late_copy_sent_under_an_older_claim_is_dropped_unhandled(
    run, fake_consumer, kafka_record, outbox_rows
):
    def stamped(order_id: int, epoch: int, offset: int) -> Message:
        message = seal(order(order_id), "orders")
        return kafka_record(
            headers=message.headers | {"relay_epoch": f"orders:{epoch}".encode()}, value=message.value, offset=offset
        )

    consumer = fake_consumer([stamped(1, 2, offset=0), stamped(2, 1, offset=1), stamped(3, 2, offset=2)])
    run(consumer, Handler(charge))
    assert [json.loads(row["value"])["orderId"] for row in outbox_rows()] == [1, 3]
    assert consumer.commits == [(0, 3)]


SEALED = seal(order(), "orders")
POISON = {
    "no ce_type": ({"ce_id": b"1"}, b"{}"),
    "garbage value": (SEALED.headers, b"\x00garbage"),
    "contract failure": (SEALED.headers, json.dumps(asdict(order()) | {"qty": 0}).encode()),
}


@pytest.mark.parametrize("headers, value", POISON.values(), ids=POISON.keys())
def test_poison_is_dead_lettered_with_its_reason_and_committed(
    run, fake_consumer, kafka_record, outbox_rows, headers, value
):
    consumer = fake_consumer([kafka_record(headers=headers, key=b"1", value=value, offset=3, partition=2)])
    run(consumer, Handler(charge))

    [row] = outbox_rows()
    assert row["topic"] == "orders.events.dlq"
    assert (row["key"], row["value"]) == (b"1", value)
    assert row["headers"]["dlq_reason"]
    assert row["headers"]["dlq_topic"] == b"orders.events"
    assert (row["headers"]["dlq_partition"], row["headers"]["dlq_offset"]) == (b"2", b"3")
    assert consumer.commits == [(2, 4)]


def test_an_unknown_event_type_is_skipped_and_committed(run, fake_consumer, kafka_record, outbox_rows):
    consumer = fake_consumer([kafka_record(headers=SEALED.headers | {"ce_type": b"OrderShipped"}, value=b"{}")])
    run(consumer, Handler(charge))
    assert outbox_rows() == []
    assert consumer.commits == [(0, 1)]


def test_a_failing_handler_is_rolled_back_and_its_message_read_again(
    run, fake_consumer, kafka_record, store, outbox_rows
):
    def fail_on_order_2(event, tx):
        if event.orderId == 2:
            raise RuntimeError("database on fire")
        return charge(event, tx)

    consumer = fake_consumer([kafka_record(seal(order(n), "orders"), offset=n) for n in (1, 2, 3)])
    run(consumer, Handler(fail_on_order_2, once_per=lambda event: event.orderId, ledger_name="test.charge"))

    assert [json.loads(row["value"])["orderId"] for row in outbox_rows()] == [1]
    assert ledger.count(store, "test.charge") == 1
    assert consumer.seeks == [(0, 2)]
    assert consumer.commits == [(0, 2)]


def test_a_rejected_event_is_dead_lettered(run, fake_consumer, kafka_record, outbox_rows):
    def reject(event, tx):
        raise Rejected("no such customer")

    consumer = fake_consumer([kafka_record(seal(order(), "orders"))])
    run(consumer, Handler(reject))
    [row] = outbox_rows()
    assert row["topic"] == "orders.events.dlq"
    assert row["headers"]["dlq_reason"] == b"no such customer"
    assert consumer.commits == [(0, 1)]


def test_a_rejected_event_leaves_its_key_free_for_a_later_redelivery(run, fake_consumer, kafka_record, outbox_rows):
    attempts = []

    def reject_first_time(event, tx):
        attempts.append(event.orderId)
        if len(attempts) == 1:
            raise Rejected("not yet")
        return charge(event, tx)

    consumer = fake_consumer(
        [kafka_record(seal(order(), "orders"), offset=0)], [kafka_record(seal(order(), "orders"), offset=1)]
    )
    run(consumer, Handler(reject_first_time, once_per=lambda event: event.orderId, ledger_name="test.charge"))
    assert attempts == [1, 1]
    assert [row["topic"] for row in outbox_rows()] == ["orders.events.dlq", "orders.events"]


def test_a_message_with_a_null_header_value_is_dead_lettered(run, fake_consumer, kafka_record, outbox_rows):
    consumer = fake_consumer([kafka_record(headers={"ce_type": b"OrderCreated", "x-null": None})])
    run(consumer, Handler(charge))
    assert [row["topic"] for row in outbox_rows()] == ["orders.events.dlq"]
    assert consumer.commits == [(0, 1)]


def test_an_event_the_service_does_not_handle_is_skipped_and_committed(run, fake_consumer, kafka_record, outbox_rows):
    payment = seal(PaymentCaptured(orderId=1, amount=100, ts=TS), "billing")
    consumer = fake_consumer([kafka_record(payment, offset=7)])
    run(consumer, Handler(charge))
    assert outbox_rows() == []
    assert consumer.commits == [(0, 8)]


def sent_back(to: str, offset: int, message=SEALED, value: bytes | None = None) -> Message:
    """A dead letter `make redrive` sent back to service `to`."""
    headers = message.headers | {"dlq_service": to.encode(), "dlq_reason": b"before", "redrive_of": b"0@9"}
    return Message(
        topic=SETTINGS.topic,
        partition=0,
        offset=offset,
        key=message.key,
        value=message.value if value is None else value,
        headers=list(headers.items()),
    )


def test_a_dead_letter_sent_back_is_handled_by_the_service_that_set_it_aside_alone(run, fake_consumer, outbox_rows):
    consumer = fake_consumer([sent_back("billing", 0), sent_back("test", 1)])
    run(consumer, Handler(charge))
    [row] = outbox_rows()
    assert row["headers"]["ce_type"] == b"PaymentCaptured"
    assert consumer.commits == [(0, 2)]


def test_a_dead_letter_sent_back_that_fails_again_is_a_new_dead_letter_with_its_new_reason(
    run, fake_consumer, outbox_rows
):
    consumer = fake_consumer([sent_back("test", 4, value=b"\x00still garbage")])
    run(consumer, Handler(charge))
    [row] = outbox_rows()
    assert row["topic"] == "orders.events.dlq"
    assert row["headers"]["dlq_reason"] != b"before"
    assert (row["headers"]["dlq_topic"], row["headers"]["dlq_offset"]) == (b"orders.events", b"4")
    assert row["headers"]["redrive_of"] == b"0@9"  # which dead letter it was a copy of


def test_a_poison_message_read_again_is_set_aside_once(run, fake_consumer, kafka_record, outbox_rows):
    """As when its partition moved to another replica before its offset was committed."""
    poison = {"headers": SEALED.headers, "value": b"\x00garbage", "offset": 3}
    consumer = fake_consumer([kafka_record(**poison)], [kafka_record(**poison), kafka_record(**poison | {"offset": 4})])
    run(consumer, Handler(charge))
    assert [row["headers"]["dlq_offset"] for row in outbox_rows()] == [b"3", b"4"]


class UnreachableStore:
    """Every transaction fails, as while the database cannot be reached."""

    def transaction(self):
        raise StoreUnavailable("PostgreSQL cannot be reached (cut off)")


def test_a_loop_whose_store_fails_every_transaction_for_a_while_gives_its_partitions_up(
    fake_consumer, kafka_record, stop, monkeypatch
):
    """A replica cut off from its database would otherwise keep its partitions,
    heartbeating to Kafka, for as long as the cut lasts: no order in them moves."""
    monkeypatch.setattr(consumer_loop, "STORE_OUTAGE_S", 0.2)
    record = kafka_record(seal(order(), "orders"), offset=0)
    consumer = fake_consumer(*[[record]] * 100)
    loop = ConsumerLoop(consumer, UnreachableStore(), SETTINGS, {OrderCreated: Handler(charge)}, lambda: None)
    with pytest.raises(StoreOutage):
        loop.run(stop)
    assert all(offset == 0 for _, offset in consumer.commits)  # never past the record it could not process
    assert not stop.is_set()  # it gave up long before the scripted polls ran out


def test_a_service_in_a_store_outage_leaves_the_group_and_joins_again_once_the_store_answers(monkeypatch):
    """The consumer is closed first (its partitions go to another replica), and a
    new one made only once the store answers: joining sooner, as the same static
    member, would take the partitions back into the outage."""
    said: list[str] = []
    answers = iter([False, False, True])

    class Loop:
        runs = 0

        def __init__(self, consumer, *args, **kwargs):
            pass

        def run(self, stop):
            Loop.runs += 1
            if Loop.runs == 1:
                raise StoreOutage("the store has failed every transaction for 5s")
            stop.set()

    class Consumer:
        def close(self):
            said.append("consumer closed")

    class Store:
        def query(self, sql):
            said.append("store asked")
            if not next(answers):
                raise StoreUnavailable("PostgreSQL cannot be reached (cut off)")

    class Relay:
        def wake(self):
            pass

    def make_consumer(settings, group, pace):
        said.append("consumer made")
        return Consumer()

    monkeypatch.setattr(service, "ConsumerLoop", Loop)
    monkeypatch.setattr(service, "make_consumer", make_consumer)
    monkeypatch.setattr(service, "STORE_RETRY_S", 0.01)
    running = service.Service.__new__(service.Service)  # without __init__'s logging, tracing and store set-up
    running.settings, running.handlers, running.pace = SETTINGS, {}, None
    running.stop, running.store, running.relay, running.crashed = threading.Event(), Store(), Relay(), False
    running._consume()
    assert said == ["consumer made", "consumer closed", *["store asked"] * 3, "consumer made", "consumer closed"]


def test_a_message_whose_statement_found_the_store_gone_fails_its_whole_batch(
    fake_consumer, kafka_record, store, stop, monkeypatch
):
    """Not a failure of that one message: the batch counts toward the outage, from the time its try began."""
    monkeypatch.setattr(consumer_loop, "STORE_OUTAGE_S", 0.2)

    def store_gone(event, tx):
        time.sleep(0.25)  # a statement on a dead link, given up by the client
        raise StoreUnavailable("PostgreSQL cannot be reached (connection timed out)")

    record = kafka_record(seal(order(), "orders"), offset=0)
    consumer = fake_consumer(*[[record]] * 100)
    loop = ConsumerLoop(consumer, store, SETTINGS, {OrderCreated: Handler(store_gone)}, lambda: None)
    with pytest.raises(StoreOutage):
        loop.run(stop)
    assert consumer.seeks == [(0, 0)]  # one try: it alone lasted longer than the outage allows
