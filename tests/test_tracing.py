"""Spans along the chain: the span that writes an outbox row is the parent of
the relay's producer span, which is the parent of each consumer's span; the
wire carries one `traceparent`, the producer span's."""

import subprocess
import sys
import threading

from opentelemetry.trace import SpanKind, StatusCode

from eventbus import outbox, tracing
from eventbus.consumer import ConsumerLoop, Handler, Rejected
from eventbus.envelope import seal
from eventbus.settings import Settings
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured

SETTINGS = Settings(service="billing")
ORDER = OrderCreated(orderId=7, userId=1, itemId=2, qty=1, ts="2026-11-27T10:00:00.000Z")


def charge(order: OrderCreated, tx) -> list:
    return [PaymentCaptured(orderId=order.orderId, amount=100, ts=order.ts)]


def consume(store, stop, consumer, handler: Handler) -> None:
    ConsumerLoop(consumer, store, SETTINGS, {OrderCreated: handler}, lambda: None).run(stop)


def only(spans, kind: SpanKind):
    [span] = [span for span in spans if span.kind == kind]
    return span


def test_the_consumer_span_is_a_child_of_the_sender_with_the_messaging_attributes(
    store, stop, fake_consumer, kafka_record, spans
):
    with tracing.span("sender") as sender:
        message = seal(ORDER, "orders")
    consume(store, stop, fake_consumer([kafka_record(message, offset=5, partition=2)]), Handler(charge))

    consumer = only(spans(), SpanKind.CONSUMER)
    assert consumer.parent.span_id == sender.get_span_context().span_id
    assert consumer.context.trace_id == sender.get_span_context().trace_id
    assert dict(consumer.attributes) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": "orders.events",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 5,
        "messaging.consumer.group.name": "billing",
        "messaging.kafka.message.key": "7",
        "messaging.message.id": message.headers["ce_id"].decode(),
        "cloudevents.event_type": "OrderCreated",
        "outcome": "handled",
    }


def test_the_events_a_handler_emits_are_written_in_the_consumer_span(
    store, stop, fake_consumer, kafka_record, outbox_rows, spans
):
    consume(store, stop, fake_consumer([kafka_record(seal(ORDER, "orders"))]), Handler(charge))
    consumer = only(spans(), SpanKind.CONSUMER)
    [row] = outbox_rows()
    assert tracing.trace_id(row["headers"]["traceparent"].decode()) == f"{consumer.context.trace_id:032x}"
    assert row["headers"]["traceparent"].decode().split("-")[2] == f"{consumer.context.span_id:016x}"


def test_a_duplicate_shows_as_the_outcome_of_its_span(store, stop, fake_consumer, kafka_record, spans):
    handler = Handler(charge, once_per=lambda order: order.orderId, ledger_name="test.charge")
    records = [kafka_record(seal(ORDER, "orders"), offset=n) for n in (0, 1)]
    consume(store, stop, fake_consumer(records), handler)
    outcomes = [span.attributes["outcome"] for span in spans() if span.kind == SpanKind.CONSUMER]
    assert outcomes == ["handled", "duplicate"]


def test_a_dead_lettered_message_span_carries_the_reason(store, stop, fake_consumer, kafka_record, spans):
    def reject(order, tx):
        raise Rejected("no such customer")

    consume(store, stop, fake_consumer([kafka_record(seal(ORDER, "orders"))]), Handler(reject))
    consumer = only(spans(), SpanKind.CONSUMER)
    assert consumer.attributes["dlq.reason"] == "no such customer"
    assert consumer.attributes["outcome"] == "dead_lettered"
    assert consumer.status.status_code == StatusCode.ERROR


def test_the_relay_sends_each_row_in_a_producer_span_child_of_the_span_that_wrote_it(
    store, tmp_path, spans, fake_producer, monkeypatch
):
    with tracing.span("writer") as writer, store.transaction() as tx:
        outbox.add_event(tx, SETTINGS, ORDER)
    producer = fake_producer()
    monkeypatch.setattr(outbox, "make_producer", lambda settings: producer)
    outbox.Relay(store, Settings(service="orders", data_dir=tmp_path), threading.Event())._publish_batch()

    send = only(spans(), SpanKind.PRODUCER)
    assert send.parent.span_id == writer.get_span_context().span_id
    assert send.attributes["messaging.destination.partition.id"] == "1"
    assert send.attributes["messaging.kafka.offset"] == 1
    [sent] = producer.sent
    headers = dict(sent["headers"])
    assert [name for name in headers if "trace" in name] == ["traceparent"]
    assert headers["traceparent"].decode().split("-")[2] == f"{send.context.span_id:016x}"


def test_an_exporter_whose_host_does_not_resolve_is_turned_off_saying_so_once():
    """As under Docker Compose without the `traces` profile: no `zipkin` host."""
    script = (
        "import logging; from eventbus import tracing; logging.basicConfig(level=logging.INFO);"
        "print(tracing.configure('billing', 'zipkin', 'http://zipkin.invalid:9411/api/v2/spans'))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == "False\n", done.stderr
    assert done.stderr.count("zipkin.invalid does not resolve, so spans are not exported") == 1, done.stderr


def test_an_endpoint_resolves_by_its_host():
    assert tracing.resolves("http://127.0.0.1:9411/api/v2/spans")
    assert tracing.resolves(None)  # the exporter's own default, localhost
    assert not tracing.resolves("http://zipkin.invalid:9411/api/v2/spans")


def test_spans_nothing_exports_are_not_recorded_yet_carry_the_trace_along():
    """With no exporter a span costs its ids alone; logs and the order page still name the trace."""
    script = """
from confluent_kafka import Message
from eventbus import tracing
from eventbus.envelope import seal
from generated.order_created import OrderCreated

print(tracing.configure("billing", "none"))
order = OrderCreated(orderId=7, userId=1, itemId=2, qty=1, ts="2026-11-27T10:00:00.000Z")
for traceparent in (b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b""):
    with tracing.arriving({"traceparent": traceparent}):
        message = seal(order, "orders")
    record = Message(topic="orders.events", key=message.key, value=message.value, headers=list(message.headers.items()))
    with tracing.consuming(record, "billing") as span:
        print(span.is_recording(), tracing.arrived_trace_id(), tracing.current_trace_id() is not None)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == [
        "False",
        "False 0af7651916cd43dd8448eb211c80319c True",
        "False None True",
    ], done.stderr
