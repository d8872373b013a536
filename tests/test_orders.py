"""orders: the create/replay/conflict decision, the HTTP API driven in-process
with fake dependencies, and placing and tracking orders in a real store."""

import itertools
import json
import threading
from dataclasses import replace
from urllib.parse import quote

import pytest
from confluent_kafka import KafkaError, KafkaException
from invented import field_not_in
from opentelemetry.trace import SpanKind

from eventbus import outbox, service, tracing
from eventbus.settings import Settings
from eventbus.store import StoreUnavailable
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded
from services.orders import decisions, placing, read_model
from services.orders import service as orders
from services.orders.api import make_app
from services.orders.read_model import timeline

TS = "2026-11-27T10:00:00.000Z"
ORDER = OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts=TS)
ORDER_JSON = {"orderId": 1, "userId": 1, "itemId": 2, "qty": 1, "ts": TS}  # an unset optional field is left out
BODY = {"userId": 1, "itemId": 2, "qty": 1}
EXTRA = field_not_in("CreateOrderRequest")  # a field the request contract does not know


# --- decide -------------------------------------------------------------------


def test_a_new_order_is_created_with_the_given_id_and_time():
    decision = decisions.decide(CreateOrderRequest(**BODY), None, 5, TS)
    assert decision == decisions.Decision("created", OrderCreated(orderId=5, **BODY, ts=TS))


def test_the_same_order_again_is_replayed_as_it_was():
    decision = decisions.decide(CreateOrderRequest(**BODY, orderId=1), ORDER, 1, "2026-11-28T00:00:00.000Z")
    assert decision == decisions.Decision("replayed", ORDER)


@pytest.mark.parametrize("change", [{"userId": 2}, {"itemId": 3}, {"qty": 2}])
def test_the_same_id_with_other_fields_is_a_conflict(change):
    decision = decisions.decide(CreateOrderRequest(**BODY | change, orderId=1), ORDER, 1, TS)
    assert decision == decisions.Decision("conflict", ORDER)


def test_a_new_order_without_an_id_left_is_refused_as_exhausted():
    assert decisions.decide(CreateOrderRequest(**BODY), None, None, TS) == decisions.Decision("exhausted")


# --- next_order_id ----------------------------------------------------------------


@pytest.mark.parametrize(
    "last, taken, expected",
    [
        (0, [], 1),
        (4, [], 5),
        (4, [5, 6, 8], 7),  # clients took 5 and 6: skipped
        (4, [9], 5),  # a client's larger id does not move the sequence
        (8, [9, 10], None),  # 9 and 10 taken, 10 is the maximum
        (9, [], 10),
        (10, [], None),
    ],
)
def test_the_next_automatic_id_skips_the_ids_clients_took_and_stops_at_the_maximum(last, taken, expected):
    assert decisions.next_order_id(last, taken, maximum=10) == expected


def test_the_taken_ids_are_read_only_up_to_the_first_gap():
    assert decisions.next_order_id(0, itertools.chain([1, 2], itertools.count(10)), maximum=2**53) == 3


def test_the_largest_automatic_id_is_the_largest_the_api_takes_back():
    assert decisions.MAX_ORDER_ID == 2**53 - 1


# --- the HTTP API ---------------------------------------------------------------


class FakeOrders:
    """Stands in for place_order and find_order: `outcome` decides every POST, `rows` answers GETs."""

    def __init__(self, outcome: str = "created"):
        self.outcome = outcome
        self.placed: list[CreateOrderRequest] = []
        self.traces: list[str | None] = []
        self.rows: dict[int, dict] = {}

    def place(self, request: CreateOrderRequest) -> decisions.Decision:
        self.placed.append(request)
        self.traces.append(tracing.current_trace_id())
        return decisions.Decision(self.outcome, None if self.outcome == "exhausted" else ORDER)


@pytest.fixture
def fake():
    return FakeOrders()


@pytest.fixture
def app(fake):
    return make_app(place=fake.place, find=fake.rows.get, max_body_bytes=200)


