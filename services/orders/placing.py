"""orders' own tables: an order stored with its OrderCreated in one
transaction, numbered when the client gave no id, and cancelled once."""

import json
import logging
import time
from dataclasses import asdict

from eventbus import contracts
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.store import Store, StoreUnavailable, Transaction
from generated.create_order_request import CreateOrderRequest
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from services.orders.decisions import MAX_ORDER_ID, Decision, decide, decide_cancel, next_order_id
from services.orders.read_model import create_read_model, find_order

log = logging.getLogger("orders")
CUSTOMER_CANCELLED = "cancelled by the customer"


def create_tables(store: Store) -> None:
    """`payload` keeps the whole OrderCreated, with any field the contract
    gained since the columns were chosen; the columns are what queries use."""
    store.create_table(
        "orders", {"orderId": int, "userId": int, "itemId": int, "qty": int, "ts": str, "payload": str}, pk="orderId"
    )
    store.create_table("sequence", {"name": str, "last": int}, pk="name")
    store.create_table("cancellations", {"orderId": int, "reason": str, "cancelledAt": str}, pk="orderId")
    create_read_model(store)


def place_order(
    service: Service, request: CreateOrderRequest, max_order_id: int = MAX_ORDER_ID, deadline: float | None = None
) -> Decision:
    """Store the order and queue its OrderCreated in one transaction.

    Orders processes may share the store (one SQLite file on a host, or one
    PostgreSQL database across hosts). Automatic ids come from the `sequence`
    row, which the first statement locks until commit, so numbering is one
    after the other. An insert that meets the same id, taken meanwhile by a
    client's order or by a concurrent POST of the same id, inserts nothing:
    the id is then read back and the order replayed, refused, or renumbered.
    Past `deadline` (time.monotonic()) the client was told 503: roll back."""
    with service.store.transaction() as tx:
        decision = _decide_and_insert(tx, request, max_order_id)
        if decision.outcome in ("created", "replayed"):
            service.publish(tx, decision.order)
        if deadline is not None and time.monotonic() > deadline:
            raise StoreUnavailable("the database answered too late; the order was not stored")
    service.relay.wake()
    if decision.outcome in ("created", "replayed"):
        log.info("Order %s %s", decision.outcome, asdict(decision.order))
    elif decision.outcome == "exhausted":
        log.error("No order id left: every id up to %d is taken", max_order_id)
    return decision


def _decide_and_insert(tx: Transaction, request: CreateOrderRequest, max_order_id: int) -> Decision:
    while True:
        order_id = request.orderId or _take_next_order_id(tx, max_order_id)
        existing = _stored_order(tx, request.orderId) if request.orderId is not None else None
        decision = decide(request, existing, order_id, timestamp())
        if decision.outcome != "created" or _insert_order(tx, decision.order):
            return decision


def _insert_order(tx: Transaction, order: OrderCreated) -> bool:
    """False when the id was taken meanwhile (nothing inserted)."""
    return (
        tx.execute(
            'INSERT INTO orders ("orderId", "userId", "itemId", qty, ts, payload) VALUES (?, ?, ?, ?, ?, ?)'
            ' ON CONFLICT ("orderId") DO NOTHING',
            [order.orderId, order.userId, order.itemId, order.qty, order.ts, json.dumps(contracts.to_payload(order))],
        ).rowcount
        == 1
    )


def _stored_order(tx: Transaction, order_id: int) -> OrderCreated | None:
    row = tx.execute('SELECT payload FROM orders WHERE "orderId" = ?', [order_id]).fetchone()
    return OrderCreated(**json.loads(row[0])) if row else None


def _take_next_order_id(tx: Transaction, maximum: int) -> int | None:
    (last,) = tx.execute(
        "INSERT INTO sequence (name, last) VALUES ('orderId', 0)"
        " ON CONFLICT (name) DO UPDATE SET last = sequence.last RETURNING last"
    ).fetchone()
    above = tx.execute('SELECT "orderId" FROM orders WHERE "orderId" > ? ORDER BY "orderId"', [last]).fetchall()
    order_id = next_order_id(last, (taken for (taken,) in above), maximum)
    if order_id is not None:
        tx.execute("UPDATE sequence SET last = ? WHERE name = 'orderId'", [order_id])
    return order_id


def cancel(tx: Transaction, order_id: int, reason: str, now: str) -> tuple[str, OrderCancelled | None]:
    """Cancel the order inside `tx`: the outcome (see decide_cancel) and the
    OrderCancelled to publish, once: the cancellation's primary key lets one
    caller through, whoever comes second."""
    exists = tx.execute('SELECT 1 FROM "orders" WHERE "orderId" = ?', [order_id]).fetchone() is not None
    insert = (
        'INSERT INTO "cancellations" ("orderId", "reason", "cancelledAt") VALUES (?, ?, ?)'
        ' ON CONFLICT ("orderId") DO NOTHING'
    )
    new = exists and tx.execute(insert, [order_id, reason, now]).rowcount == 1
    outcome = decide_cancel(exists, cancelled_before=exists and not new)
    if outcome != "cancelled":
        return outcome, None
    cancelled = OrderCancelled(orderId=order_id, reason=reason, ts=now)
    log.info("Order cancelled %s", asdict(cancelled))
    return outcome, cancelled


def cancel_order(service: Service, order_id: int) -> tuple[str, dict | None]:
    """A customer's cancel: its outcome (see decide_cancel) and the order as it is now."""
    with service.store.transaction() as tx:
        outcome, cancelled = cancel(tx, order_id, CUSTOMER_CANCELLED, timestamp())
        if cancelled:
            service.publish(tx, cancelled)
    service.relay.wake()
    return outcome, find_order(service, order_id)
