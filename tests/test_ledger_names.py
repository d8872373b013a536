"""The ledger records each key under the name a handler declares, so the keys a
running version recorded still count after its code changes.

tests/data/stores_before_named_keys/ holds the SQLite stores of billing,
notifications and orders as main at f894279 wrote them, when the consumer loop
named keys after the handler's function ("billing.charge" from `charge`). They
were written by a script, not kept, run in a checkout of that commit: it placed
orders 1, 2 and 3 (qty 1, 2 and 600) with orders' place_order, cancelled order
2 with cancel_order, then delivered every outbox row to the three services'
ConsumerLoops, over the FakeConsumer of tests/conftest.py, until nothing new
was queued: 1 paid and emailed, 2 paid, cancelled and refunded, 3 declined and
cancelled. Then it folded each WAL into its file. The mailbox it wrote is left
out: a fresh one shows any email sent again."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from eventbus import ledger
from eventbus.consumer import ConsumerLoop, Handler
from eventbus.envelope import seal
from eventbus.settings import Settings
from eventbus.store import Store, open_store
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded
from services.billing import service as billing
from services.notifications import service as notifications
from services.orders import service as orders

BEFORE = Path(__file__).parent / "data" / "stores_before_named_keys"
TS = "2026-12-06T16:15:03.913Z"
DECLINED = "amount 60000 is above the credit limit of 50000"
TOPIC = [  # what the three services published for those orders, each event new (a new id)
    OrderCreated(orderId=1, userId=7, itemId=2, qty=1, ts=TS),
    OrderCreated(orderId=2, userId=7, itemId=2, qty=2, ts=TS),
    OrderCreated(orderId=3, userId=7, itemId=2, qty=600, ts=TS),
    OrderCancelled(orderId=2, reason="cancelled by the customer", ts=TS),
    PaymentCaptured(orderId=1, amount=100, ts=TS),
    PaymentCaptured(orderId=2, amount=200, ts=TS),
    PaymentDeclined(orderId=3, amount=60000, reason=DECLINED, ts=TS),
    PaymentRefunded(orderId=2, amount=200, ts=TS),
    OrderCancelled(orderId=3, reason=DECLINED, ts=TS),
]


def handler_tables(mailbox: Store) -> dict[str, dict[type, Handler]]:
    return {
        "billing": billing.handlers(billing.PriceTable()),
        "notifications": notifications.handlers(notifications.LogMailer(mailbox), "test.com"),
        "orders": orders.HANDLERS,
    }


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A copy of the stores, to write to."""
    shutil.copytree(BEFORE, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def mailbox(tmp_path) -> Store:
    store = open_store(Settings(service="notifications", data_dir=tmp_path), "mailbox")
    yield store
    store.close()


def everything(store: Store) -> dict[str, list[dict]]:
    tables = store.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return {table["name"]: store.query(f'SELECT * FROM "{table["name"]}" ORDER BY 1, 2') for table in tables}


def test_the_names_handlers_declare_are_the_names_the_old_stores_hold(data_dir, mailbox):
    for service, table in handler_tables(mailbox).items():
        store = open_store(Settings(service=service, data_dir=data_dir))
        held = {row["handler"] for row in store.query("SELECT DISTINCT handler FROM processed")}
        store.close()
        assert {handler.ledger_name for handler in table.values() if handler.once_per} == held


@pytest.mark.parametrize("service", ["billing", "notifications", "orders"])
def test_replaying_what_the_old_version_processed_charges_and_emails_nothing_again(
    service, data_dir, mailbox, stop, fake_consumer, kafka_record, spans
):
    handlers = handler_tables(mailbox)[service]
    settings = Settings(service=service, data_dir=data_dir)
    store = open_store(settings)
    before = everything(store)
    records = [kafka_record(seal(event, "replay"), offset=n) for n, event in enumerate(TOPIC)]
    ConsumerLoop(fake_consumer(records), store, settings, handlers, lambda: None).run(stop)

    ours = [handlers[type(event)] for event in TOPIC if type(event) in handlers]
    outcomes = [span.attributes["outcome"] for span in spans() if span.kind == SpanKind.CONSUMER]
    assert outcomes == ["duplicate" if handler.once_per else "handled" for handler in ours]
    assert everything(store) == before  # no charge, refund, cancel, ledger key or outgoing event more
    assert mailbox.query('SELECT * FROM "emails"') == []
    store.close()


def test_renaming_a_handlers_function_keeps_its_ledger_name(store, stop, fake_consumer, kafka_record):
    billing.create_tables(store)
    charge = billing.handlers(billing.PriceTable())[OrderCreated]

    def renamed(order: OrderCreated, tx) -> list:
        return charge.handle(order, tx)

    loop = ConsumerLoop(
        fake_consumer([kafka_record(seal(TOPIC[0], "orders"))]),
        store,
        Settings(service="billing"),
        {OrderCreated: replace(charge, handle=renamed)},
        lambda: None,
    )
    loop.run(stop)
    assert ledger.count(store, "billing.charge") == 1


@pytest.mark.parametrize("named", [{"once_per": lambda event: event.orderId}, {"ledger_name": "billing.charge"}])
def test_a_key_without_a_name_or_a_name_without_a_key_is_refused_at_once(named):
    with pytest.raises(ValueError, match="go together"):
        Handler(lambda event, tx: [], **named)
