"""billing: charges each order exactly once and emits PaymentCaptured, or
declines an order above the credit limit (PaymentDeclined); refunds the charge
of a cancelled order exactly once (PaymentRefunded).

Its tables are the money ledger: `charges` (one row per order charged) and
`refunds` (one per order refunded), each keyed by orderId, so an order is never
charged or refunded twice; `cancelled` keeps the orders cancelled before any
charge, which are then never charged. Every event of one order is keyed by its
orderId and so read in order: OrderCreated always comes before its
OrderCancelled, and a cancel that finds no charge (a declined order, say) is
recorded, refunds nothing and stops any later charge."""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from eventbus.consumer import Handler, Rejected
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import Env, Settings, checked
from eventbus.store import Store, Transaction
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded

log = logging.getLogger("billing")
CREDIT_LIMIT = 50_000  # minor units


@dataclass(frozen=True)
class PriceTable:
    """Unit prices in minor currency units: one default, overridden per item.
    With no default, only the items listed have a price."""

    default: int | None = 100
    by_item: dict[int, int] = field(default_factory=dict)

    def unit_price(self, item_id: int) -> int | None:
        return self.by_item.get(item_id, self.default)


def capture_payment(order: OrderCreated, prices: PriceTable, now: str) -> PaymentCaptured:
    """The charge for the order; Rejected (it is set aside, to be sent back once
    the item has a price: make redrive) for an item without a price."""
    unit_price = prices.unit_price(order.itemId)
    if unit_price is None:
        raise Rejected(f"item {order.itemId} has no price: ITEM_PRICES lists none for it and ONLY_PRICED_ITEMS=1")
    return PaymentCaptured(orderId=order.orderId, amount=unit_price * order.qty, ts=now)


def decide_payment(
    order: OrderCreated, prices: PriceTable, credit_limit: int, now: str
) -> PaymentCaptured | PaymentDeclined:
    """Charge the order, or decline it when its amount is above the credit limit (the limit itself is charged)."""
    payment = capture_payment(order, prices, now)
    if payment.amount <= credit_limit:
        return payment
    reason = f"amount {payment.amount} is above the credit limit of {credit_limit}"
    return PaymentDeclined(orderId=order.orderId, amount=payment.amount, reason=reason, ts=now)


def decide_refund(cancel: OrderCancelled, charged: int | None, refunded: bool, now: str) -> PaymentRefunded | None:
    """Refund all of the charge of a cancelled order, only if it was charged and not refunded yet."""
    if charged is None or refunded:
        return None
    return PaymentRefunded(orderId=cancel.orderId, amount=charged, ts=now)


def create_tables(store: Store) -> None:
    store.create_table("charges", {"orderId": int, "amount": int, "chargedAt": str}, pk="orderId")
    store.create_table("refunds", {"orderId": int, "amount": int, "refundedAt": str}, pk="orderId")
    store.create_table("cancelled", {"orderId": int, "cancelledAt": str}, pk="orderId")


def handlers(
    prices: PriceTable, credit_limit: int = CREDIT_LIMIT, clock: Callable[[], str] = timestamp
) -> dict[type, Handler]:
    def charge(order: OrderCreated, tx: Transaction) -> list[PaymentCaptured | PaymentDeclined]:
        if tx.execute('SELECT 1 FROM "cancelled" WHERE "orderId" = ?', [order.orderId]).fetchone():
            log.info("Billing skipped OrderCreated of cancelled order %s", order.orderId)
            return []
        payment = decide_payment(order, prices, credit_limit, clock())
        if isinstance(payment, PaymentDeclined):
            log.info("Billing declined %s", asdict(payment))
            return [payment]
        tx.execute(
            'INSERT INTO "charges" ("orderId", "amount", "chargedAt") VALUES (?, ?, ?)'
            ' ON CONFLICT ("orderId") DO NOTHING',
            [payment.orderId, payment.amount, payment.ts],
        )
        log.info("Billing processed %s", asdict(payment))
        return [payment]

    def refund(cancel: OrderCancelled, tx: Transaction) -> list[PaymentRefunded]:
        now = clock()
        row = tx.execute('SELECT "amount" FROM "charges" WHERE "orderId" = ?', [cancel.orderId]).fetchone()
        refunded = tx.execute('SELECT 1 FROM "refunds" WHERE "orderId" = ?', [cancel.orderId]).fetchone()
        back = decide_refund(cancel, row[0] if row else None, refunded is not None, now)
        if back is None:
            tx.execute(
                'INSERT INTO "cancelled" ("orderId", "cancelledAt") VALUES (?, ?) ON CONFLICT ("orderId") DO NOTHING',
                [cancel.orderId, now],
            )
            log.info("Billing: order %s cancelled, nothing charged to refund", cancel.orderId)
            return []
        tx.execute(
            'INSERT INTO "refunds" ("orderId", "amount", "refundedAt") VALUES (?, ?, ?)',
            [back.orderId, back.amount, back.ts],
        )
        log.info("Billing refunded %s", asdict(back))
        return [back]

    def skip(order: OrderCreated) -> None:
        log.info("Billing skipped duplicate OrderCreated for orderId %s", order.orderId)

    def skip_cancel(cancel: OrderCancelled) -> None:
        log.info("Billing skipped duplicate OrderCancelled for orderId %s", cancel.orderId)

    return {
        OrderCreated: Handler(
            charge, once_per=lambda order: order.orderId, ledger_name="billing.charge", on_duplicate=skip
        ),
        OrderCancelled: Handler(
            refund, once_per=lambda cancel: cancel.orderId, ledger_name="billing.refund", on_duplicate=skip_cancel
        ),
    }


def read_settings(env: Env) -> tuple[Settings, PriceTable, int]:
    unit_price = env.whole("UNIT_PRICE", 100, expected="a whole number of minor units")
    only_listed = (
        env.whole("ONLY_PRICED_ITEMS", 0, 0, 1, "1 (an item ITEM_PRICES does not list has no price) or 0") == 1
    )
    prices = PriceTable(
        None if only_listed else unit_price,
        env.whole_pairs("ITEM_PRICES", "itemId=unit price pairs separated by commas, such as '2=150,7=250'"),
    )
    credit_limit = env.whole("CREDIT_LIMIT", CREDIT_LIMIT, expected="a whole number of minor units")
    return Settings.from_env("billing", env), prices, credit_limit


def main() -> None:
    settings, prices, credit_limit = checked(read_settings)
    Service(settings, handlers(prices, credit_limit), create_tables).run()
