"""billing: charges each order exactly once and emits PaymentCaptured."""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import Env, Settings, checked
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured

log = logging.getLogger("billing")


@dataclass(frozen=True)
class PriceTable:
    """Unit prices in minor currency units: one default, overridden per item."""

    default: int = 100
    by_item: dict[int, int] = field(default_factory=dict)

    def unit_price(self, item_id: int) -> int:
        return self.by_item.get(item_id, self.default)


def capture_payment(order: OrderCreated, prices: PriceTable, now: str) -> PaymentCaptured:
    return PaymentCaptured(orderId=order.orderId, amount=prices.unit_price(order.itemId) * order.qty, ts=now)


def handlers(prices: PriceTable, clock: Callable[[], str] = timestamp) -> dict[type, Handler]:
    def charge(order: OrderCreated, tx) -> list[PaymentCaptured]:
        payment = capture_payment(order, prices, clock())
        log.info("Billing processed %s", asdict(payment))
        return [payment]

    def skip(order: OrderCreated) -> None:
        log.info("Billing skipped duplicate OrderCreated for orderId %s", order.orderId)

    return {OrderCreated: Handler(charge, once_per=lambda order: order.orderId, on_duplicate=skip)}


def read_settings(env: Env) -> tuple[Settings, PriceTable]:
    prices = PriceTable(
        env.whole("UNIT_PRICE", 100, expected="a whole number of minor units"),
        env.whole_pairs("ITEM_PRICES", "itemId=unit price pairs separated by commas, such as '2=150,7=250'"),
    )
    return Settings.from_env("billing", env), prices


def main() -> None:
    settings, prices = checked(read_settings)
    Service(settings, handlers(prices)).run()
