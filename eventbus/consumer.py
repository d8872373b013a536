"""The one consumer loop. For each message a poll returns, in one store
transaction per poll (a savepoint per message): drop a fenced-off relay's
late copy (eventbus.outbox.Fence), open the envelope, check the ledger, run
the handler, queue its events in the outbox. Only after that transaction
commits are the Kafka offsets committed; while the database cannot be
reached, nothing is committed and the poll is retried. A loop whose every
store transaction has failed for STORE_OUTAGE_S raises StoreOutage: its
service leaves the group, so that a replica that reaches the database takes
its partitions, and joins again once the database answers."""

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import Consumer, Message

from eventbus import ledger, metrics, outbox, tracing
from eventbus.contracts import EVENT_TYPES, Event
from eventbus.envelope import PoisonMessage, open_message
from eventbus.kafka import Partition, Poller
from eventbus.settings import Settings
from eventbus.store import Store, StoreUnavailable, Transaction
from eventbus.tuning import PROMPT, Pace

log = logging.getLogger(__name__)
FIRST_BACKOFF, MAX_BACKOFF = 0.05, 10.0  # seconds
REDRIVE_OF = "redrive_of"  # a dead letter sent back (make redrive): for the service in its dlq_service alone
STORE_OUTAGE_S = 5.0


class StoreOutage(Exception):
    """Every store transaction of the loop has failed for STORE_OUTAGE_S."""


class Rejected(Exception):
    """Raised by a handler for an event it can never process: it is dead-lettered."""


class TransientError(Exception):
    """Raised by a handler when something outside is briefly unavailable: retried."""


@dataclass(frozen=True)
class Handler:
    """How a service reacts to one event type.

    `handle` gets the event and the open transaction and returns the events to
    publish. With `once_per`, it runs at most once per key, which the ledger
    records under `ledger_name` (such as "billing.charge"); a later event with
    the same key goes to `on_duplicate` instead. The name is declared, not
    taken from the function: renaming a function must not run it again for
    every key it has recorded.
    """

    handle: Callable[[Event, Transaction], list[Event]]
    once_per: Callable[[Event], object] | None = None
    ledger_name: str | None = None
    on_duplicate: Callable[[Event], None] = field(default=lambda event: None)

    def __post_init__(self):
        if (self.once_per is None) != (self.ledger_name is None):
            raise ValueError("once_per and ledger_name go together: the ledger records each key under that name")


