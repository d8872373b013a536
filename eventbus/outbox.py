"""The transactional outbox: events are written in the same transaction as
the state change that caused them, then a relay publishes them to Kafka.

A row is marked sent only once the Kafka transaction it was sent in has
committed; a row published again after a crash keeps its headers, so its
duplicate carries the same ce_id.
Marks are written together, at most every MARK_EVERY_S: one write transaction
for many relay rounds instead of one per round, at the price of a few more
duplicates (same ce_id, absorbed by the consumers' ledgers) after a crash.
Sent rows are deleted once they are older than the retention setting
(OUTBOX_RETENTION_S), so the outbox stays as large as that window, not as
large as the history; the events themselves live on in Kafka.
"""

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import KafkaError, KafkaException, Producer

from eventbus import metrics, tracing
from eventbus.contracts import Event, timestamp
from eventbus.envelope import seal
from eventbus.kafka import SEND_TIMEOUT_MS, make_producer, reachable
from eventbus.settings import Settings
from eventbus.store import Store, StoreUnavailable, Transaction
from eventbus.tuning import Pacer

log = logging.getLogger(__name__)
BATCH = 500
IDLE_POLL = 0.5
MARK_EVERY_S = 0.2
PRUNE_EVERY_S = 10.0
FLUSH_TIMEOUT_S = SEND_TIMEOUT_MS / 1000 + 5
# A new holder's init_transactions() waits while Kafka still aborts the last holder's
# transaction (CONCURRENT_TRANSACTIONS): asked again this often, this many times.
INIT_TIMEOUT_S, INIT_TRIES = 3.0, 5
PROBE_TIMEOUT_S = 2.0  # after losing Kafka, how long each probe waits for it to answer
CHANNEL = "outbox"  # notified on commit of new rows, for a relay in another process


def create(store: Store) -> None:
    store.create_table(
        "outbox",
        {"id": "id", "topic": str, "key": bytes, "value": bytes, "headers": str, "created_at": str, "sent_at": str},
        pk="id",
    )
    with store.transaction() as tx:
        tx.hold("outbox")  # one replica at a time: CREATE INDEX IF NOT EXISTS races another's
        tx.execute("CREATE INDEX IF NOT EXISTS idx_outbox_sent_at ON outbox (sent_at)")


def add(tx: Transaction, topic: str, message: KafkaMessage) -> None:
    """Queue `message` for `topic`. Call inside the transaction of the state change."""
    headers = json.dumps({name: _text(value) for name, value in message.headers.items()})
    tx.execute(
        "INSERT INTO outbox (topic, key, value, headers, created_at) VALUES (?, ?, ?, ?, ?)",
        (topic, message.key, message.value, headers, timestamp()),
    )
    tx.notify(CHANNEL)


def add_event(tx: Transaction, settings: Settings, event: Event) -> None:
    """Queue one of this service's events for the events topic, in the caller's transaction."""
    add(tx, settings.topic, seal(event, settings.service))


