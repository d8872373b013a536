"""An order's trace in the trace viewer, and what each service's metrics say."""

import urllib.request

from behave import given, then, when

from features.driver import wait_until
from features.observability import by_id, consumers_by_service, publish_unreadable, services

HANDLINGS = (
    6  # OrderCreated by orders, billing, notifications; PaymentCaptured by orders, notifications; EmailSent by orders
)


@then("the order's trace shows orders, billing and notifications handling it, each after the send of its event")
def step_whole_trace(context):
    trace_id = context.driver.wait_for_event(context.order_id, "EmailSent").trace_id
    spans = wait_until(
        lambda: (
            (found := context.zipkin.trace(trace_id))
            and sum(map(len, consumers_by_service(found).values())) >= HANDLINGS
            and any(span.name == "send email" for span in found)
            and _senders_arrived(found)
            and found
        ),
        f"Zipkin holds every span of order {context.order_id}'s trace {trace_id}",
    )
    assert services(spans) == {"orders", "billing", "notifications"}, services(spans)
    [request] = [span for span in spans if span.kind == "SERVER"]
    assert request.service == "orders" and request.name == "post /orders", request
    spans_by_id = by_id(spans)
    for consumer in (span for found in consumers_by_service(spans).values() for span in found):
        sender = spans_by_id.get(consumer.parent)
        assert sender and sender.kind == "PRODUCER", (consumer, sender)
        assert sender.tags["messaging.message.id"] == consumer.tags["messaging.message.id"], (consumer, sender)
        for attribute in ("messaging.destination.name", "messaging.destination.partition.id", "messaging.kafka.offset"):
            assert attribute in consumer.tags, (attribute, consumer)
        assert consumer.tags["messaging.kafka.message.key"] == str(context.order_id), consumer


@then("the order page links the order to that trace in the trace viewer")
def step_page_links_trace(context):
    trace_id = context.driver.wait_for_event(context.order_id, "EmailSent").trace_id
    reply = context.driver.latest_orders(100)
    [order] = [order for order in reply.body["orders"] if order["orderId"] == context.order_id]
    assert order["traceUrl"] and trace_id in order["traceUrl"], order
    with urllib.request.urlopen(order["traceUrl"], timeout=10) as page:  # the viewer's page of that trace
        assert page.status == 200, page.status


def _senders_arrived(spans) -> bool:
    """A producer span ends when Kafka acknowledged the send, and is exported in
    its own batch: it may reach Zipkin after the consumer spans of its event."""
    known = by_id(spans)
    return all(span.parent in known for found in consumers_by_service(spans).values() for span in found)


@then("the replay's trace shows billing skipping the duplicate")
def step_replay_trace(context):
    replay = wait_until(
        lambda: (found := context.driver.events(context.order_id, "OrderCreated"))[1:] and found[1],
        f"the second OrderCreated of order {context.order_id}",
    )
    billing = wait_until(
        lambda: consumers_by_service(context.zipkin.trace(replay.trace_id))["billing"],
        f"billing's span in the replay's trace {replay.trace_id}",
    )
    assert [span.tags["outcome"] for span in billing] == ["duplicate"], billing


@when("a message that cannot be read is published in a trace of its own")
def step_unreadable(context):
    context.unreadable_trace = publish_unreadable(context.driver.bootstrap_servers)


@then("that trace shows each service setting the message aside, saying why")
def step_dead_letter_trace(context):
    consumers = wait_until(
        lambda: (
            (found := consumers_by_service(context.zipkin.trace(context.unreadable_trace))).keys()
            >= {"orders", "billing", "notifications"}
            and found
        ),
        f"every service's span in the trace {context.unreadable_trace}",
    )
    ce_id = f"unreadable-{context.unreadable_trace}"
    reasons = wait_until(
        lambda: (
            (
                found := {
                    seen.headers["dlq_service"]: seen.headers["dlq_reason"]
                    for seen in context.driver.topic.all("orders.events.dlq")
                    if seen.headers.get("ce_id") == ce_id
                }
            ).keys()
            >= consumers.keys()
            and found
        ),
        f"each service's dead letter of {ce_id}",
    )
    for service, spans in consumers.items():
        assert [span.tags["outcome"] for span in spans] == ["dead_lettered"], (service, spans)
        assert spans[0].tags["dlq.reason"] == reasons[service], (service, spans, reasons)


@given("the counts each service reports so far")
def step_counts_before(context):
    context.driver.settle()
    context.counts_before = {
        (service, outcome, event_type): context.metrics.value(
            service, "consumer_events_total", type=event_type, outcome=outcome
        )
        for service in ("orders", "billing", "notifications")
        for outcome in ("handled", "duplicate", "dead_lettered")
        for event_type in ("OrderCreated", "PaymentCaptured", "EmailSent")
    }


def _counted(context, service: str, outcome: str, event_type: str) -> float:
    now = context.metrics.value(service, "consumer_events_total", type=event_type, outcome=outcome)
    return now - context.counts_before[service, outcome, event_type]


@then("{service} counts at least {count:d} more {event_type} events {outcome}")
def step_counted(context, service, count, event_type, outcome):
    outcome = {"handled": "handled", "skipped as duplicates": "duplicate", "dead-lettered": "dead_lettered"}[outcome]
    wait_until(
        lambda: _counted(context, service, outcome, event_type) >= count,
        f"{service} counts {count} more {event_type} {outcome}",
    )


@then("every service's consumer lag returns to 0 on every partition")
def step_lag_zero(context):
    for service in ("orders", "billing", "notifications"):
        wait_until(
            lambda service=service: (
                (lags := context.metrics.samples(service, "consumer_lag"))
                and {sample.labels["partition"] for sample in lags} >= {"0", "1", "2"}
                and all(sample.value == 0 for sample in lags)
            ),
            f"{service}'s lag is 0 on every partition",
        )


@then("orders reports its outbox emptied and how long its order requests took")
def step_orders_outbox_and_requests(context):
    wait_until(lambda: context.metrics.value("orders", "outbox_pending_rows") == 0, "orders' outbox is empty")
    requests = context.metrics.value(
        "orders", "http_request_duration_seconds_count", route="/orders", method="POST", status="201"
    )
    assert requests >= 1, requests
    assert context.metrics.value("orders", "outbox_relay_publish_seconds_count") >= 1