class ConsumerLoop:
    def __init__(
        self,
        consumer: Consumer,
        store: Store,
        settings: Settings,
        handlers: dict[type, Handler],
        published: Callable[[], None],
        polled: Callable[[], None] = lambda: None,
        pace: Pace = PROMPT,
    ):
        self._consumer = consumer
        self._store = store
        self._settings = settings
        self._handlers = handlers
        self._published = published
        self._polled = polled
        self._backoff = 0.0
        self._failing: set[tuple[str, int, int]] = set()
        self._queued = False  # something went into the outbox: wake the relay
        self._poller = Poller(consumer, pace)
        self._fence = outbox.Fence()
        self._store_failing_since: float | None = None

    def run(self, stop: threading.Event) -> None:
        """Raises StoreOutage (nothing committed for the work it could not do)."""
        while not stop.is_set():
            batches = self._poller.poll()
            self._polled()
            if batches:
                self._process_batch(batches, stop)
            if self._store_failing_since is not None and time.monotonic() - self._store_failing_since >= STORE_OUTAGE_S:
                raise StoreOutage(f"the store has failed every transaction for {STORE_OUTAGE_S:.0f}s")
            self._poller.done()
            metrics.LAG.take(self._consumer)
        self._poller.close()

    def _process_batch(self, batches: dict[Partition, list[Message]], stop: threading.Event) -> None:
        """Everything one poll returned, in one transaction with a savepoint per
        message (none when nothing is for this service). A message that fails is
        rolled back alone; its partition is sought back to it and retried."""
        failures, began = [], time.monotonic()
        ours = any(not self._not_for_us(record) for records in batches.values() for record in records)
        try:
            with self._store.transaction() if ours else nullcontext() as tx:
                for records in batches.values():
                    for record in records:
                        if not self._not_for_us(record):
                            try:
                                self._traced(tx, record)
                            except StoreUnavailable:
                                raise  # the whole batch waits for the store, not this message alone
                            except Exception as error:
                                failures.append((record, error))
                                self._poller.seek(record)
                                break
            if ours:
                self._store_failing_since = None
        except StoreUnavailable as error:
            self._store_failing_since = self._store_failing_since or began  # the try that failed counts
            self._queued = False
            for records in batches.values():
                self._poller.seek(records[0])
            failures = [(records[0], error) for records in batches.values()]
        if self._queued:
            self._queued = False
            self._published()
        self._report(failures, stop)

    def _report(self, failures: list, stop: threading.Event) -> None:
        """Back off before a retry: briefly at first, longer while the same messages keep failing."""
        failing = {(record.topic(), record.partition(), record.offset()) for record, _ in failures}
        if not failing:
            self._backoff, self._failing = 0.0, set()
            return
        self._backoff = min(self._backoff * 2, MAX_BACKOFF) if failing == self._failing else FIRST_BACKOFF
        self._failing = failing
        for record, error in failures:
            log.warning(
                "Failed to process %s (%s); retrying in %.2fs",
                _where(record),
                error,
                self._backoff,
                exc_info=not isinstance(error, TransientError | StoreUnavailable),
            )
        stop.wait(self._backoff)

    def _traced(self, tx: Transaction, record: Message) -> None:
        """Process one message in a savepoint, inside a span of its own, and count
        what became of it. A rejected event's writes roll back with the savepoint
        before it is dead-lettered: one savepoint per message, two round trips on
        PostgreSQL, not a second one nested for the handler."""
        with tracing.consuming(record, self._settings.service) as span:
            try:
                with tx.savepoint():
                    outcome = self._process(tx, record)
            except Rejected as rejection:
                outcome = self._dead_letter(tx, record, str(rejection))
            span.set_attribute("outcome", outcome)
        event_type = next((value for name, value in record.headers() or [] if name == "ce_type"), b"").decode(
            errors="replace"
        )
        metrics.EVENTS.labels(event_type if event_type in EVENT_TYPES else "other", outcome).inc()  # a bounded label

    def _process(self, tx: Transaction, record: Message) -> str:
        """Handle one message inside the batch's transaction; returns what became of it."""
        headers = dict(record.headers() or [])
        if self._fence.stale((record.topic(), record.partition()), headers):
            return "stale"
        try:
            envelope = open_message(headers, record.key(), record.value())
        except PoisonMessage as poison:
            return self._dead_letter(tx, record, str(poison))
        handler = envelope and self._handlers.get(type(envelope.event))
        if handler is None:
            return "ignored"
        events = self._run(tx, handler, envelope)  # Rejected: see _traced
        if events is None:
            return "duplicate"
        for event in events:
            outbox.add_event(tx, self._settings, event)
        self._queued = self._queued or bool(events)
        return "handled"

    def _not_for_us(self, record: Message) -> bool:
        """An event of ours that this service does not handle, or a dead letter
        sent back to another service: skipped before decoding."""
        headers = dict(record.headers() or [])
        if sent_back_to_another(headers, self._settings.service):
            return True
        event_type = headers.get("ce_type")
        known = event_type and EVENT_TYPES.get(event_type.decode(errors="replace"))
        return bool(known) and known not in self._handlers

    def _run(self, tx: Transaction, handler: Handler, envelope) -> list[Event] | None:
        """The handler's events; None when the ledger has seen the key already."""
        if handler.once_per is not None:
            key = str(handler.once_per(envelope.event))
            if not ledger.first_time(tx, handler.ledger_name, key, envelope.id):
                handler.on_duplicate(envelope.event)
                return None
        return handler.handle(envelope.event, tx)

    def _dead_letter(self, tx: Transaction, record: Message, reason: str) -> str:
        """Set the record aside, once: a record read again (its partition moved
        before its offset was committed) finds where it was read in the ledger."""
        event_id = (dict(record.headers() or []).get("ce_id") or b"").decode("latin-1")
        if not ledger.first_time(tx, f"{self._settings.service}.dead_letter", _where(record), event_id):
            log.info("%s was set aside before; not again", _where(record))
            return "duplicate"
        log.warning("Dead-lettering %s: %s", _where(record), reason)
        tracing.dead_lettered(reason)
        headers = tracing.inject(dict(record.headers() or []))
        headers.update(
            {
                "dlq_reason": reason.encode(),
                "dlq_topic": record.topic().encode(),
                "dlq_partition": str(record.partition()).encode(),
                "dlq_offset": str(record.offset()).encode(),
                "dlq_service": self._settings.service.encode(),
            }
        )
        message = KafkaMessage(headers=headers, key=record.key(), value=record.value() or b"")
        outbox.add(tx, self._settings.dead_letter_topic, message)
        self._queued = True
        return "dead_lettered"


def sent_back_to_another(headers: dict[str, bytes], service: str) -> bool:
    """A dead letter make redrive sent back, to the service that set it aside: not `service`."""
    return REDRIVE_OF in headers and headers.get("dlq_service") != service.encode()


def _where(record: Message) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"
