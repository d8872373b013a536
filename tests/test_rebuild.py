"""make rebuild: the read model rebuilt from the records equals the one orders'
consumer built from them, and the switch puts rebuilt rows in place of those
that differ, on each store. No broker: the records are played to both."""

from opentelemetry import trace

from eventbus.consumer import ConsumerLoop
from eventbus.envelope import seal
from eventbus.outbox import Fence
from eventbus.settings import Settings
from eventbus.store.sqlite import SqliteStore
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from services.orders.placing import create_tables
from services.orders.read_model import READ_MODEL, create_read_model
from services.orders.rebuild import differences, follow, put_in_place, rows
from services.orders.service import HANDLERS

TRACER = trace.get_tracer("tests")
TS = "2026-12-06T10:00:00.000Z"
LATER = "2026-12-06T10:00:01.000Z"


def records(kafka_record) -> list:
    """One order's whole chain, a copy of its payment, a declined order and its
    email, an order that came in no trace, a poison message, and a dead letter
    sent back to billing."""
    events = [
        (OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts=TS), "orders"),
        (PaymentCaptured(orderId=1, amount=100, ts=TS), "billing"),
        (PaymentCaptured(orderId=1, amount=100, ts=LATER), "billing"),  # a second one: the first step seen wins
        (EmailSent(orderId=1, to="user1@test.com", ts=TS), "notifications"),
        (OrderCreated(orderId=2, userId=1, itemId=2, qty=900, ts=TS), "orders"),
        (PaymentDeclined(orderId=2, amount=90000, reason="above the credit limit", ts=TS), "billing"),
        (EmailSent(orderId=2, to="user1@test.com", ts=LATER, template="order_cancelled"), "notifications"),
    ]
    played = []
    for n, (event, source) in enumerate(events):
        with TRACER.start_as_current_span("publish"):  # as every event of ours is: it carries its trace
            played.append(kafka_record(seal(event, source), offset=n))
    untraced = OrderCreated(orderId=4, userId=1, itemId=2, qty=1, ts=TS)  # published by hand, in no trace
    played.append(kafka_record(seal(untraced, "orders"), offset=len(played)))
    poison = kafka_record(headers={"ce_type": b"OrderCreated"}, value=b"\x00", offset=len(played))
    elsewhere = seal(OrderCreated(orderId=3, userId=1, itemId=9, qty=1, ts=TS), "orders")
    sent_back = kafka_record(
        headers=elsewhere.headers | {"redrive_of": b"0@4", "dlq_service": b"billing"},
        key=elsewhere.key,
        value=elsewhere.value,
        offset=len(played) + 1,
    )
    return [*played, poison, sent_back]


def rebuilt_from(records: list, tmp_path) -> SqliteStore:
    fresh = SqliteStore(tmp_path / "rebuilt.db")
    create_read_model(fresh)
    fence = Fence()
    with fresh.transaction() as tx:
        for record in records:
            follow(tx, record, fence)
    return fresh


def test_the_rebuilt_read_model_equals_the_one_orders_consumer_built(
    store, fake_consumer, kafka_record, stop, tmp_path
):
    create_tables(store)
    played = records(kafka_record)
    ConsumerLoop(fake_consumer(played), store, Settings(service="orders"), HANDLERS, lambda: None).run(stop)
    fresh = rebuilt_from(played, tmp_path)
    for table in READ_MODEL:
        assert rows(fresh, table) == rows(store, table), table
    assert set(rows(fresh, "chain")) == {1, 2, 4}  # not the poison, nor what went back to billing
    assert rows(fresh, "chain")[4]["trace"] is None and rows(fresh, "chain")[1]["trace"]
    assert rows(fresh, "chain")[1]["paid"] == TS and rows(fresh, "saga")[2]["cancelEmailed"] == LATER


def test_the_switch_replaces_the_rows_that_differ_and_only_those(store, kafka_record, tmp_path):
    create_tables(store)
    fresh = rebuilt_from(records(kafka_record), tmp_path)
    rebuilt = rows(fresh, "chain")
    with store.transaction() as tx:
        tx.execute('INSERT INTO "chain" ("orderId", "created") VALUES (1, ?), (2, ?), (99, ?)', [LATER, TS, TS])
        tx.execute('UPDATE "chain" SET "paid" = ?, "amount" = ?, "emailed" = ? WHERE "orderId" = 2', [None, None, None])
    with store.transaction() as tx:
        tx.execute('UPDATE "chain" SET "trace" = ? WHERE "orderId" = 2', [rebuilt[2]["trace"]])
    live = rows(store, "chain")
    assert differences(live, rebuilt) == [1, 4, 99]  # order 2 equals, once its trace is the same
    with store.transaction() as tx:
        tx.hold(*READ_MODEL)
        put_in_place(tx, "chain", rebuilt, differences(live, rebuilt))
    assert rows(store, "chain") == rebuilt
