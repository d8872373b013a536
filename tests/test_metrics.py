"""What each service tells Prometheus: events by type and outcome, consumer lag
per partition, the outbox's depth and age, relay and HTTP durations."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from confluent_kafka import OFFSET_INVALID, TopicPartition
from prometheus_client import REGISTRY

from eventbus import metrics, outbox
from eventbus.consumer import ConsumerLoop, Handler
from eventbus.envelope import seal
from eventbus.settings import Settings
from generated.order_created import OrderCreated
from services.orders.api import make_app

ORDER = OrderCreated(orderId=7, userId=1, itemId=2, qty=1, ts="2026-11-27T10:00:00.000Z")


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_events_are_counted_by_type_and_outcome(store, stop, fake_consumer, kafka_record):
    before = {
        outcome: value("consumer_events_total", type="OrderCreated", outcome=outcome)
        for outcome in ("handled", "duplicate")
    }
    poison_before = value("consumer_events_total", type="other", outcome="dead_lettered")
    records = [kafka_record(seal(ORDER, "orders"), offset=n) for n in (0, 1)]
    records.append(kafka_record(headers={"ce_id": b"1"}, value=b"garbage", offset=2))
    handler = Handler(lambda order, tx: [], once_per=lambda order: order.orderId, ledger_name="billing.charge")
    ConsumerLoop(fake_consumer(records), store, Settings(service="billing"), {OrderCreated: handler}, lambda: None).run(
        stop
    )
    assert value("consumer_events_total", type="OrderCreated", outcome="handled") == before["handled"] + 1
    assert value("consumer_events_total", type="OrderCreated", outcome="duplicate") == before["duplicate"] + 1
    assert value("consumer_events_total", type="other", outcome="dead_lettered") == poison_before + 1


def test_lag_is_the_end_of_each_partition_less_the_consumers_position():
    positions = {0: 5, 1: 9, 2: OFFSET_INVALID}  # nothing read from partition 2 yet
    ends = {0: 8, 1: 9, 2: 4}
    consumer = SimpleNamespace(
        assignment=lambda: [TopicPartition("orders.events", partition) for partition in positions],
        position=lambda partitions: [TopicPartition(p.topic, p.partition, positions[p.partition]) for p in partitions],
        get_watermark_offsets=lambda partition, cached: (0, ends[partition.partition]),
    )
    lag = metrics.ConsumerLag()
    lag.take(consumer)
    [family] = lag.collect()
    assert {sample.labels["partition"]: sample.value for sample in family.samples} == {"0": 3, "1": 0}
    positions[0] = 8
    lag.take(consumer)  # within TAKE_EVERY_S of the last: not taken again
    [family] = lag.collect()
    assert {sample.labels["partition"]: sample.value for sample in family.samples} == {"0": 3, "1": 0}


def test_the_outbox_reports_its_pending_rows_and_the_age_of_the_oldest(store):
    written = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.transaction() as tx:
        for _ in range(2):
            outbox.add_event(tx, Settings(service="orders"), ORDER)
        tx.execute("UPDATE outbox SET created_at = ? WHERE id = 1", [written])
    gauges = metrics.Outbox()
    gauges.watch(lambda: outbox.oldest_pending(store))
    pending, age = gauges.collect()
    assert pending.samples[0].value == 2
    assert 30 <= age.samples[0].value < 40


def test_orders_serves_its_metrics_with_request_durations_by_route_and_status(call):
    app = make_app(place=None, find=dict().get, max_body_bytes=200)
    before = value("http_request_duration_seconds_count", route="/orders/<order_id:int>", method="GET", status="404")
    call(app, "GET", "/orders/12")
    response = call(app, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "consumer_events_total" in response.text and "outbox_relay_publish_seconds" in response.text
    after = value("http_request_duration_seconds_count", route="/orders/<order_id:int>", method="GET", status="404")
    assert after == before + 1
