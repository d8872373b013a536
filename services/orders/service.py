"""orders: accepts orders over HTTP, emits OrderCreated, and follows each order
along the chain (created, paid, emailed) from the events on the topic."""

import logging
from dataclasses import asdict, dataclass

import waitress
from sqlite_utils import Database

from eventbus import outbox
from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import Settings, env, env_int
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from services.orders.api import make_app

log = logging.getLogger("orders")


@dataclass(frozen=True)
class Decision:
    """What to do with a POST /orders: `created`, `replayed` or `conflict`."""

    outcome: str
    order: OrderCreated | None = None


def decide(request: CreateOrderRequest, existing: OrderCreated | None, order_id: int, now: str) -> Decision:
    """A new id creates the order; the same id with the same fields replays it;
    the same id with other fields is a conflict."""
    if existing is None:
        order = OrderCreated(orderId=order_id, userId=request.userId, itemId=request.itemId, qty=request.qty, ts=now)
        return Decision("created", order)
    same = (existing.userId, existing.itemId, existing.qty) == (request.userId, request.itemId, request.qty)
    return Decision("replayed", existing) if same else Decision("conflict", existing)


def create_tables(db: Database) -> None:
    db["orders"].create(
        {"orderId": int, "userId": int, "itemId": int, "qty": int, "ts": str}, pk="orderId", if_not_exists=True
    )
    db["chain"].create(
        {"orderId": int, "created": str, "paid": str, "amount": int, "emailed": str, "to": str},
        pk="orderId",
        if_not_exists=True,
    )


def place_order(service: Service, request: CreateOrderRequest) -> Decision:
    """Store the order and queue its OrderCreated in one transaction."""
    with service.store.transaction() as tx:
        existing = None
        if request.orderId is not None:
            row = next(tx.query("SELECT * FROM orders WHERE orderId = ?", [request.orderId]), None)
            existing = OrderCreated(**row) if row else None
        order_id = request.orderId or _next_order_id(tx)
        decision = decide(request, existing, order_id, timestamp())
        if decision.outcome == "created":
            tx["orders"].insert(vars(decision.order), alter=True)  # a field the contract gained gets a column
        if decision.outcome != "conflict":
            service.publish(tx, decision.order)
    service.relay.wake()
    if decision.outcome != "conflict":
        log.info("Order %s %s", decision.outcome, asdict(decision.order))
    return decision


def _next_order_id(tx: Database) -> int:
    return tx.execute("SELECT COALESCE(MAX(orderId), 0) + 1 FROM orders").fetchone()[0]


def find_order(service: Service, order_id: int) -> dict | None:
    """The order and how far along the chain it is."""
    return next(
        service.store.db().query(
            "SELECT o.*, c.created, c.paid, c.amount, c.emailed, c.[to] FROM orders o"
            " LEFT JOIN chain c USING (orderId) WHERE o.orderId = ?",
            [order_id],
        ),
        None,
    )


def chain_step(event: OrderCreated | PaymentCaptured | EmailSent) -> dict:
    """The columns of the order's chain status that `event` fills in."""
    if isinstance(event, OrderCreated):
        return {"created": event.ts}
    if isinstance(event, PaymentCaptured):
        return {"paid": event.ts, "amount": event.amount}
    return {"emailed": event.ts, "to": event.to}


def track(event: OrderCreated | PaymentCaptured | EmailSent, tx: Database) -> list:
    """Record the step of the chain that `event` shows; the first one seen wins."""
    step = chain_step(event)
    tx.execute("INSERT OR IGNORE INTO chain (orderId) VALUES (?)", [event.orderId])
    columns = ", ".join(f"[{name}] = COALESCE([{name}], ?)" for name in step)
    tx.execute(f"UPDATE chain SET {columns} WHERE orderId = ?", [*step.values(), event.orderId])
    return []


HANDLERS = {event_type: Handler(track) for event_type in (OrderCreated, PaymentCaptured, EmailSent)}


def main() -> None:
    service = Service(Settings.from_env("orders"), HANDLERS, create_tables)
    app = make_app(
        place=lambda request: place_order(service, request),
        find=lambda order_id: find_order(service, order_id),
        pending=lambda: outbox.pending(service.store.db()),
        max_body_bytes=env_int("MAX_BODY_BYTES", 16 * 1024),
    )
    server = waitress.create_server(
        app, host=env("HTTP_HOST", "127.0.0.1"), port=env_int("HTTP_PORT", 5002), threads=4, ident="orders"
    )
    service.run(serve=server.run, close=server.close)
