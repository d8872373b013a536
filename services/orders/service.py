"""orders: accepts orders over HTTP, emits OrderCreated, and follows each order
along the chain (created, paid, emailed) from the events on the topic. Cancels
an order, once, when its payment is declined or its customer asks, and emits
OrderCancelled; follows what comes of it (refunded, the emails)."""

import contextvars
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
from eventbus.kafka import TopicSize
from eventbus.service import Service
from eventbus.settings import HOST, IPV6, URL, Env, Settings, checked, listening
from eventbus.store import Store, StoreUnavailable, Transaction
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded
from services.orders.api import MAX_ORDER_ID, make_app  # an automatic id is one the API takes back

log = logging.getLogger("orders")
CUSTOMER_CANCELLED = "cancelled by the customer"
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
    store.create_table("sequence", {"name": str, "last": int}, pk="name")
    store.create_table("cancellations", {"orderId": int, "reason": str, "cancelledAt": str}, pk="orderId")
    create_read_model(store)


# The read model: how far along its chain, and its saga, each order is, as
# followed from the events on the topic (see track); make rebuild rebuilds it.
READ_MODEL = {
    "chain": {"orderId": int, "created": str, "paid": str, "amount": int, "emailed": str, "to": str, "trace": str},
    "saga": {
        "orderId": int,
        "declined": str,
        "refunded": str,
        "refund": int,
        "cancelEmailed": str,
        "refundEmailed": str,
    },
}


def create_read_model(store: Store) -> None:
    for table, columns in READ_MODEL.items():
        store.create_table(table, columns, pk="orderId")


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
    'SELECT o."orderId", o."userId", o."itemId", o.qty, o.ts,'
    ' c.created, c.paid, c.amount, c.emailed, c."to", c.trace,'
    ' x."reason", x."cancelledAt" AS "cancelled", s."declined", s."refunded", s."refund",'
    ' s."cancelEmailed", s."refundEmailed"'
    ' FROM orders o LEFT JOIN chain c ON c."orderId" = o."orderId"'
    ' LEFT JOIN "cancellations" x ON x."orderId" = o."orderId" LEFT JOIN "saga" s ON s."orderId" = o."orderId"'
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


def decide_cancel(exists: bool, cancelled_before: bool) -> str:
    """What a cancel does: `unknown` order, `cancelled` now (OrderCancelled goes out), or `already` cancelled."""
    if not exists:
        return "unknown"
    return "already" if cancelled_before else "cancelled"


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


def track(event: OrderCreated | PaymentCaptured | EmailSent, tx: Transaction) -> list:
    """Record the step of the chain that `event` shows, and the order's trace; the first one seen wins.
    An email about a cancellation or a refund is a step of the order's saga instead."""
    if isinstance(event, EmailSent) and event.template not in (None, "order_confirmed"):
        return track_saga(event, tx)
    step = chain_step(event) | {"trace": tracing.arrived_trace_id()}
    tx.execute('INSERT INTO chain ("orderId") VALUES (?) ON CONFLICT DO NOTHING', [event.orderId])
    columns = ", ".join(f'"{name}" = COALESCE("{name}", ?)' for name in step)
    tx.execute(f'UPDATE chain SET {columns} WHERE "orderId" = ?', [*step.values(), event.orderId])
    return []


def track_saga(event: PaymentDeclined | PaymentRefunded | EmailSent, tx: Transaction) -> list:
    """Record the step of the saga that `event` shows; the first one seen wins."""
    step = saga_step(event)
    tx.execute('INSERT INTO "saga" ("orderId") VALUES (?) ON CONFLICT ("orderId") DO NOTHING', [event.orderId])
    columns = ", ".join(f'"{name}" = COALESCE("{name}", ?)' for name in step)
    tx.execute(f'UPDATE "saga" SET {columns} WHERE "orderId" = ?', [*step.values(), event.orderId])
    return []


def cancel_declined(declined: PaymentDeclined, tx: Transaction) -> list[OrderCancelled]:
    """A declined payment cancels the order, with the decline's reason."""
    track_saga(declined, tx)
    _, cancelled = cancel(tx, declined.orderId, declined.reason, timestamp())
    return [cancelled] if cancelled else []


FOLLOWED = {  # what the read model follows, and how: all of it is rebuilt from the topic
    **{event_type: track for event_type in (OrderCreated, PaymentCaptured, EmailSent)},
    PaymentRefunded: track_saga,
    PaymentDeclined: track_saga,
}
HANDLERS = {
    **{event_type: Handler(follow) for event_type, follow in FOLLOWED.items()},
    PaymentDeclined: Handler(
        cancel_declined, once_per=lambda declined: declined.orderId, ledger_name="orders.cancel_declined"
    ),
}


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


def answering_within(seconds: float, workers: int) -> Callable:
    """Runs a request's database work in a pool of threads and gives up waiting
    after `seconds`: a database that is down fails fast, but a frozen one (or one
    behind a silent network) would hold the request as long as it stays frozen."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="database")

    def call(work: Callable[[float], object]):
        """`work` gets its deadline, in time.monotonic() seconds, and runs in the
        caller's context (its trace, so the events it queues continue it)."""
        context = contextvars.copy_context()
        try:
            return pool.submit(context.run, work, time.monotonic() + seconds).result(timeout=seconds)
        except NoAnswer:
            raise StoreUnavailable(f"no answer from the database within {seconds:g} s") from None

    return call


def make_orders_app(
    service: Service,
    max_body_bytes: int,
    trace_view: str | None = None,
    answer_within_s: float = ANSWER_WITHIN_S,
    dead_letters: Callable[[], int] = lambda: 0,
):
    """The HTTP API over the service's store and outbox, each call given up
    after `answer_within_s` (see answering_within); `dead_letters` counts them."""
    within = answering_within(answer_within_s, workers=8)
    return make_app(
        place=lambda request: within(lambda deadline: place_order(service, request, deadline=deadline)),
        find=lambda order_id: within(lambda deadline: find_order(service, order_id)),
        latest=lambda limit: within(lambda deadline: latest_orders(service, limit)),
        cancel=lambda order_id: within(lambda deadline: cancel_order(service, order_id)),
        pending=lambda: within(lambda deadline: outbox.pending(service.store)),
        dead_letters=dead_letters,
        max_body_bytes=max_body_bytes,
        trace_view=trace_view,
    )


def main() -> None:
    settings, http = checked(read_settings)
    service = Service(settings, HANDLERS, create_tables, relaxed=True)  # following the chain is for the page
    # A link to a trace whose spans never left this process would lead nowhere.
    trace_view = http.trace_view if service.exports_traces else None
    dead_letters = TopicSize(settings, settings.dead_letter_topic)
    app = make_orders_app(service, http.max_body_bytes, trace_view, dead_letters=dead_letters)
    with listening("HTTP_PORT", http.port):
        server = waitress.create_server(app, host=http.host, port=http.port, threads=4, ident="orders")

    def close() -> None:
        server.close()
        dead_letters.close()

    service.run(serve=server.run, close=close)
