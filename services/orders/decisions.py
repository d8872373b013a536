"""orders' decisions, pure functions over what the store holds: which id a new
order gets, what a POST /orders does, what a cancel does, and which step of an
order's chain or saga an event shows. No I/O: tests/test_orders.py runs them alone."""

from collections.abc import Iterable
from dataclasses import dataclass

from eventbus import contracts
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded

# The largest order id, from the contract: the largest integer JSON carries exactly (2^53 - 1).
MAX_ORDER_ID: int = contracts.schema("CreateOrderRequest")["properties"]["orderId"]["maximum"]


@dataclass(frozen=True)
class Decision:
    """What to do with a POST /orders: `created`, `replayed`, `conflict`, or
    `exhausted` when no id is left to number a new order with."""

    outcome: str
    order: OrderCreated | None = None


def next_order_id(last: int, taken: Iterable[int], maximum: int) -> int | None:
    """The automatic id after `last` (the previous one): the first id that no
    client has taken, so a client's id never moves the sequence. `taken` are the
    ids above `last` in ascending order; it is read only up to the first gap.
    None when every id up to `maximum` is taken."""
    candidate = last + 1
    for order_id in taken:
        if order_id != candidate:
            break
        candidate += 1
    return candidate if candidate <= maximum else None


def decide(request: CreateOrderRequest, existing: OrderCreated | None, order_id: int | None, now: str) -> Decision:
    """A new id creates the order; the same id with the same fields replays it;
    the same id with other fields is a conflict; no id at all is `exhausted`."""
    if existing is None and order_id is None:
        return Decision("exhausted")
    if existing is None:
        order = OrderCreated(orderId=order_id, userId=request.userId, itemId=request.itemId, qty=request.qty, ts=now)
        return Decision("created", order)
    same = (existing.userId, existing.itemId, existing.qty) == (request.userId, request.itemId, request.qty)
    return Decision("replayed", existing) if same else Decision("conflict", existing)


def decide_cancel(exists: bool, cancelled_before: bool) -> str:
    """What a cancel does: `unknown` order, `cancelled` now (OrderCancelled goes out), or `already` cancelled."""
    if not exists:
        return "unknown"
    return "already" if cancelled_before else "cancelled"


def chain_step(event: OrderCreated | PaymentCaptured | EmailSent) -> dict:
    """The columns of the order's chain status that `event` fills in."""
    if isinstance(event, OrderCreated):
        return {"created": event.ts}
    if isinstance(event, PaymentCaptured):
        return {"paid": event.ts, "amount": event.amount}
    return {"emailed": event.ts, "to": event.to}


def saga_step(event: PaymentDeclined | PaymentRefunded | EmailSent) -> dict:
    """The columns of the order's saga (what happened after the happy path stopped) that `event` fills in."""
    if isinstance(event, PaymentDeclined):
        return {"declined": event.ts}
    if isinstance(event, PaymentRefunded):
        return {"refunded": event.ts, "refund": event.amount}
    return {"cancelEmailed" if event.template == "order_cancelled" else "refundEmailed": event.ts}