def post(call, app, body, content_type="application/json", **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(app, "POST", "/orders", body=raw, content_type=content_type, headers=headers)


def test_a_new_order_answers_201_with_the_order_and_its_location(call, app, fake):
    response = post(call, app, BODY)
    assert response.status == 201
    assert response.json == ORDER_JSON
    assert response.headers["Location"] == "/orders/1"
    assert fake.placed == [CreateOrderRequest(**BODY)]


def test_a_replayed_order_answers_200(call, app, fake):
    fake.outcome = "replayed"
    response = post(call, app, BODY | {"orderId": 1})
    assert (response.status, response.json) == (200, ORDER_JSON)


def test_no_order_id_left_answers_503_with_a_message(call, app, fake):
    fake.outcome = "exhausted"
    response = post(call, app, BODY)
    assert response.status == 503
    assert response.json == {"error": "no order id left to assign: every id the API accepts is taken"}


def test_a_conflicting_order_answers_409_with_the_existing_one(call, app, fake):
    fake.outcome = "conflict"
    response = post(call, app, BODY | {"orderId": 1, "qty": 2})
    assert response.status == 409
    assert response.json["existing"] == ORDER_JSON


def test_the_order_is_placed_in_the_callers_trace(call, app, fake):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    post(call, app, BODY, traceparent=traceparent)
    assert fake.traces == ["0af7651916cd43dd8448eb211c80319c"]


def test_an_order_without_a_callers_trace_starts_one_in_a_span_named_after_its_route(call, app, fake, spans):
    post(call, app, BODY)
    [request] = [span for span in spans() if span.kind == SpanKind.SERVER]
    assert request.name == "POST /orders"
    assert fake.traces == [f"{request.context.trace_id:032x}"]


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"userId": 1, "itemId": 2}, ["qty"]),
        (BODY | {"qty": 0}, ["qty"]),
        (BODY | {"qty": "1"}, ["qty"]),
        (BODY | {"qty": 1.5}, ["qty"]),
        (BODY | {EXTRA: "FREE"}, [EXTRA]),
        ({"itemId": 0, "qty": 1.5}, ["itemId", "qty", "userId"]),
    ],
)
def test_a_bad_order_answers_400_naming_each_field(call, app, fake, body, fields):
    response = post(call, app, body)
    assert response.status == 400
    assert [problem["field"] for problem in response.json["problems"]] == fields
    assert fake.placed == []


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""], ids=["broken", "not utf-8", "empty"])
def test_a_body_that_is_not_json_answers_400(call, app, body):
    response = post(call, app, body)
    assert (response.status, response.json["error"]) == (400, "body is not valid JSON")


def test_a_json_array_answers_400(call, app):
    response = post(call, app, [BODY])
    assert response.status == 400
    assert response.json["problems"][0]["field"] == "(body)"


def test_a_too_deeply_nested_body_answers_400(call):
    app = make_app(place=FakeOrders().place, find=dict().get, max_body_bytes=16 * 1024)
    assert post(call, app, b"[" * 8000 + b"]" * 8000).status == 400


def test_a_body_that_is_not_json_by_content_type_answers_415(call, app):
    assert post(call, app, json.dumps(BODY).encode(), content_type="text/plain").status == 415


def test_a_json_content_type_with_a_charset_is_accepted(call, app):
    assert post(call, app, BODY, content_type="application/json; charset=utf-8").status == 201


def test_a_body_over_the_limit_answers_413(call, app, fake):
    response = post(call, app, BODY | {"padding": "x" * 200})
    assert response.status == 413
    assert fake.placed == []


SAGA_UNTOUCHED = dict.fromkeys(
    ("declined", "cancelled", "reason", "refunded", "refund", "cancelEmailed", "refundEmailed")
)


def chain_row(created=None, paid=None, emailed=None, **saga) -> dict:
    amount, to = (100 if paid else None), ("user1@test.com" if emailed else None)
    chain = {"created": created, "paid": paid, "amount": amount, "emailed": emailed, "to": to}
    return ORDER_JSON | chain | SAGA_UNTOUCHED | saga


