"""billing: charges each order exactly once and emits PaymentCaptured."""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import Settings, env, env_int
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured

log = logging.getLogger("billing")


@dataclass(frozen=True)
class PriceTable:
    """Unit prices in minor currency units: one default, overridden per item."""

    default: int = 100
    by_item: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, default: int, overrides: str) -> "PriceTable":
        """`overrides` looks like "2=150,7=250" (itemId=unit price)."""
        pairs = (pair.split("=") for pair in overrides.split(",") if pair.strip())
        return cls(default, {int(item): int(price) for item, price in pairs})

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


def main() -> None:
    prices = PriceTable.parse(env_int("UNIT_PRICE", 100), env("ITEM_PRICES", ""))
    Service(Settings.from_env("billing"), handlers(prices)).run()
