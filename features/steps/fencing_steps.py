"""Two relays of one outbox, on the stack's real Kafka: one paused in the middle
of a batch while its claim passes to the other (eventbus/outbox.py, Relay)."""

import tempfile
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path

from behave import given, then, when
from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import Consumer, KafkaException, TopicPartition
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

    def send_then_pause(producer, row) -> None:
        send(producer, row)
        if row["key"] == b"1":
            producer.flush(DEFAULT_TIMEOUT)  # on the broker, in its open transaction
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
    assert successor._publish_batch(mark_now=True) == count


@when("the paused relay wakes and goes on with its batch")
def step_wake(context):
    context.fencing["woken"].set()


@then("Kafka refuses the rest of its batch and it marks nothing sent")
def step_refused(context):
    error = context.fencing["done"].exception(DEFAULT_TIMEOUT)
    assert isinstance(error, KafkaException), f"the woken relay's batch ended with {error!r}"
    assert context.fencing["zombie"]._unmarked == []


@then("a read_committed reader finds each of the {count:d} rows once")
def step_committed(context, count):
    keys = _keys(context, "read_committed")
    assert sorted(keys) == [str(n).encode() for n in range(1, count + 1)], keys


@then("a read_uncommitted reader also finds the first row's aborted copy")
def step_uncommitted(context):
    keys = _keys(context, "read_uncommitted")
    assert keys.count(b"1") == 2 and len(keys) == context.fencing["count"] + 1, keys


def _keys(context, isolation: str) -> list[bytes]:
    """Every record's key on the scenario's topic, up to its end."""
    consumer = Consumer(
        client(context.driver.bootstrap_servers)
        | {"group.id": f"fencing-{isolation}", "isolation.level": isolation, "enable.auto.commit": False}
    )
    try:
        partition = TopicPartition(context.fencing_topic, 0, 0)
        consumer.assign([partition])
        _, end = consumer.get_watermark_offsets(partition, timeout=DEFAULT_TIMEOUT)
        keys = []

        def reached_end() -> bool:
            record = consumer.poll(0.2)
            if record is not None and record.error() is None:
                keys.append(record.key())
            return consumer.position([partition])[0].offset >= end

        wait_until(reached_end, f"reading {context.fencing_topic} to offset {end}", DEFAULT_TIMEOUT)
        return keys
    finally:
        consumer.close()


def _replication(admin: AdminClient) -> int:
    return min(3, len(admin.list_topics(timeout=DEFAULT_TIMEOUT).brokers))


def _outcome(future: Future, work) -> None:
    try:
        future.set_result(work())
    except Exception as error:
        future.set_exception(error)
