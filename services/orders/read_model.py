"""The order page's read model: how far along its chain, and its saga, each
order is, as followed from the events on the topic (see track; make rebuild
rebuilds it), and the order as the API shows it: its status and timeline."""

from datetime import datetime

from eventbus import tracing
from eventbus.service import Service
from eventbus.store import Store, Transaction
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded
from services.orders.decisions import chain_step, saga_step

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
STEPS = ("created", "paid", "emailed")
SAGA = ("declined", "cancelled", "refunded")  # where a chain that stopped ends, in red on the page
CAUSE = {  # what each hop's time is counted from
    "created": "accepted",
    "paid": "accepted",
    "emailed": "paid",
    "declined": "accepted",
    "cancelled": "accepted",
    "refunded": "cancelled",
}
ORDER_WITH_CHAIN = (
    'SELECT o."orderId", o."userId", o."itemId", o.qty, o.ts,'
    ' c.created, c.paid, c.amount, c.emailed, c."to", c.trace,'
    ' x."reason", x."cancelledAt" AS "cancelled", s."declined", s."refunded", s."refund",'
    ' s."cancelEmailed", s."refundEmailed"'
    ' FROM orders o LEFT JOIN chain c ON c."orderId" = o."orderId"'
    ' LEFT JOIN "cancellations" x ON x."orderId" = o."orderId" LEFT JOIN "saga" s ON s."orderId" = o."orderId"'
)


def create_read_model(store: Store) -> None:
    for table, columns in READ_MODEL.items():
        store.create_table(table, columns, pk="orderId")


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


FOLLOWED = {  # what the read model follows, and how: all of it is rebuilt from the topic
    **{event_type: track for event_type in (OrderCreated, PaymentCaptured, EmailSent)},
    PaymentRefunded: track_saga,
    PaymentDeclined: track_saga,
}


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


def with_status(row: dict) -> dict:
    """The order, its status (the furthest step of the chain, or cancelled), why it
    was cancelled, whether its money went back, and the time of each step."""
    reached = [step for step in STEPS if row[step]]
    status = "cancelled" if row["cancelled"] else reached[-1] if reached else "accepted"
    order = {name: row[name] for name in ("orderId", "userId", "itemId", "qty", "ts")}
    chain = {step: row[step] for step in (*STEPS, *SAGA, "cancelEmailed", "refundEmailed")}
    chain |= {"amount": row["amount"], "to": row["to"], "refund": row["refund"]}
    return order | {"status": status, "reason": row["reason"], "refunded": bool(row["refunded"]), "chain": chain}


def timeline(row: dict) -> dict:
    """The order's trace and each hop of its chain with the milliseconds it took
    since the step that caused it: created when Kafka acknowledged the
    OrderCreated to orders' relay (or, once the outbox has dropped that row after
    its retention, when orders read the event back); paid, counted from
    acceptance, since billing may read the event before that acknowledgment
    reaches orders; emailed, from the payment. A hop not reached yet has no time.
    A cancelled order's timeline goes on with where it stopped: declined (from
    acceptance), cancelled, and refunded (from the cancel), each only if it happened."""
    created = row["onTopic"] or row["created"]
    times = {"accepted": row["ts"], "created": created, "paid": row["paid"], "emailed": row["emailed"]}
    times |= {step: row[step] for step in SAGA if row[step]}
    hops = []
    for step, at in times.items():
        start = times.get(CAUSE.get(step, ""))
        hops.append({"step": step, "at": at, "tookMs": _milliseconds(start, at) if start and at else None})
    return {"traceId": row["trace"], "timeline": hops}


def _milliseconds(start: str, end: str) -> int:
    return max(0, round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000))
