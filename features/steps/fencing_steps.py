"""Two relays of one outbox, on the stack's real Kafka: one paused in the middle
of a batch while its claim passes to the other (eventbus/outbox.py, Relay)."""

import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

from behave import given, then, when
from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.kafka import client
from eventbus import outbox
from eventbus.settings import Settings
from eventbus.store import open_store
from features.driver import DEFAULT_TIMEOUT, wait_until


@given("a relay that has sent the first of {count:d} outbox rows in a batch when it is paused")
def step_paused_relay(context, count):
    run = uuid.uuid4().hex[:8]
    context.fencing_topic = f"fencing.{run}"  # a topic of its own: no service reads it
    admin = AdminClient(client(context.driver.bootstrap_servers))
    admin.create_topics([NewTopic(context.fencing_topic, 1, _replication(admin))])[context.fencing_topic].result()
    folder = Path(tempfile.mkdtemp(prefix="fencing-"))
    settings = Settings(service=f"fencing-{run}", data_dir=folder, bootstrap_servers=context.driver.bootstrap_servers)
    store = open_store(settings)
    context.add_cleanup(store.close)
    outbox.create(store)
    with store.transaction() as tx:
        for n in range(1, count + 1):
            outbox.add(
                tx,
                context.fencing_topic,
                KafkaMessage(headers={"ce_id": str(n).encode()}, key=str(n).encode(), value=b"{}"),
            )
    context.fencing = {"settings": settings, "store": store, "count": count}
    paused, woken = threading.Event(), threading.Event()
    zombie = outbox.Relay(store, settings, threading.Event())
    send = zombie._send

    def send_then_pause(producer, row, *stamp) -> None:
        send(producer, row, *stamp)
        if row["key"] == b"1":
            producer.flush(DEFAULT_TIMEOUT)  # on the broker
            paused.set()
            woken.wait(DEFAULT_TIMEOUT * 3)

    zombie._send = send_then_pause
    assert zombie._holds_claim()
    done: Future = Future()
    threading.Thread(target=lambda: _outcome(done, zombie._publish_batch), daemon=True).start()
    assert paused.wait(DEFAULT_TIMEOUT), "the relay did not send its first row"
    context.fencing |= {"zombie": zombie, "woken": woken, "done": done}
    context.add_cleanup(woken.set)


@when("its claim passes to another relay, which publishes the {count:d} rows")
def step_successor(context, count):
    fencing = context.fencing
    fencing["zombie"]._claim.release()  # as the server does when its holder falls silent
    successor = outbox.Relay(open_store(fencing["settings"]), fencing["settings"], threading.Event())
    assert successor._holds_claim()
    successor._marked_at = time.monotonic() + DEFAULT_TIMEOUT  # its marks wait: what the paused relay marks shows
    assert successor._publish_batch() == count
    fencing["successor"] = successor


@when("the paused relay wakes and goes on with its batch")
def step_wake(context):
    context.fencing["woken"].set()


@then("Kafka takes the rest of its batch, but it marks none of the {count:d} rows sent")
def step_not_marked(context, count):
    fencing = context.fencing
    sent = fencing["done"].result(DEFAULT_TIMEOUT)
    assert sent == count, f"the woken relay published {sent} rows"  # acknowledged: nothing refused it
    assert fencing["zombie"]._unmarked == []
    pending = outbox.pending(fencing["store"])
    assert pending == count, f"{count - pending} of the {count} rows were marked sent"
    fencing["successor"]._mark_sent()
    assert outbox.pending(fencing["store"]) == 0


@then("a reader of ours drops its copies that came after the other relay's, and reads the rows {keys}")
def step_fenced_reader(context, keys):
    fence = outbox.Fence()
    records = _records(context)
    read = [key for key, headers in records if not fence.stale((context.fencing_topic, 0), headers)]
    assert read == [key.strip().encode() for key in keys.split(",")], [(key, h["relay_epoch"]) for key, h in records]
    assert len(records) == 2 * context.fencing["count"]  # the paused relay's late copies did reach Kafka


@then("the two copies of row 1 share its ce_id")
def step_same_id(context):
    assert [headers["ce_id"] for key, headers in _records(context) if key == b"1"] == [b"1", b"1"]


def _records(context) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record's key and headers on the scenario's topic, up to its end."""
    consumer = Consumer(
        client(context.driver.bootstrap_servers) | {"group.id": "fencing-reader", "enable.auto.commit": False}
    )
    try:
        partition = TopicPartition(context.fencing_topic, 0, 0)
        consumer.assign([partition])
        _, end = consumer.get_watermark_offsets(partition, timeout=DEFAULT_TIMEOUT)
        records = []

        def reached_end() -> bool:
            record = consumer.poll(0.2)
            if record is not None and record.error() is None:
                records.append((record.key(), dict(record.headers() or [])))
            return consumer.position([partition])[0].offset >= end

        wait_until(reached_end, f"reading {context.fencing_topic} to offset {end}", DEFAULT_TIMEOUT)
        return records
    finally:
        consumer.close()


def _replication(admin: AdminClient) -> int:
    return min(3, len(admin.list_topics(timeout=DEFAULT_TIMEOUT).brokers))


def _outcome(future: Future, work) -> None:
    try:
        future.set_result(work())
    except Exception as error:
        future.set_exception(error)
