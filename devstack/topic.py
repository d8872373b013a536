"""Reading the topics as a bystander: every partition of orders.events and its
dead-letter topic, outside any consumer group, so nothing is committed and no
service's share of the work changes. The test driver and `make tail` read them
this way."""

import json
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from eventbus import tracing
from eventbus.settings import Settings

DEFAULTS = Settings(service="topic-reader")
TOPICS = (DEFAULTS.topic, DEFAULTS.dead_letter_topic)


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


def seen(record: ConsumerRecord) -> Seen:
    headers = {name: value.decode(errors="replace") for name, value in record.headers or [] if value is not None}
    value = (record.value or b"").decode(errors="replace")
    try:
        payload = json.loads(value)
    except ValueError:
        payload = None
    key = record.key.decode(errors="replace") if record.key else None
    return Seen(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        key,
        headers,
        payload if isinstance(payload, dict) else None,
        value,
    )


def partitions(consumer: KafkaConsumer, topics: tuple[str, ...]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]


def reader(bootstrap_servers: str, topics: tuple[str, ...] = TOPICS, from_beginning: bool = True) -> KafkaConsumer:
    """A consumer assigned every partition of `topics`, at their beginning or at
    their end as of now (resolved here, so nothing sent after this returns is missed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    assigned = partitions(consumer, topics)
    consumer.assign(assigned)
    if from_beginning:
        consumer.seek_to_beginning()
    else:
        consumer.seek_to_end()
        for partition in assigned:
            consumer.position(partition)
    return consumer
