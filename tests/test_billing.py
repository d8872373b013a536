"""billing charges unit price × qty, once per order, or declines an order above
the credit limit; it refunds the charge of a cancelled order, once, and only a
charge it made."""

import logging

import pytest

from eventbus.consumer import Rejected
from eventbus.settings import Env
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded
from services.billing.service import (
    CREDIT_LIMIT,
    PriceTable,
    capture_payment,
    create_tables,
    decide_payment,
    decide_refund,
    handlers,
    read_settings,
)

TS = "2026-11-27T10:00:00.000Z"
NOW = "2026-11-27T10:00:01.000Z"
CANCEL = OrderCancelled(orderId=1, reason="cancelled by the customer", ts=TS)


def order(order_id: int = 1, item_id: int = 2, qty: int = 1) -> OrderCreated:
    return OrderCreated(orderId=order_id, userId=1, itemId=item_id, qty=qty, ts=TS)


def test_the_charge_is_unit_price_times_quantity():
    prices = PriceTable(default=100, by_item={7: 250})
    assert capture_payment(order(order_id=4, item_id=7, qty=2), prices, NOW) == PaymentCaptured(4, 500, NOW)


def test_the_briefs_example_order_costs_100():
    assert capture_payment(order(), PriceTable(), NOW).amount == 100


def test_prices_are_read_from_unit_price_and_item_equals_price_pairs():
    _, prices, _ = read_settings(Env({"UNIT_PRICE": "90", "ITEM_PRICES": "2=150, 7=250"}))
    assert (prices.unit_price(2), prices.unit_price(7), prices.unit_price(3)) == (150, 250, 90)


def test_with_only_priced_items_an_item_without_a_price_is_rejected_naming_it():
    _, prices, _ = read_settings(Env({"ONLY_PRICED_ITEMS": "1", "ITEM_PRICES": "2=150"}))
    assert capture_payment(order(item_id=2), prices, NOW).amount == 150
    with pytest.raises(Rejected, match="item 9 has no price"):
        capture_payment(order(item_id=9), prices, NOW)


def test_no_overrides_means_the_default_price_for_every_item():
    assert read_settings(Env({}))[1] == PriceTable(default=100, by_item={})


def test_the_credit_limit_is_50000_minor_units_unless_set():
    assert read_settings(Env({}))[2] == CREDIT_LIMIT == 50_000
    assert read_settings(Env({"CREDIT_LIMIT": "700"}))[2] == 700


# --- decline or charge, refund or not: pure decisions ---------------------------


@pytest.mark.parametrize("qty, charged", [(1, True), (499, True), (500, True), (501, False), (600, False)])
def test_an_order_is_charged_up_to_the_credit_limit_and_declined_above_it(qty, charged):
    decision = decide_payment(order(qty=qty), PriceTable(), 50_000, NOW)
    assert isinstance(decision, PaymentCaptured) is charged
    assert decision.amount == qty * 100


def test_a_declined_payment_says_why():
    assert decide_payment(order(qty=600), PriceTable(), 50_000, NOW) == PaymentDeclined(
        orderId=1, amount=60_000, reason="amount 60000 is above the credit limit of 50000", ts=NOW
    )


@pytest.mark.parametrize(
    "charged, refunded, expected",
    [
        (100, False, PaymentRefunded(orderId=1, amount=100, ts=NOW)),  # charged: all of it goes back
        (100, True, None),  # never two refunds
        (None, False, None),  # never a refund without a charge (declined, or cancelled first)
    ],
)
def test_a_cancelled_order_is_refunded_only_when_charged_and_not_yet_refunded(charged, refunded, expected):
    assert decide_refund(CANCEL, charged, refunded, NOW) == expected


# --- the handlers on a real store -------------------------------------------------


@pytest.fixture
def billing(store):
    create_tables(store)
    return handlers(PriceTable(), credit_limit=50_000, clock=lambda: NOW)


def run(store, handler, event):
    with store.transaction() as tx:
        return handler.handle(event, tx)


def money(store, order_id: int = 1) -> int:
    """Charges minus refunds of an order."""
    charged = store.query('SELECT COALESCE(SUM("amount"), 0) AS n FROM "charges" WHERE "orderId" = ?', [order_id])
    refunded = store.query('SELECT COALESCE(SUM("amount"), 0) AS n FROM "refunds" WHERE "orderId" = ?', [order_id])
    return charged[0]["n"] - refunded[0]["n"]


def test_billing_charges_and_cancels_once_per_order_id(billing):
    assert billing[OrderCreated].once_per(order(order_id=9)) == 9
    assert billing[OrderCancelled].once_per(OrderCancelled(orderId=9, reason="r", ts=TS)) == 9


def test_billing_logs_what_it_processed_and_what_it_skipped(store, billing, caplog):
    with caplog.at_level(logging.INFO, logger="billing"):
        assert run(store, billing[OrderCreated], order()) == [PaymentCaptured(1, 100, NOW)]
        billing[OrderCreated].on_duplicate(order())
    assert caplog.messages == [
        f"Billing processed {{'orderId': 1, 'amount': 100, 'ts': '{NOW}'}}",
        "Billing skipped duplicate OrderCreated for orderId 1",
    ]


def test_an_order_above_the_limit_is_declined_and_logged_not_charged(store, billing, caplog):
    with caplog.at_level(logging.INFO, logger="billing"):
        [declined] = run(store, billing[OrderCreated], order(qty=600))
    assert isinstance(declined, PaymentDeclined)
    assert caplog.messages == [
        f"Billing declined {{'orderId': 1, 'amount': 60000, "
        f"'reason': 'amount 60000 is above the credit limit of 50000', 'ts': '{NOW}'}}"
    ]
    assert money(store) == 0


def test_a_charged_order_cancelled_is_refunded_all_of_its_charge(store, billing, caplog):
    run(store, billing[OrderCreated], order(qty=3))
    with caplog.at_level(logging.INFO, logger="billing"):
        assert run(store, billing[OrderCancelled], CANCEL) == [PaymentRefunded(orderId=1, amount=300, ts=NOW)]
    assert caplog.messages == [f"Billing refunded {{'orderId': 1, 'amount': 300, 'ts': '{NOW}'}}"]
    assert money(store) == 0


def test_a_second_cancel_refunds_nothing(store, billing):
    run(store, billing[OrderCreated], order())
    run(store, billing[OrderCancelled], CANCEL)
    assert run(store, billing[OrderCancelled], CANCEL) == []
    assert money(store) == 0


def test_a_declined_order_cancelled_refunds_nothing(store, billing):
    run(store, billing[OrderCreated], order(qty=600))
    assert run(store, billing[OrderCancelled], CANCEL) == []
    assert money(store) == 0


def test_an_order_cancelled_before_its_payment_is_never_charged(store, billing, caplog):
    assert run(store, billing[OrderCancelled], CANCEL) == []
    with caplog.at_level(logging.INFO, logger="billing"):
        assert run(store, billing[OrderCreated], order()) == []
    assert caplog.messages == ["Billing skipped OrderCreated of cancelled order 1"]
    assert money(store) == 0