def prune(tx: Transaction, retention_s: float) -> int:
    """Delete the rows sent more than `retention_s` ago; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
    return tx.execute(
        "DELETE FROM outbox WHERE sent_at < ?", [cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z")]
    ).rowcount


def pending(store: Store | Transaction) -> int:
    return store.query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"]


def oldest_pending(store: Store | Transaction) -> tuple[int, str | None]:
    """How many rows wait for Kafka, and when the oldest of them was written."""
    row = store.query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE sent_at IS NULL")[0]
    return row["n"], row["oldest"]


class Relay:
    """Publishes pending outbox rows in order, in a thread of its own.

    Replicas of a service share one outbox; the store's claim makes one relay
    at a time publish it, so rows go out once and in order. A replica that dies
    or goes silent loses the claim, and one that cannot reach Kafka lets it go:
    another takes over. Rows committed by another replica
    wake this relay through the store's notifications; polling is the fallback.

    The claim keeps the relays live; Kafka fences them. The holder publishes
    each batch in a Kafka transaction, under one transactional id per outbox,
    and a new holder's producer calls init_transactions() before it sends:
    Kafka then aborts what the last holder left open and refuses whatever it
    sends from then on. So a holder paused or cut off until it lost the claim,
    that wakes in the middle of a batch, publishes nothing more: its commit
    fails, it marks nothing sent, and it finds the claim taken. The fence is
    the producer epoch Kafka keeps, not a clock.

    A relay that lost Kafka asks for the claim again only once a metadata
    probe of its own answers: until then, it would only take the claim from
    a replica that can publish.
    """

    def __init__(self, store: Store, settings: Settings, stop: threading.Event):
        self._store = store
        self._settings = settings
        self._stop = stop
        self._wake = threading.Event()
        self._pacer = Pacer()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._claim = store.claim("outbox-relay")
        self._producer: Producer | None = None  # while holding the claim: fenced in, every earlier holder out
        self._unmarked: list[int] = []  # sent and acknowledged, not yet marked sent
        self._marked_at = 0.0
        self._pruned_at = 0.0
        self._kafka_lost = False

    def start(self) -> None:
        self._store.listen(CHANNEL, self.wake)
        self._thread.start()

    def wake(self) -> None:
        """Something was committed to the outbox: publish it now."""
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait for the relay to finish after `stop`; False if it is still busy."""
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            self._wake.clear()
            round_at = time.monotonic()
            try:
                published = self._publish_batch() if self._reaches_kafka() and self._holds_claim() else 0
                delay = 0.5
            except Exception as error:  # the relay must outlive any outage, Kafka's or the database's
                log.warning(
                    "Outbox relay cannot publish (%s); retrying in %.1fs",
                    error,
                    delay,
                    exc_info=not isinstance(error, KafkaException | StoreUnavailable),
                )
                self._producer = None  # the next round starts a new one, which aborts what this one left open
                if isinstance(error, KafkaException):
                    self._claim.release()  # a replica that can reach Kafka publishes meanwhile
                    self._kafka_lost = True
                self._stop.wait(delay)
                delay = min(delay * 2, 10)
                continue
            if published < BATCH:
                self._wake.wait(IDLE_POLL if not self._unmarked else max(self._mark_due_in(), 0.001))
            self._pacer.count(published)
            if published:  # short of CPU, rows gather a moment (eventbus.tuning)
                self._stop.wait(max(round_at + self._pacer.hold() - time.monotonic(), 0))
        try:
            if self._holds_claim():
                self._publish_batch_before_exit()
            self._claim.release()
        except StoreUnavailable:
            log.info("Outbox rows left unmarked at shutdown are sent again, with the same ce_id, on the next start")

    def _reaches_kafka(self) -> bool:
        """True unless Kafka was lost and a probe does not get an answer yet (each probe bounded)."""
        if self._kafka_lost:
            if not reachable(self._settings, PROBE_TIMEOUT_S):
                return False
            log.info("Outbox relay reaches Kafka again; it asks for the claim")
            self._kafka_lost = False
        return True

    def _holds_claim(self) -> bool:
        """False while another live relay publishes this outbox."""
        held = self._claim.held()
        if not held:
            if self._unmarked:
                self._mark_sent()  # what this relay sent before it lost the claim
            self._producer = None  # fenced out by the next holder's anyway
        return held

    def _fenced_producer(self) -> Producer:
        """This holder's producer. Making it fences every earlier holder's out."""
        if self._producer is None:
            producer = make_producer(self._settings, transactional_id=f"{self._settings.service}.outbox-relay")
            for attempt in range(1, INIT_TRIES + 1):
                try:
                    producer.init_transactions(INIT_TIMEOUT_S)
                    break
                except KafkaException as error:
                    if attempt == INIT_TRIES or not _retriable(error):
                        raise
                    log.info("Outbox relay's init_transactions: %s; asking again", error.args[0].str())
            self._producer = producer
        return self._producer

    def _publish_batch_before_exit(self) -> None:
        try:
            self._publish_batch(mark_now=True)
        except KafkaException:
            log.info("Outbox rows left unpublished at shutdown are sent on the next start")

    def _publish_batch(self, mark_now: bool = False) -> int:
        rows = self._store.query(
            "SELECT id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL AND id > ? ORDER BY id LIMIT ?",
            [self._unmarked[-1] if self._unmarked else 0, BATCH],
        )
        if not rows:
            if self._unmarked and (mark_now or self._mark_due_in() <= 0):
                self._mark_sent()
            return 0
        producer = self._fenced_producer()
        began = time.monotonic()
        producer.begin_transaction()
        for row in rows:
            self._send(producer, row)
        try:
            producer.commit_transaction(FLUSH_TIMEOUT_S)  # all acknowledged and visible, or none
        except KafkaException:
            if self._unmarked:
                self._mark_sent()  # the earlier batches' rows, which were committed
            raise
        metrics.RELAY_PUBLISH.observe(time.monotonic() - began)
        self._unmarked += [row["id"] for row in rows]
        if mark_now or self._mark_due_in() <= 0:
            self._mark_sent()
        return len(rows)

    @staticmethod
    def _send(producer: Producer, row: dict) -> None:
        """Hand one row to the producer inside a producer span, child of the span
        that wrote the row; Kafka's answer ends the span."""
        headers = dict(_headers(row["headers"]))
        span = tracing.publishing(row["topic"], row["key"], headers)
        producer.produce(
            row["topic"],
            value=row["value"],
            key=row["key"],
            headers=list(headers.items()),
            on_delivery=lambda error, message: tracing.published(span, error, message),
        )

    def _mark_due_in(self) -> float:
        return self._marked_at + MARK_EVERY_S - time.monotonic()

    def _mark_sent(self) -> None:
        """Mark every acknowledged row sent, in one transaction, which every
        PRUNE_EVERY_S also deletes the rows sent longer ago than the retention."""
        sent = self._unmarked
        with self._store.transaction() as tx:
            tx.execute(f"UPDATE outbox SET sent_at = ? WHERE id IN ({','.join('?' * len(sent))})", [timestamp(), *sent])
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                prune(tx, self._settings.outbox_retention_s)
                self._pruned_at = time.monotonic()
        self._unmarked = []
        self._marked_at = time.monotonic()


def _retriable(error: KafkaException) -> bool:
    """What Kafka says may pass if asked again: a time-out, or the last holder's transaction still aborting."""
    reason = error.args[0]
    return reason.retriable() or reason.code() in (KafkaError.CONCURRENT_TRANSACTIONS, KafkaError._TIMED_OUT)


def _text(value: bytes | None) -> str | None:
    """Header bytes as JSON-safe text, losslessly (Kafka allows null values)."""
    return None if value is None else value.decode("latin-1")


def _headers(stored: str) -> list[tuple[str, bytes | None]]:
    return [(name, None if value is None else value.encode("latin-1")) for name, value in json.loads(stored).items()]