@pytest.mark.parametrize(
    "row, status",
    [
        (chain_row(), "accepted"),
        (chain_row(created=TS), "created"),
        (chain_row(created=TS, paid=TS), "paid"),
        (chain_row(created=TS, paid=TS, emailed=TS), "emailed"),
    ],
)
def test_an_order_shows_how_far_along_the_chain_it_is(call, app, fake, row, status):
    fake.rows[1] = row
    response = call(app, "GET", "/orders/1")
    assert response.status == 200
    assert response.json["status"] == status
    assert response.json["orderId"] == 1
    assert response.json["chain"].items() >= {k: row[k] for k in ("created", "paid", "emailed", "amount", "to")}.items()
    assert (response.json["reason"], response.json["refunded"]) == (None, False)


def test_an_unknown_order_answers_404_json(call, app):
    response = call(app, "GET", "/orders/99")
    assert (response.status, response.headers["Content-Type"]) == (404, "application/json")
    assert "99" in response.json["error"]


@pytest.mark.parametrize("path", ["/nowhere", "/orders/abc"])
def test_an_unknown_path_answers_404_json(call, app, path):
    response = call(app, "GET", path)
    assert (response.status, response.json) == (404, {"error": "not found"})


def test_a_wrong_method_answers_405_json(call, app):
    response = call(app, "DELETE", "/orders")
    assert (response.status, response.json) == (405, {"error": "method not allowed"})


def test_health_answers_200(call, app):
    assert call(app, "GET", "/health").status == 200


def test_while_the_database_cannot_be_reached_health_and_orders_answer_503_naming_it(call):
    def unreachable(*args):
        raise StoreUnavailable("no answer from the database within 1 s")

    app = make_app(place=unreachable, find=unreachable, max_body_bytes=200, pending=unreachable)
    health = call(app, "GET", "/health")
    assert (health.status, health.json["status"], health.json["missing"]) == (503, "unavailable", ["database"])
    posted = call(app, "POST", "/orders", json.dumps(BODY).encode())
    assert posted.status == 503 and "nothing was stored" in posted.json["error"]
    assert call(app, "GET", "/orders/1").status == 503


def test_health_reports_events_waiting_for_kafka(call):
    app = make_app(place=None, find=dict().get, max_body_bytes=200, pending=lambda: 3)
    assert call(app, "GET", "/health").json == {"status": "ok", "outboxPending": 3}


def test_a_failure_inside_answers_500_json_without_a_stack_trace(call):
    def explode(request):
        raise RuntimeError("secret connection string")

    response = post(call, make_app(place=explode, find=dict().get, max_body_bytes=200), BODY)
    assert (response.status, response.json) == (500, {"error": "internal error"})
    assert "Traceback" not in response.text
    assert "secret" not in response.text


# --- placing and tracking orders in a real store --------------------------------


@pytest.fixture
def orders_settings(store_settings, monkeypatch) -> Settings:
    monkeypatch.setattr(service.tracing, "configure_logging", lambda level: None)
    return replace(store_settings, service="orders")


@pytest.fixture
def orders_service(orders_settings):
    """The orders Service on each store; it connects to no broker until run()."""
    return service.Service(orders_settings, orders.HANDLERS, placing.create_tables)


def queued(orders_service) -> list[dict]:
    rows = orders_service.store.query("SELECT value, headers FROM outbox ORDER BY id")
    return [{"payload": json.loads(row["value"]), "ce_id": json.loads(row["headers"])["ce_id"]} for row in rows]


def place(orders_service, max_order_id=decisions.MAX_ORDER_ID, **fields) -> decisions.Decision:
    return placing.place_order(orders_service, CreateOrderRequest(**BODY | fields), max_order_id)


def test_orders_without_an_id_are_numbered_1_2_3(orders_service):
    assert [place(orders_service).order.orderId for _ in range(3)] == [1, 2, 3]
    assert [each["payload"]["orderId"] for each in queued(orders_service)] == [1, 2, 3]


def test_a_clients_largest_id_does_not_move_the_automatic_ids(orders_service):
    assert place(orders_service, orderId=decisions.MAX_ORDER_ID).outcome == "created"
    assert [place(orders_service).order.orderId for _ in range(2)] == [1, 2]


