"""orders: accepts orders over HTTP, emits OrderCreated, and follows each order
along the chain (created, paid, emailed) from the events on the topic."""

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import waitress
from sqlite_utils import Database

from eventbus import contracts, outbox, tracing
from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import HOST, IPV6, URL, Env, Settings, checked
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from services.orders.api import make_app

log = logging.getLogger("orders")
# An automatic id must be one the API takes back, to replay the order.
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


def create_tables(db: Database) -> None:
    db["orders"].create(
        {"orderId": int, "userId": int, "itemId": int, "qty": int, "ts": str}, pk="orderId", if_not_exists=True
    )
    db["chain"].create(
        {
            "orderId": int,
            "created": str,
            "paid": str,
            "amount": int,
            "emailed": str,
            "to": str,
            "trace": str,
        },
        pk="orderId",
        transform=True,  # adds the columns a data folder from an older version lacks
    )
    db["sequence"].create({"name": str, "last": int}, pk="name", if_not_exists=True)


def place_order(service: Service, request: CreateOrderRequest, max_order_id: int = MAX_ORDER_ID) -> Decision:
    """Store the order and queue its OrderCreated in one transaction. The
    transaction holds SQLite's write lock from its start, so concurrent requests
    (and processes sharing the file) number their orders one after the other."""
    with service.store.transaction() as tx:
        existing = None
        if request.orderId is not None:
            row = next(tx.query("SELECT * FROM orders WHERE orderId = ?", [request.orderId]), None)
            existing = OrderCreated(**row) if row else None
        order_id = request.orderId or _take_next_order_id(tx, max_order_id)
        decision = decide(request, existing, order_id, timestamp())
        if decision.outcome == "created":
            tx["orders"].insert(vars(decision.order), alter=True)  # a field the contract gained gets a column
        if decision.outcome in ("created", "replayed"):
            service.publish(tx, decision.order)
    service.relay.wake()
    if decision.outcome in ("created", "replayed"):
        log.info("Order %s %s", decision.outcome, asdict(decision.order))
    elif decision.outcome == "exhausted":
        log.error("No order id left: every id up to %d is taken", max_order_id)
    return decision


def _take_next_order_id(tx: Database, maximum: int) -> int | None:
    row = next(tx.query("SELECT last FROM sequence WHERE name = 'orderId'"), None)
    last = row["last"] if row else 0
    above = tx.execute("SELECT orderId FROM orders WHERE orderId > ? ORDER BY orderId", [last])
    order_id = next_order_id(last, (taken for (taken,) in above), maximum)
    above.close()
    if order_id is not None:
        tx.execute("INSERT OR REPLACE INTO sequence (name, last) VALUES ('orderId', ?)", [order_id])
    return order_id


ORDER_WITH_CHAIN = (
    "SELECT o.*, c.created, c.paid, c.amount, c.emailed, c.[to], c.trace"
    " FROM orders o LEFT JOIN chain c USING (orderId)"
)


def find_order(service: Service, order_id: int) -> dict | None:
    """The order and how far along the chain it is."""
    return next(service.store.db().query(f"{ORDER_WITH_CHAIN} WHERE o.orderId = ?", [order_id]), None)


def latest_orders(service: Service, limit: int) -> list[dict]:
    """The orders placed last, newest first, each with its chain and `onTopic`:
    when Kafka acknowledged its first OrderCreated, which the outbox keeps."""
    on_topic = "SELECT MIN(sent_at) FROM outbox WHERE topic = ? AND key = CAST(CAST(latest.orderId AS TEXT) AS BLOB)"
    return list(
        service.store.db().query(
            f"SELECT *, ({on_topic}) AS onTopic FROM ({ORDER_WITH_CHAIN} ORDER BY o.ts DESC, o.orderId DESC LIMIT ?)"
            " AS latest",
            [service.settings.topic, limit],
        )
    )


def chain_step(event: OrderCreated | PaymentCaptured | EmailSent) -> dict:
    """The columns of the order's chain status that `event` fills in."""
    if isinstance(event, OrderCreated):
        return {"created": event.ts}
    if isinstance(event, PaymentCaptured):
        return {"paid": event.ts, "amount": event.amount}
    return {"emailed": event.ts, "to": event.to}


def track(event: OrderCreated | PaymentCaptured | EmailSent, tx: Database) -> list:
    """Record the step of the chain that `event` shows, and the order's trace; the first one seen wins."""
    step = chain_step(event) | {"trace": tracing.current_trace_id()}
    tx.execute("INSERT OR IGNORE INTO chain (orderId) VALUES (?)", [event.orderId])
    columns = ", ".join(f"[{name}] = COALESCE([{name}], ?)" for name in step)
    tx.execute(f"UPDATE chain SET {columns} WHERE orderId = ?", [*step.values(), event.orderId])
    return []


HANDLERS = {event_type: Handler(track) for event_type in (OrderCreated, PaymentCaptured, EmailSent)}


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 5002
    max_body_bytes: int = 16 * 1024
    trace_view: str | None = None  # a trace viewer's address of a trace, with {traceId} in it


def read_settings(env: Env) -> tuple[Settings, HttpSettings]:
    http = HttpSettings(
        host=env.text("HTTP_HOST", HttpSettings.host, f"{HOST}|{IPV6}", "a host name or IP address, such as 127.0.0.1"),
        port=env.port("HTTP_PORT", HttpSettings.port),
        max_body_bytes=env.whole("MAX_BODY_BYTES", HttpSettings.max_body_bytes, 1, expected="a whole number of bytes"),
        trace_view=env.text(
            "TRACE_VIEW",
            "",
            rf"|{URL}\{{traceId\}}\S*",
            "a URL with {traceId} in it, such as http://127.0.0.1:9411/zipkin/traces/{traceId}",
        )
        or None,
    )
    return Settings.from_env("orders", env), http


def main() -> None:
    settings, http = checked(read_settings)
    service = Service(settings, HANDLERS, create_tables, relaxed=True)  # following the chain is for the page
    app = make_app(
        place=lambda request: place_order(service, request),
        find=lambda order_id: find_order(service, order_id),
        latest=lambda limit: latest_orders(service, limit),
        pending=lambda: outbox.pending(service.store.db()),
        max_body_bytes=http.max_body_bytes,
        trace_view=http.trace_view,
    )
    server = waitress.create_server(app, host=http.host, port=http.port, threads=4, ident="orders")
    service.run(serve=server.run, close=server.close)
