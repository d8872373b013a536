"""orders: accepts orders over HTTP, emits OrderCreated, and follows each order
along the chain (created, paid, emailed) from the events on the topic."""

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as NoAnswer
from dataclasses import asdict, dataclass

import waitress

from eventbus import contracts, outbox, tracing
from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.service import Service
from eventbus.settings import HOST, IPV6, Env, Settings, checked
from eventbus.store import Store, StoreUnavailable, Transaction
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from services.orders.api import make_app

log = logging.getLogger("orders")
# An automatic id must be one the API takes back, to replay the order.
MAX_ORDER_ID: int = contracts.schema("CreateOrderRequest")["properties"]["orderId"]["maximum"]
ANSWER_WITHIN_S = 1.0  # an HTTP request waits this long for the database, then gets 503


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


def create_tables(store: Store) -> None:
    """`payload` keeps the whole OrderCreated, with any field the contract
    gained since the columns were chosen; the columns are what queries use."""
    store.create_table(
        "orders", {"orderId": int, "userId": int, "itemId": int, "qty": int, "ts": str, "payload": str}, pk="orderId"
    )
    store.create_table(
        "chain",
        {"orderId": int, "created": str, "paid": str, "amount": int, "emailed": str, "to": str, "trace": str},
        pk="orderId",
    )
    store.create_table("sequence", {"name": str, "last": int}, pk="name")


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


ORDER_WITH_CHAIN = (
    'SELECT o."orderId", o."userId", o."itemId", o.qty, o.ts, c.created, c.paid, c.amount, c.emailed, c."to", c.trace'
    ' FROM orders o LEFT JOIN chain c ON c."orderId" = o."orderId"'
)


def find_order(service: Service, order_id: int) -> dict | None:
    """The order and how far along the chain it is."""
    return next(iter(service.store.query(f'{ORDER_WITH_CHAIN} WHERE o."orderId" = ?', [order_id])), None)


def latest_orders(service: Service, limit: int) -> list[dict]:
    """The orders placed last, newest first, each with its chain and `onTopic`:
    when Kafka acknowledged its first OrderCreated, which the outbox keeps."""
    latest = service.store.query(f'{ORDER_WITH_CHAIN} ORDER BY o.ts DESC, o."orderId" DESC LIMIT ?', [limit])
    keys = [str(row["orderId"]).encode() for row in latest]
    on_topic = (
        {
            bytes(row["key"]): row["at"]
            for row in service.store.query(
                f"SELECT key, MIN(sent_at) AS at FROM outbox WHERE topic = ? AND key IN ({','.join('?' * len(keys))})"
                " GROUP BY key",
                [service.settings.topic, *keys],
            )
        }
        if keys
        else {}
    )
    return [row | {"onTopic": on_topic.get(key)} for row, key in zip(latest, keys, strict=True)]


def chain_step(event: OrderCreated | PaymentCaptured | EmailSent) -> dict:
    """The columns of the order's chain status that `event` fills in."""
    if isinstance(event, OrderCreated):
        return {"created": event.ts}
    if isinstance(event, PaymentCaptured):
        return {"paid": event.ts, "amount": event.amount}
    return {"emailed": event.ts, "to": event.to}


def track(event: OrderCreated | PaymentCaptured | EmailSent, tx: Transaction) -> list:
    """Record the step of the chain that `event` shows, and the order's trace; the first one seen wins."""
    step = chain_step(event) | {"trace": tracing.current_trace_id()}
    tx.execute('INSERT INTO chain ("orderId") VALUES (?) ON CONFLICT DO NOTHING', [event.orderId])
    columns = ", ".join(f'"{name}" = COALESCE("{name}", ?)' for name in step)
    tx.execute(f'UPDATE chain SET {columns} WHERE "orderId" = ?', [*step.values(), event.orderId])
    return []


HANDLERS = {event_type: Handler(track) for event_type in (OrderCreated, PaymentCaptured, EmailSent)}


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 5002
    max_body_bytes: int = 16 * 1024


def read_settings(env: Env) -> tuple[Settings, HttpSettings]:
    http = HttpSettings(
        host=env.text("HTTP_HOST", HttpSettings.host, f"{HOST}|{IPV6}", "a host name or IP address, such as 127.0.0.1"),
        port=env.port("HTTP_PORT", HttpSettings.port),
        max_body_bytes=env.whole("MAX_BODY_BYTES", HttpSettings.max_body_bytes, 1, expected="a whole number of bytes"),
    )
    return Settings.from_env("orders", env), http


def answering_within(seconds: float, workers: int) -> Callable:
    """Runs a request's database work in a pool of threads and gives up waiting
    after `seconds`: a database that is down fails fast, but a frozen one (or one
    behind a silent network) would hold the request as long as it stays frozen."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="database")

    def call(work: Callable[[float], object]):
        """`work` gets its deadline, in time.monotonic() seconds."""
        try:
            return pool.submit(work, time.monotonic() + seconds).result(timeout=seconds)
        except NoAnswer:
            raise StoreUnavailable(f"no answer from the database within {seconds:g} s") from None

    return call


def main() -> None:
    settings, http = checked(read_settings)
    service = Service(settings, HANDLERS, create_tables, relaxed=True)  # following the chain is for the page
    within = answering_within(ANSWER_WITHIN_S, workers=8)
    app = make_app(
        place=lambda request: within(lambda deadline: place_order(service, request, deadline=deadline)),
        find=lambda order_id: within(lambda deadline: find_order(service, order_id)),
        latest=lambda limit: within(lambda deadline: latest_orders(service, limit)),
        pending=lambda: within(lambda deadline: outbox.pending(service.store)),
        max_body_bytes=http.max_body_bytes,
    )
    server = waitress.create_server(app, host=http.host, port=http.port, threads=4, ident="orders")
    service.run(serve=server.run, close=server.close)