def test_the_automatic_ids_skip_the_ids_clients_took(orders_service):
    place(orders_service, orderId=2)
    place(orders_service, orderId=3)
    assert [place(orders_service).order.orderId for _ in range(2)] == [1, 4]


def test_a_store_numbered_before_the_sequence_existed_goes_on_after_its_orders(orders_service):
    for order_id in (1, 2, 3):
        place(orders_service, orderId=order_id)
    assert place(orders_service).order.orderId == 4


def test_when_every_id_is_taken_new_orders_are_refused_and_replays_still_work(orders_service):
    assert [place(orders_service, max_order_id=3).outcome for _ in range(4)] == ["created"] * 3 + ["exhausted"]
    assert place(orders_service, max_order_id=3, orderId=2).outcome == "replayed"
    assert [each["payload"]["orderId"] for each in queued(orders_service)] == [1, 2, 3, 2]


def test_concurrent_orders_in_two_processes_sharing_the_store_get_distinct_ids(orders_service, orders_settings):
    """Two Services on one store stand for two orders processes (on two hosts, with PostgreSQL)."""
    other = service.Service(orders_settings, orders.HANDLERS, placing.create_tables)
    ids: list[int] = []

    def place_some(each_service):
        for _ in range(10):
            ids.append(place(each_service).order.orderId)

    in_parallel([lambda s=s: place_some(s) for s in (orders_service, other) * 3])
    assert sorted(ids) == list(range(1, 61))


def test_automatic_and_client_chosen_ids_in_two_processes_never_collide(orders_service, orders_settings):
    other = service.Service(orders_settings, orders.HANDLERS, placing.create_tables)
    outcomes: list[tuple[str, int]] = []

    def automatic(each_service):
        for _ in range(10):
            decision = place(each_service)
            outcomes.append((decision.outcome, decision.order.orderId))

    def chosen(each_service):
        for order_id in range(1, 21):
            decision = place(each_service, orderId=order_id)
            outcomes.append((decision.outcome, decision.order.orderId))

    in_parallel([lambda: automatic(orders_service), lambda: automatic(other), lambda: chosen(other)])
    created = sorted(order_id for outcome, order_id in outcomes if outcome == "created")
    assert created == sorted(set(created))  # one order per id
    assert {outcome for outcome, _ in outcomes} <= {"created", "replayed", "conflict"}
    assert len(queued(orders_service)) == sum(outcome != "conflict" for outcome, _ in outcomes)


@pytest.mark.parametrize("second_qty", [1, 2], ids=["same fields", "other fields"])
def test_one_order_id_posted_to_two_processes_at_once_is_created_once(orders_service, orders_settings, second_qty):
    other = service.Service(orders_settings, orders.HANDLERS, placing.create_tables)
    for order_id in range(1, 11):
        outcomes: list[str] = []

        def post(to_service, qty, order_id=order_id, outcomes=outcomes):
            outcomes.append(place(to_service, orderId=order_id, qty=qty).outcome)

        in_parallel([lambda: post(orders_service, 1), lambda: post(other, second_qty)])
        assert sorted(outcomes) in (["created", "replayed"], ["conflict", "created"])
    assert len({each["payload"]["orderId"] for each in queued(orders_service)}) == 10


