"""billing charges unit price × qty, once per order."""

import logging

from eventbus.settings import Env
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from services.billing.service import PriceTable, capture_payment, handlers, read_settings

TS = "2026-11-27T10:00:00.000Z"
NOW = "2026-11-27T10:00:01.000Z"


def order(order_id: int = 1, item_id: int = 2, qty: int = 1) -> OrderCreated:
    return OrderCreated(orderId=order_id, userId=1, itemId=item_id, qty=qty, ts=TS)


def test_the_charge_is_unit_price_times_quantity():
    prices = PriceTable(default=100, by_item={7: 250})
    assert capture_payment(order(order_id=4, item_id=7, qty=2), prices, NOW) == PaymentCaptured(4, 500, NOW)


def test_the_briefs_example_order_costs_100():
    assert capture_payment(order(), PriceTable(), NOW).amount == 100


def test_prices_are_read_from_unit_price_and_item_equals_price_pairs():
    _, prices = read_settings(Env({"UNIT_PRICE": "90", "ITEM_PRICES": "2=150, 7=250"}))
    assert (prices.unit_price(2), prices.unit_price(7), prices.unit_price(3)) == (150, 250, 90)


def test_no_overrides_means_the_default_price_for_every_item():
    assert read_settings(Env({}))[1] == PriceTable(default=100, by_item={})


def test_billing_charges_once_per_order_id():
    handler = handlers(PriceTable())[OrderCreated]
    assert handler.once_per(order(order_id=9)) == 9


def test_billing_logs_what_it_processed_and_what_it_skipped(caplog):
    handler = handlers(PriceTable(), clock=lambda: NOW)[OrderCreated]
    with caplog.at_level(logging.INFO, logger="billing"):
        assert handler.handle(order(), None) == [PaymentCaptured(1, 100, NOW)]
        handler.on_duplicate(order())
    assert caplog.messages == [
        f"Billing processed {{'orderId': 1, 'amount': 100, 'ts': '{NOW}'}}",
        "Billing skipped duplicate OrderCreated for orderId 1",
    ]
