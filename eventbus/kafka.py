"""The one producer set-up and the one consumer set-up, and waiting for the broker."""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from eventbus.pacing import Pacer
from eventbus.settings import Settings

log = logging.getLogger(__name__)
Client = TypeVar("Client")
COMMIT_INTERVAL = 1.0  # seconds
# Fetch pacing: a fetch returns at its first byte (or after 500 ms) unless the
# pacer (eventbus/pacing.py) says to hold it: then the broker holds it that long
# to fill it; a consumer nobody waits on (RELAXED) has every fetch held 500 ms.
IDLE = {"fetch_min_bytes": 1, "fetch_max_wait_ms": 500}
HELD_MIN_BYTES = 256 * 1024
RELAXED = {"fetch_min_bytes": 1024 * 1024, "fetch_max_wait_ms": 500}
IDLE_POLL_MS, HELD_POLL_MS = 500, 50


def make_producer(settings: Settings) -> KafkaProducer:
    """acks=all with idempotence: a retried send never writes a second copy."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.service,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_block_ms=5_000,
        reconnect_backoff_max_ms=2_000,
        metrics_enabled=False,  # sensors cost CPU on every request, and nothing reads them
    )


def make_consumer(settings: Settings, group: str) -> KafkaConsumer:
    """Offsets are committed by the consumer loop, only after the work is durable.

    With an instance id (static membership), a restarted process takes back its
    partitions at once instead of waiting for a rebalance."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.instance or settings.service,
        group_id=group,
        group_instance_id=settings.instance,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        reconnect_backoff_max_ms=2_000,
        metrics_enabled=False,
    )
    consumer.subscribe([settings.topic])
    return consumer


class Poller:
    """How every consumer of ours polls and commits.

    Fetches are held to fill only when the process is short of CPU: every
    fetch costs the client and the broker about the same whatever it carries,
    so the pacer (eventbus/pacing.py) weighs this process's demand for CPU
    and the records coming in, and the broker is asked to hold each fetch
    that long; with no hold, fetches return at the first byte. kafka-python reads these
    two settings each time it builds a fetch request (there is no public
    setter, hence `_fetcher`).

    A relaxed poller is for a consumer whose work nobody waits on: its fetches
    are always held to fill, so it costs a few polls a second at any rate.

    Offsets of finished work are committed at most every COMMIT_INTERVAL (and
    at close): committing less often only means more idempotent redelivery
    after a crash."""

    def __init__(self, consumer: KafkaConsumer, relaxed: bool = False, pacer: Pacer | None = None):
        self._consumer = consumer
        self._relaxed = relaxed
        self._pacer = pacer or Pacer()
        self._hold_ms = 0
        if relaxed:
            consumer._fetcher.config.update(RELAXED)
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = 0.0

    def poll(self) -> dict:
        batches = self._consumer.poll(timeout_ms=HELD_POLL_MS if self._hold_ms else IDLE_POLL_MS)
        if not self._relaxed:
            self._pacer.count(sum(len(records) for records in batches.values()))
            hold_ms = round(self._pacer.hold() * 1000)
            if hold_ms != self._hold_ms:
                self._hold_ms = hold_ms
                self._consumer._fetcher.config.update(held(hold_ms) if hold_ms else IDLE)
        return batches

    def done(self, next_offsets: dict[TopicPartition, int]) -> None:
        """The work up to these offsets is durable: commit them, now or soon."""
        self._uncommitted |= next_offsets
        if self._uncommitted and time.monotonic() - self._committed_at >= COMMIT_INTERVAL:
            self._commit(wait=False)

    def close(self) -> None:
        """Commit what is done and wait for the answer."""
        if self._uncommitted:
            self._commit(wait=True)

    def _commit(self, wait: bool) -> None:
        commit(self._consumer, self._uncommitted, wait=wait)
        self._uncommitted = {}
        self._committed_at = time.monotonic()


def held(hold_ms: int) -> dict:
    """Fetch settings that have the broker hold a fetch `hold_ms` to fill it."""
    return {"fetch_min_bytes": HELD_MIN_BYTES, "fetch_max_wait_ms": hold_ms}


def commit(consumer: KafkaConsumer, next_offsets: dict[TopicPartition, int], wait: bool = False) -> None:
    """Commit the offsets to read next, for every partition at once, by default
    without waiting for the answer. Call it only once the work they cover is
    durable: a commit that is lost means that work is redone, idempotently."""
    offsets = {partition: OffsetAndMetadata(offset, "", -1) for partition, offset in next_offsets.items()}
    if not wait:
        consumer.commit_async(offsets, callback=_report_failed_commit)
        return
    try:
        consumer.commit(offsets, timeout_ms=5_000)
    except KafkaError as error:
        _report_failed_commit(offsets, error)


def _report_failed_commit(offsets, result) -> None:
    if isinstance(result, Exception):
        log.warning("Offset commit failed (%s); the work since the last one will be redone, idempotently", result)


def connect(factory: Callable[[], Client], stop: threading.Event, what: str) -> Client | None:
    """Build a Kafka client, retrying with backoff while the broker is unreachable.

    Returns None when asked to stop before the broker answered.
    """
    delay = 0.5
    while not stop.is_set():
        try:
            return factory()
        except KafkaError as error:
            log.warning("Kafka unreachable for %s (%s); retrying in %.1fs", what, error, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10)
    return None