def in_parallel(work: list) -> None:
    threads = [threading.Thread(target=each) for each in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_replayed_order_queues_the_same_order_created_again(orders_service):
    assert place(orders_service, orderId=7).outcome == "created"
    assert place(orders_service, orderId=7).outcome == "replayed"
    first, second = queued(orders_service)
    assert first["payload"] == second["payload"]
    assert first["ce_id"] != second["ce_id"]


def test_a_conflicting_order_queues_nothing(orders_service):
    place(orders_service, orderId=7)
    assert place(orders_service, orderId=7, qty=2).outcome == "conflict"
    assert len(queued(orders_service)) == 1
    assert read_model.find_order(orders_service, 7)["qty"] == 1


def test_find_order_knows_only_placed_orders(orders_service):
    place(orders_service, orderId=7)
    assert read_model.find_order(orders_service, 7)["userId"] == 1
    assert read_model.find_order(orders_service, 8) is None


def test_tracking_fills_in_the_chain_and_ignores_repeats(orders_service):
    place(orders_service, orderId=1)
    later = "2026-11-27T10:00:09.000Z"
    events = [
        ORDER,
        PaymentCaptured(orderId=1, amount=100, ts=TS),
        EmailSent(orderId=1, to="user1@test.com", ts=TS),
        PaymentCaptured(orderId=1, amount=999, ts=later),
        EmailSent(orderId=1, to="other@test.com", ts=later),
    ]
    with orders_service.store.transaction() as tx:
        for event in events:
            assert read_model.track(event, tx) == []
    row = read_model.find_order(orders_service, 1)
    chain = {name: row[name] for name in ("created", "paid", "amount", "emailed", "to")}
    assert chain == {"created": TS, "paid": TS, "amount": 100, "emailed": TS, "to": "user1@test.com"}


def test_an_order_id_too_large_to_store_is_not_found(call, orders_service):
    app = make_app(
        place=None, find=lambda order_id: read_model.find_order(orders_service, order_id), max_body_bytes=200
    )
    assert call(app, "GET", f"/orders/{2**64}").status == 404


def test_an_id_past_the_contracts_largest_is_never_looked_up(call):
    """One largest id, the contract's: no order can have a larger one."""
    asked = []
    app = make_app(place=None, find=lambda order_id: asked.append(order_id), max_body_bytes=200)
    assert call(app, "GET", f"/orders/{decisions.MAX_ORDER_ID + 1}").status == 404
    assert call(app, "GET", f"/orders/{decisions.MAX_ORDER_ID}").status == 404
    assert asked == [decisions.MAX_ORDER_ID]


def test_placing_an_order_queues_it_for_the_relay(orders_service):
    place(orders_service)
    assert outbox.pending(orders_service.store) == 1


# --- the order page and the latest orders ----------------------------------------

LATER = "2026-11-27T10:00:00.250Z"


def test_the_timeline_says_how_long_each_hop_took_since_what_caused_it():
    row = chain_row(created=TS, paid=LATER, emailed="2026-11-27T10:00:00.300Z") | {
        "onTopic": "2026-11-27T10:00:00.040Z",
        "trace": "ab" * 16,
    }
    assert timeline(row) == {
        "traceId": "ab" * 16,
        "timeline": [
            {"step": "accepted", "at": TS, "tookMs": None},
            {"step": "created", "at": "2026-11-27T10:00:00.040Z", "tookMs": 40},
            {"step": "paid", "at": LATER, "tookMs": 250},
            {"step": "emailed", "at": "2026-11-27T10:00:00.300Z", "tookMs": 50},
        ],
    }


def test_a_hop_not_reached_yet_has_no_time():
    row = chain_row() | {"onTopic": None, "trace": None}
    assert [hop["tookMs"] for hop in timeline(row)["timeline"]] == [None, None, None, None]


def test_created_falls_back_to_the_read_back_once_the_outbox_row_is_gone():
    row = chain_row(created=LATER) | {"onTopic": None, "trace": None}
    created = timeline(row)["timeline"][1]
    assert (created["at"], created["tookMs"]) == (LATER, 250)


def test_the_latest_orders_come_with_status_and_timeline(call):
    row = chain_row(created=TS) | {"onTopic": LATER, "trace": "cd" * 16}
    asked = []
    app = make_app(place=None, find=dict().get, max_body_bytes=200, latest=lambda n: asked.append(n) or [row])
    response = call(app, "GET", "/orders?limit=5")
    assert response.status == 200
    (order,) = response.json["orders"]
    assert (order["orderId"], order["status"], order["traceId"]) == (1, "created", "cd" * 16)
    assert [hop["step"] for hop in order["timeline"]] == ["accepted", "created", "paid", "emailed"]
    assert asked == [5]
    assert order["traceUrl"] is None


def test_with_a_trace_viewer_each_order_links_to_its_trace(call):
    rows = [
        chain_row(created=TS) | {"onTopic": LATER, "trace": "cd" * 16},
        chain_row() | {"onTopic": None, "trace": None},
    ]
    view = "http://127.0.0.1:9411/zipkin/traces/{traceId}"
    app = make_app(place=None, find=dict().get, max_body_bytes=200, latest=lambda n: rows, trace_view=view)
    linked, untraced = call(app, "GET", "/orders").json["orders"]
    assert linked["traceUrl"] == "http://127.0.0.1:9411/zipkin/traces/" + "cd" * 16
    assert untraced["traceUrl"] is None


def test_ten_orders_are_listed_by_default(call):
    asked = []
    app = make_app(place=None, find=dict().get, max_body_bytes=200, latest=lambda n: asked.append(n) or [])
    assert call(app, "GET", "/orders").json == {"orders": []}
    assert asked == [10]


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "1.5", "²", ""])
def test_a_bad_limit_answers_400(call, app, limit):
    response = call(app, "GET", f"/orders?limit={quote(limit)}")
    assert response.status == 400
    assert "limit" in response.json["error"]


