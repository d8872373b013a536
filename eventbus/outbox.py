"""The transactional outbox: events are written in the same transaction as
the state change that caused them, then a relay publishes them to Kafka.

A row is marked sent only once Kafka has acknowledged it, and only by the
relay that still holds the outbox's claim; a row published again (after a
crash, or by the next holder) keeps its headers, so its duplicate carries the
same ce_id.
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
from eventbus.kafka import SEND_TIMEOUT_MS, Partition, make_producer, reachable
from eventbus.settings import Settings
from eventbus.store import Store, StoreUnavailable, Transaction
from eventbus.tuning import Pacer

log = logging.getLogger(__name__)
BATCH = 500
IDLE_POLL = 0.5
MARK_EVERY_S = 0.2
PRUNE_EVERY_S = 10.0
FLUSH_TIMEOUT_S = SEND_TIMEOUT_MS / 1000 + 5
EPOCH_HEADER = "relay_epoch"  # "<service>:<epoch of its relay's claim>", on every record a relay publishes
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

    The claim keeps the relays live, and its epoch fences them. Each record
    carries the epoch its holder took the claim at (EPOCH_HEADER). A holder
    paused or cut off until it lost the claim, that wakes in the middle of a
    batch, may still get the rest of it into Kafka; but it marks nothing sent
    (the mark checks the claim in its own transaction), so the next holder
    publishes those rows again, and every reader of ours drops a record
    older than one it has read from the same relay on that partition (Fence).
    The fence is a number in the store, not a clock; why not Kafka
    transactions: docs/performance.md.

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
        self._producer: Producer | None = None
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
                self._producer = None  # the next round starts a new one, with nothing of this one's queued
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
        if not held and self._unmarked:
            self._mark_sent()  # what this relay sent, if no one took the claim since
        return held

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
        self._producer = producer = self._producer or make_producer(self._settings)
        began, epoch, failed = time.monotonic(), f"{self._settings.service}:{self._claim.epoch}".encode(), []
        for row in rows:
            self._send(producer, row, epoch, failed)
        unanswered = producer.flush(FLUSH_TIMEOUT_S)
        if failed or unanswered:
            if self._unmarked:
                self._mark_sent()  # the earlier batches' rows, which were acknowledged
            raise KafkaException(failed[0] if failed else KafkaError(KafkaError._MSG_TIMED_OUT, "no answer"))
        metrics.RELAY_PUBLISH.observe(time.monotonic() - began)
        self._unmarked += [row["id"] for row in rows]
        if mark_now or self._mark_due_in() <= 0:
            self._mark_sent()
        return len(rows)

    @staticmethod
    def _send(producer: Producer, row: dict, epoch: bytes, failed: list[KafkaError]) -> None:
        """Hand one row to the producer, stamped with the claim's epoch, inside a
        producer span, child of the span that wrote the row; Kafka's answer ends
        the span, and a refusal joins `failed`."""
        headers = dict(_headers(row["headers"])) | {EPOCH_HEADER: epoch}  # a dead letter's came from its original
        span = tracing.publishing(row["topic"], row["key"], headers)

        def answered(error: KafkaError | None, message) -> None:
            tracing.published(span, error, message)
            if error is not None:
                failed.append(error)

        producer.produce(
            row["topic"], value=row["value"], key=row["key"], headers=list(headers.items()), on_delivery=answered
        )

    def _mark_due_in(self) -> float:
        return self._marked_at + MARK_EVERY_S - time.monotonic()

    def _mark_sent(self) -> None:
        """Mark every acknowledged row sent, in one transaction, which every
        PRUNE_EVERY_S also deletes the rows sent longer ago than the retention.
        Only while no one took the claim since: a later holder's records may
        already be on the topic, and readers drop this relay's that come after
        them, so that holder must publish these rows again."""
        sent = self._unmarked
        with self._store.transaction() as tx:
            if not self._claim.still_held(tx):
                log.info("Outbox relay lost its claim: the next holder publishes its %d unmarked rows again", len(sent))
            else:
                tx.execute(
                    f"UPDATE outbox SET sent_at = ? WHERE id IN ({','.join('?' * len(sent))})", [timestamp(), *sent]
                )
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                    prune(tx, self._settings.outbox_retention_s)
                    self._pruned_at = time.monotonic()
        self._unmarked = []
        self._marked_at = time.monotonic()


class Fence:
    """What a reader of ours drops: a record a relay sent under an older claim
    than a record from that relay it has read on the same partition. That
    relay was paused or cut off while another took its claim, and the other
    publishes every row it had not marked sent again (see Relay); a copy that
    comes before the new holder's records is kept, and the ledger knows its
    duplicate. In memory: after a restart or a rebalance, a late copy is
    read like any duplicate."""

    def __init__(self):
        self._newest: dict[tuple[Partition, str], int] = {}

    def stale(self, partition: Partition, headers: dict[str, bytes]) -> bool:
        relay, _, epoch = (headers.get(EPOCH_HEADER) or b"").decode("latin-1").rpartition(":")
        if not epoch.isdigit():
            return False  # not sent by a relay of ours
        newest = self._newest.get((partition, relay), 0)
        if int(epoch) < newest:
            return True
        self._newest[partition, relay] = int(epoch)
        return False


def _text(value: bytes | None) -> str | None:
    """Header bytes as JSON-safe text, losslessly (Kafka allows null values)."""
    return None if value is None else value.decode("latin-1")


def _headers(stored: str) -> list[tuple[str, bytes | None]]:
    return [(name, None if value is None else value.encode("latin-1")) for name, value in json.loads(stored).items()]
