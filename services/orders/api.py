"""The orders HTTP API (bottle): POST /orders, GET /orders/<id>, POST
/orders/<id>/cancel, GET /orders (the latest, with their timelines), GET
/dead-letters (how many), GET /health, GET /metrics (Prometheus) and the order
page at /. Each request gets
a span and a duration.

Errors are JSON that names the problem; no stack trace ever reaches a client.
The app gets what it needs as functions, so tests drive it without Kafka.
"""

import json
import logging
import re
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import bottle
from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest

from eventbus import contracts, tracing
from eventbus.store import StoreUnavailable
from services.orders.decisions import MAX_ORDER_ID
from services.orders.read_model import timeline, with_status

log = logging.getLogger("orders")
STATUS_CODE = {"created": 201, "replayed": 200}
CANCEL_CODE = {"cancelled": 202, "already": 200}
MAX_LIST = 100
PAGE = Path(__file__).parent / "page"
REQUESTS = Histogram(
    "http_request_duration_seconds",
    "HTTP requests orders answered, by route, method and status",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def make_app(
    place: Callable,
    find: Callable[[int], dict | None],
    max_body_bytes: int,
    pending: Callable[[], int] = lambda: 0,
    latest: Callable[[int], list[dict]] = lambda limit: [],
    cancel: Callable[[int], tuple[str, dict | None]] = lambda order_id: ("unknown", None),
    dead_letters: Callable[[], int] = lambda: 0,
    trace_view: str | None = None,
):
    """The WSGI app. `trace_view`: the address of a trace in a trace viewer,
    with `{traceId}` in it, for the page to link each order's trace to."""
    app = bottle.Bottle(catchall=True)

    @app.post("/orders")
    @_needs_database
    def post_order():
        request = _read_order_request(max_body_bytes)
        decision = place(request)
        if decision.outcome == "conflict":
            return _error(
                409, f"order {request.orderId} exists with other fields", existing=contracts.to_payload(decision.order)
            )
        if decision.outcome == "exhausted":
            return _error(503, "no order id left to assign: every id the API accepts is taken")
        bottle.response.status = STATUS_CODE[decision.outcome]
        bottle.response.set_header("Location", f"/orders/{decision.order.orderId}")
        return contracts.to_payload(decision.order)  # as on the topic: an unset optional field is left out

    @app.get("/orders/<order_id:int>")
    @_needs_database
    def get_order(order_id: int):
        row = find(order_id) if 0 < order_id <= MAX_ORDER_ID else None
        if row is None:
            return _error(404, f"no order {order_id}")
        return with_status(row)

    @app.post("/orders/<order_id:int>/cancel")
    @_needs_database
    def cancel_order(order_id: int):
        """Cancel the order: 202 the first time (OrderCancelled is published), 200 after."""
        outcome, row = cancel(order_id) if 0 < order_id <= MAX_ORDER_ID else ("unknown", None)
        if outcome == "unknown":
            return _error(404, f"no order {order_id}")
        bottle.response.status = CANCEL_CODE[outcome]
        return with_status(row)

    @app.get("/orders")
    @_needs_database
    def list_orders():
        """The latest orders, newest first, for the order page."""
        limit = bottle.request.query.get("limit", "10")
        if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= MAX_LIST:
            return _error(400, f"limit must be a whole number from 1 to {MAX_LIST}")
        orders = [with_status(row) | timeline(row) for row in latest(int(limit))]
        for order in orders:
            order["traceUrl"] = (
                trace_view.replace("{traceId}", order["traceId"]) if trace_view and order["traceId"] else None
            )
        return {"orders": orders}

    @app.get("/dead-letters")
    def count_dead_letters():
        """How many messages the services set aside, for the page; 503 while Kafka does not answer."""
        try:
            return {"count": dead_letters()}
        except KafkaException as error:
            return _error(503, f"Kafka does not answer ({error.args[0].str() if error.args else error})")

    @app.get("/")
    def page():
        return bottle.static_file("index.html", root=PAGE)

    @app.get("/page/<name>")
    def page_file(name: str):
        return bottle.static_file(name, root=PAGE)

    @app.get("/health")
    def health():
        """Up, and how many accepted events still wait for Kafka (they go out once it answers);
        503 naming the database while it cannot be reached."""
        try:
            return {"status": "ok", "outboxPending": pending()}
        except StoreUnavailable as error:
            return _error(503, str(error), status="unavailable", missing=["database"])

    @app.get("/metrics")
    def prometheus_metrics():
        bottle.response.content_type = CONTENT_TYPE_LATEST
        return generate_latest(REGISTRY)

    @app.error(404)
    @app.error(405)
    @app.error(500)
    def error_page(error: bottle.HTTPError):
        if error.status_code == 500:
            log.error("Unhandled error in %s %s: %s", bottle.request.method, bottle.request.path, error.exception)
        bottle.response.content_type = "application/json"
        message = {404: "not found", 405: "method not allowed"}.get(error.status_code, "internal error")
        return json.dumps({"error": message})

    return tracing.wsgi(_timed(app))


def _timed(app: bottle.Bottle):
    """`app` observing each request's duration by route, method and status, and
    naming the request's span after its route."""

    def timed_app(environ: dict, start_response: Callable):
        began, status = time.perf_counter(), ["500"]

        def start(code: str, headers: list, exc_info=None):
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        try:
            return app(environ, start)
        finally:
            route = environ.get("bottle.route")
            rule = route.rule if route else "unmatched"
            tracing.name_request(environ["REQUEST_METHOD"], rule)
            REQUESTS.labels(rule, environ["REQUEST_METHOD"], status[0]).observe(time.perf_counter() - began)

    return timed_app


def _needs_database(route: Callable) -> Callable:
    """503 while the database cannot be reached: orders cannot promise to keep
    an order it cannot store, and nothing was stored (the client may retry)."""

    @wraps(route)
    def answer(*args, **kwargs):
        try:
            return route(*args, **kwargs)
        except StoreUnavailable as error:
            return _error(503, f"{error}; nothing was stored, try again", missing=["database"])

    return answer


def _read_order_request(max_body_bytes: int):
    content_type = bottle.request.content_type.split(";")[0].strip().lower()
    if content_type != "application/json":
        raise _error(415, "Content-Type must be application/json")
    if bottle.request.content_length > max_body_bytes:
        raise _error(413, f"body larger than {max_body_bytes} bytes")
    body = bottle.request.body.read(max_body_bytes + 1)
    if len(body) > max_body_bytes:
        raise _error(413, f"body larger than {max_body_bytes} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _error(400, "body is not valid JSON") from None
    try:
        return contracts.from_payload("CreateOrderRequest", payload)
    except contracts.ContractViolation as violation:
        raise _error(400, "invalid order", problems=violation.problems) from None


def _error(code: int, message: str, **details) -> bottle.HTTPResponse:
    body = json.dumps({"error": message, **details})
    return bottle.HTTPResponse(body, status=code, headers={"Content-Type": "application/json"})