def test_the_order_page_is_served_at_the_root(call, app):
    response = call(app, "GET", "/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="order-form"' in response.text


@pytest.mark.parametrize("name", ["page.js", "page.css"])
def test_the_page_loads_only_its_own_files(call, app, name):
    response = call(app, "GET", f"/page/{name}")
    assert response.status == 200
    assert "http://" not in response.text and "https://" not in response.text


def test_a_missing_page_file_answers_404_json(call, app):
    response = call(app, "GET", "/page/../api.py")
    assert (response.status, response.json) == (404, {"error": "not found"})


def test_tracking_keeps_the_trace_the_event_arrived_in(orders_service, kafka_record):
    place(orders_service, orderId=1)
    with tracing.span("publish") as sent:
        headers = tracing.inject({})
    with tracing.consuming(kafka_record(headers=headers), "orders"), orders_service.store.transaction() as tx:
        read_model.track(ORDER, tx)
    assert read_model.find_order(orders_service, 1)["trace"] == f"{sent.get_span_context().trace_id:032x}"


def test_an_event_that_came_in_no_trace_leaves_none_that_a_rebuild_could_not_know(orders_service, kafka_record):
    place(orders_service, orderId=1)
    with tracing.consuming(kafka_record(headers={}), "orders"), orders_service.store.transaction() as tx:
        read_model.track(ORDER, tx)
    assert read_model.find_order(orders_service, 1)["trace"] is None


def test_the_latest_orders_are_listed_newest_first(orders_service):
    for _ in range(3):
        place(orders_service)
    assert [row["orderId"] for row in read_model.latest_orders(orders_service, 2)] == [3, 2]


def test_an_order_is_on_the_topic_once_kafka_acknowledged_its_first_order_created(orders_service):
    place(orders_service, orderId=12)
    place(orders_service, orderId=1)
    assert [row["onTopic"] for row in read_model.latest_orders(orders_service, 2)] == [None, None]
    with orders_service.store.transaction() as tx:
        tx.execute("UPDATE outbox SET sent_at = ? WHERE key = ?", [LATER, b"12"])
    place(orders_service, orderId=12)  # replayed: a second OrderCreated, not sent yet
    by_id = {row["orderId"]: row["onTopic"] for row in read_model.latest_orders(orders_service, 2)}
    assert by_id == {12: LATER, 1: None}


# --- cancelling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "exists, before, outcome", [(False, False, "unknown"), (True, False, "cancelled"), (True, True, "already")]
)
def test_a_cancel_cancels_a_known_order_once(exists, before, outcome):
    assert decisions.decide_cancel(exists, before) == outcome


def cancelled_events(orders_service) -> list[dict]:
    return [each["payload"] for each in queued(orders_service) if "reason" in each["payload"]]


def test_a_customers_cancel_is_202_then_200_and_one_order_cancelled(call, orders_service):
    place(orders_service, orderId=7)
    app = orders.make_orders_app(orders_service, max_body_bytes=200)
    first, again = (call(app, "POST", "/orders/7/cancel") for _ in range(2))
    assert (first.status, again.status) == (202, 200)
    assert first.json["status"] == again.json["status"] == "cancelled"
    assert (again.json["reason"], again.json["refunded"]) == (placing.CUSTOMER_CANCELLED, False)
    assert [(event["orderId"], event["reason"]) for event in cancelled_events(orders_service)] == [
        (7, placing.CUSTOMER_CANCELLED)
    ]


