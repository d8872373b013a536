"""What a Prometheus can scrape from every service: what its consumer did with
each event, how far behind it is, what waits in its outbox and how long the
relay's publishes take. Counters are kept as things happen; the lag and the
outbox are read when scraped, from what the consumer last saw and the store."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from confluent_kafka import Consumer
from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventbus.store import StoreUnavailable

disable_created_metrics()  # no `_created` series beside every counter: nothing here reads them
EVENTS = Counter(
    "consumer_events",
    "Records this service's consumer finished with, by event type (other: none of ours) and outcome"
    " (handled, duplicate: skipped by the ledger, dead_lettered, ignored: a type it does not know)",
    ["type", "outcome"],
)
RELAY_PUBLISH = Histogram(
    "outbox_relay_publish_seconds",
    "From handing a batch of outbox rows to the producer until Kafka acknowledged all of them",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


TAKE_EVERY_S = 1.0  # how stale the consumer lag may be when scraped


class ConsumerLag(Collector):
    """Records on the broker that the consumer has not finished yet, per partition:
    the partition's end offset (as of the last fetch) less the consumer's position.
    Taken by the consumer's own thread after a poll, from what the client knows
    already (no request to the broker), at most every TAKE_EVERY_S: taking it
    after every poll cost a tenth of a service's CPU once polls came one event
    at a time."""

    def __init__(self):
        self._lag: dict[tuple[str, int], int] = {}
        self._taken_at = -TAKE_EVERY_S

    def take(self, consumer: Consumer) -> None:
        if time.monotonic() - self._taken_at < TAKE_EVERY_S:
            return
        self._taken_at = time.monotonic()
        lag = {}
        for partition in consumer.position(consumer.assignment()):
            _, end = consumer.get_watermark_offsets(partition, cached=True)
            if partition.offset >= 0 and end >= 0:  # both known: something was read from it
                lag[partition.topic, partition.partition] = max(end - partition.offset, 0)
        self._lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "consumer_lag", "Records on the partition this consumer has not finished yet", labels=["topic", "partition"]
        )
        for (topic, partition), lag in sorted(self._lag.items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


class Outbox(Collector):
    """The outbox as it is when scraped: rows not yet acknowledged by Kafka, and the age of the oldest."""

    def __init__(self):
        self._oldest_pending: Callable[[], tuple[int, str | None]] | None = None

    def watch(self, oldest_pending: Callable[[], tuple[int, str | None]]) -> None:
        """Report the outbox that `oldest_pending` reads: (rows waiting, when the oldest was written)."""
        self._oldest_pending = oldest_pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._oldest_pending is None:
            return
        try:
            count, oldest = self._oldest_pending()
        except StoreUnavailable:
            return  # absent while the database cannot be read: not a false zero

        age = (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("outbox_pending_rows", "Outbox rows Kafka has not acknowledged yet", value=count)
        yield GaugeMetricFamily(
            "outbox_oldest_pending_age_seconds", "How long the oldest unacknowledged outbox row has waited", value=age
        )


LAG = ConsumerLag()
OUTBOX = Outbox()
REGISTRY.register(LAG)  # beside the counters, which register themselves as they are defined
REGISTRY.register(OUTBOX)


def serve(host: str, port: int) -> None:
    """Serve the metrics at http://host:port/metrics, from a thread of the client library."""
    start_http_server(port, host)
