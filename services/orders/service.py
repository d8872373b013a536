"""orders: accepts orders over HTTP, emits OrderCreated, and follows each order
along the chain (created, paid, emailed) from the events on the topic. Cancels
an order, once, when its payment is declined or its customer asks, and emits
OrderCancelled; follows what comes of it (refunded, the emails).

Its decisions are in decisions.py, its tables in placing.py, the order page's
read model in read_model.py and the HTTP API in api.py; here are its handlers
and its wiring."""

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as NoAnswer
from dataclasses import dataclass

import waitress

from eventbus import outbox, tuning
from eventbus.consumer import Handler
from eventbus.contracts import timestamp
from eventbus.kafka import TopicSize
from eventbus.service import Service
from eventbus.settings import HOST, IPV6, URL, Env, Settings, checked, listening
from eventbus.store import StoreUnavailable, Transaction
from generated.order_cancelled import OrderCancelled
from generated.payment_declined import PaymentDeclined
from services.orders.api import make_app
from services.orders.placing import cancel, cancel_order, create_tables, place_order
from services.orders.read_model import FOLLOWED, find_order, latest_orders, track_saga

ANSWER_WITHIN_S = 1.0  # an HTTP request waits this long for the database, then gets 503


def cancel_declined(declined: PaymentDeclined, tx: Transaction) -> list[OrderCancelled]:
    """A declined payment cancels the order, with the decline's reason."""
    track_saga(declined, tx)
    _, cancelled = cancel(tx, declined.orderId, declined.reason, timestamp())
    return [cancelled] if cancelled else []


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
    service = Service(settings, HANDLERS, create_tables, pace=tuning.BACKGROUND)  # following the chain is for the page
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
