"""Reading the topics as a bystander: every partition of orders.events and its
dead-letter topic, outside any consumer group, so nothing is committed and no
service's share of the work changes. The test driver and `make tail` read them
this way."""

import json
import time
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from devstack.kafka import client
from eventbus import tracing
from eventbus.settings import Settings

DEFAULTS = Settings(service="topic-reader")
TOPICS = (DEFAULTS.topic, DEFAULTS.dead_letter_topic)
TIMEOUT_S = 10  # for an answer about the topics: partitions, end offsets
Partition = tuple[str, int]  # (topic, partition)
BATCH = 500  # messages taken at once
GROUPS = ("orders", "billing", "notifications")  # each service's consumer group is its name


@dataclass(frozen=True)
class Seen:
    """One message read from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch, when it reached Kafka
    key: str | None
    headers: dict[str, str]
    payload: dict | None  # None when the value is not a JSON object
    value: str

    @property
    def type(self) -> str | None:
        return self.headers.get("ce_type")

    @property
    def id(self) -> str | None:
        return self.headers.get("ce_id")

    @property
    def trace_id(self) -> str | None:
        return tracing.trace_id(self.headers.get("traceparent"))

    @property
    def reason(self) -> str | None:
        """Why it was dead-lettered; None for a message that was not."""
        return self.headers.get("dlq_reason")


def seen(record: Message) -> Seen:
    headers = {name: value.decode(errors="replace") for name, value in record.headers() or [] if value is not None}
    value = (record.value() or b"").decode(errors="replace")
    try:
        payload = json.loads(value)
    except ValueError:
        payload = None
    key = record.key().decode(errors="replace") if record.key() else None
    return Seen(
        record.topic(),
        record.partition(),
        record.offset(),
        record.timestamp()[1],
        key,
        headers,
        payload if isinstance(payload, dict) else None,
        value,
    )


def bystander(bootstrap_servers: str) -> Consumer:
    """A consumer to assign partitions to. librdkafka wants a group.id all the
    same; with assign() and nothing committed, the group is never joined. It
    says when it reaches the end of a partition (see read_to_end)."""
    return Consumer(
        client(bootstrap_servers) | {"group.id": "bystander", "enable.auto.commit": False, "enable.partition.eof": True}
    )


def partitions(consumer: Consumer, topics: tuple[str, ...], timeout: float = TIMEOUT_S) -> list[TopicPartition]:
    """Every partition of `topics`; none of a topic that does not exist."""
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
    ]


def end_offsets(consumer: Consumer, assigned: list[TopicPartition], timeout: float = TIMEOUT_S) -> dict[Partition, int]:
    """The offset the next message on each partition will get."""
    return {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in assigned}


def lag_by_group(bootstrap_servers: str, groups: tuple[str, ...] = GROUPS) -> dict[str, int]:
    """For each consumer group, the messages on orders.events it has not
    committed yet (a partition it never committed lags by all it holds)."""
    consumer = bystander(bootstrap_servers)
    try:
        assigned = partitions(consumer, (DEFAULTS.topic,))
        ends = end_offsets(consumer, assigned)
    finally:
        consumer.close()
    admin = AdminClient(client(bootstrap_servers))
    lag = {}
    for group in groups:
        committed = _committed(admin, group, assigned)
        lag[group] = sum(  # max(): a commit may land between reading the ends and the offsets
            max(end - committed.get(partition, 0), 0) for partition, end in ends.items()
        )
    return lag


def _committed(admin: AdminClient, group: str, assigned: list[TopicPartition]) -> dict[Partition, int]:
    """The group's committed offsets; a partition it never committed is left out."""
    asked = ConsumerGroupTopicPartitions(group, assigned)
    answer = _retrying(lambda: admin.list_consumer_group_offsets([asked])[group].result())
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def _retrying(call, attempts: int = 20):
    """A group coordinator still loading its offsets answers with a retriable error."""
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as error:
            if not error.args[0].retriable() or attempt == attempts - 1:
                raise
            time.sleep(0.5)


def arrived(consumer: Consumer, timeout: float) -> list[Message]:
    """The messages that have arrived, as soon as there is one (waiting up to
    `timeout`), less the errors: librdkafka retries by itself, and a bystander
    has nothing to do about one. (consume() alone would wait out its timeout
    unless its whole batch came in.)"""
    first = consumer.poll(timeout)
    records = [first, *consumer.consume(BATCH, 0)] if first is not None else []
    return [record for record in records if record.error() is None]


def read_to_end(consumer: Consumer, timeout: float = TIMEOUT_S) -> list[Message]:
    """Every message from where the consumer's partitions are assigned to where
    each one ends, then stop. The end is where the client says it reached it,
    not the last message's offset: a transaction's commit marker takes an
    offset too, and no message has it."""
    left = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    found: list[Message] = []
    while left:
        first = consumer.poll(timeout)
        if first is None:
            raise KafkaException(f"{', '.join(sorted({topic for topic, _ in left}))} stopped answering")
        for record in [first, *consumer.consume(BATCH, 0)]:
            where = (record.topic(), record.partition())
            if record.error() is None:
                found.append(record)
            elif record.error().code() == KafkaError._PARTITION_EOF:
                left.discard(where)
    return found


def reader(
    bootstrap_servers: str, topics: tuple[str, ...] = TOPICS, from_beginning: bool = True, timeout: float = TIMEOUT_S
) -> Consumer:
    """A consumer assigned every partition of `topics`, at their beginning or at
    their end as of now (resolved here, so nothing sent after this returns is missed).
    Raises KafkaException when the broker does not answer within `timeout`."""
    consumer = bystander(bootstrap_servers)
    try:
        assigned = partitions(consumer, topics, timeout)
        if from_beginning:
            starts = {(tp.topic, tp.partition): OFFSET_BEGINNING for tp in assigned}
        else:
            starts = end_offsets(consumer, assigned, timeout)
    except KafkaException:
        consumer.close()
        raise
    consumer.assign([TopicPartition(topic, p, offset) for (topic, p), offset in starts.items()])
    return consumer