def test_cancelling_an_unknown_order_answers_404(call, orders_service):
    app = orders.make_orders_app(orders_service, max_body_bytes=200)
    assert call(app, "POST", "/orders/8/cancel").status == 404
    assert call(app, "POST", f"/orders/{2**64}/cancel").status == 404
    assert cancelled_events(orders_service) == []


def test_ten_concurrent_cancels_publish_one_order_cancelled(orders_service):
    place(orders_service, orderId=7)
    outcomes: list[str] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(placing.cancel_order(orders_service, 7)[0])) for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already"] * 9 + ["cancelled"]
    assert len(cancelled_events(orders_service)) == 1


def test_a_declined_payment_cancels_the_order_with_its_reason_once(orders_service):
    place(orders_service, orderId=7)
    declined = PaymentDeclined(orderId=7, amount=60000, reason="amount 60000 is above the credit limit", ts=TS)
    handler = orders.HANDLERS[PaymentDeclined]
    assert handler.once_per(declined) == 7
    with orders_service.store.transaction() as tx:
        [cancelled] = handler.handle(declined, tx)
        assert handler.handle(declined, tx) == []  # even past the ledger, the cancellation is there once
    assert (cancelled.orderId, cancelled.reason) == (7, declined.reason)
    row = read_model.find_order(orders_service, 7)
    assert (row["declined"], row["reason"]) == (TS, declined.reason)


def test_a_cancelled_order_shows_its_refund_and_its_emails(call, orders_service):
    place(orders_service, orderId=1)
    placing.cancel_order(orders_service, 1)
    later = "2026-11-27T10:00:09.000Z"
    events = [
        PaymentCaptured(orderId=1, amount=100, ts=TS),
        EmailSent(orderId=1, to="user1@test.com", ts=TS, template="order_confirmed"),
        EmailSent(orderId=1, to="user1@test.com", ts=later, template="order_cancelled"),
        PaymentRefunded(orderId=1, amount=100, ts=later),
        EmailSent(orderId=1, to="user1@test.com", ts=later, template="payment_refunded"),
    ]
    with orders_service.store.transaction() as tx:
        for event in events:
            orders.HANDLERS[type(event)].handle(event, tx)
    app = orders.make_orders_app(orders_service, max_body_bytes=200)
    shown = call(app, "GET", "/orders/1").json
    assert (shown["status"], shown["refunded"]) == ("cancelled", True)
    expected = {"paid": TS, "emailed": TS, "declined": None, "refunded": later, "refund": 100}
    assert shown["chain"].items() >= (expected | {"cancelEmailed": later, "refundEmailed": later}).items()
    assert shown["chain"]["cancelled"] is not None
    steps = [hop["step"] for hop in timeline(read_model.find_order(orders_service, 1) | {"onTopic": None})["timeline"]]
    assert steps == ["accepted", "created", "paid", "emailed", "cancelled", "refunded"]


def test_a_cancel_runs_in_the_callers_trace(call):
    traces = []

    def cancel(order_id):
        traces.append(tracing.current_trace_id())
        return "unknown", None

    app = make_app(place=None, find=None, cancel=cancel, max_body_bytes=200)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    call(app, "POST", "/orders/1/cancel", headers={"traceparent": traceparent})
    assert traces == ["0af7651916cd43dd8448eb211c80319c"]


def test_the_dead_letters_are_counted_for_the_page(call):
    app = make_app(place=None, find=dict().get, max_body_bytes=200, dead_letters=lambda: 4)
    assert call(app, "GET", "/dead-letters").json == {"count": 4}


def test_the_dead_letters_count_answers_503_naming_kafka_while_it_does_not_answer(call):
    def silent():
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "connection refused"))

    response = call(
        make_app(place=None, find=dict().get, max_body_bytes=200, dead_letters=silent), "GET", "/dead-letters"
    )
    assert response.status == 503 and "Kafka does not answer (connection refused)" in response.json["error"]
