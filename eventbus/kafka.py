"""The one producer set-up and the one consumer set-up, on confluent-kafka.

librdkafka (under confluent-kafka) fetches and sends in threads of its own,
in C: a round trip to the broker costs this process next to nothing, and a
poll only takes what has already arrived. That is why it replaced
kafka-python, whose every fetch and send cost a few milliseconds of Python.
"""

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventbus.settings import Settings
from eventbus.tuning import PROMPT, Pace, Pacer

log = logging.getLogger(__name__)
Partition = tuple[str, int]  # (topic, partition)
COMMIT_INTERVAL = 1.0  # seconds
IDLE_POLL_S = 0.5  # how long a poll waits when nothing has arrived
SEND_TIMEOUT_MS = 10_000  # a send Kafka has not acknowledged by then fails, so a flush can wait it out
CLIENT = {
    "reconnect.backoff.max.ms": 2_000,
    # A request a broker does not answer (paused, cut off) fails after this long, not
    # librdkafka's 60 s. Half a send's timeout: a send to a leader gone silent is retried,
    # once the client has heard of the new leader, before the send itself times out.
    "socket.timeout.ms": SEND_TIMEOUT_MS // 2,
    # And a connection that is not set up by then is given up (librdkafka: 30 s). To a
    # paused broker the kernel still accepts it, to a cut-off one it hangs in connect: either
    # way the client would wait out the fault before asking who leads or coordinates now.
    "socket.connection.setup.timeout.ms": SEND_TIMEOUT_MS // 2,
    "log.connection.close": False,  # an idle connection the broker closes is not news
    "logger": logging.getLogger("librdkafka"),  # its own lines, into our log format
}


def make_producer(settings: Settings) -> Producer:
    """acks=all with idempotence: a retried send never writes a second copy,
    and the records of one key stay in order."""
    return Producer(
        CLIENT
        | {
            "bootstrap.servers": settings.bootstrap_servers,
            "client.id": settings.service,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 1,  # the relay flushes each batch anyway
            "message.timeout.ms": SEND_TIMEOUT_MS,
        }
    )


def reachable(settings: Settings, timeout: float) -> bool:
    """Whether Kafka answers a metadata request from this process within
    `timeout`, asked by a fresh client: nothing an outage left in another counts."""
    admin = AdminClient(CLIENT | {"bootstrap.servers": settings.bootstrap_servers})
    try:
        admin.list_topics(settings.topic, timeout=timeout)
        return True
    except KafkaException:
        return False


def make_consumer(settings: Settings, group: str, pace: Pace = PROMPT) -> Consumer:
    """Offsets are committed by the consumer loop, only after the work is durable.

    With an instance id (static membership), a restarted process takes back its
    partitions at once instead of waiting for a rebalance."""
    config = CLIENT | {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.instance or settings.service,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "on_commit": _report_failed_commit,
    }
    if settings.instance:
        config["group.instance.id"] = settings.instance
    consumer = Consumer(config | pace.fetch)
    consumer.subscribe([settings.topic])
    return consumer


def make_reader(settings: Settings, topic: str, timeout: float = 10.0) -> Consumer:
    """A consumer of every partition of `topic` from its start, outside any
    group: it commits nothing, and no service's share of the work changes."""
    consumer = Consumer(
        CLIENT
        | {"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.service}.reader"}
        | {"enable.auto.commit": False, "enable.partition.eof": True}
        # A fetch held open at the broker would hold up the ListOffsets behind it (see ends) for as long.
        | {"fetch.wait.max.ms": 10}
    )
    partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in sorted(partitions)])
    return consumer


def ends(consumer: Consumer, timeout: float = 10.0) -> dict[Partition, int]:
    """Where each assigned partition ends now, as the broker says (not as last fetched)."""
    return {
        (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)[1]
        for tp in consumer.assignment()
    }


def read_until(
    consumer: Consumer, until: dict[Partition, int], each: Callable[[Message], None], timeout: float = 10.0
) -> int:
    """Hand `each` every record up to `until` (see ends); returns how many. A
    partition is done when the client's position reaches its end, not at a
    record's offset: a transaction's commit marker takes an offset too."""
    count = 0
    while not _reached(consumer, until):
        record = consumer.poll(timeout)
        if record is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"nothing read for {timeout:g} s"))
        if record.error() is None:
            each(record)
            count += 1
        elif record.error().code() != KafkaError._PARTITION_EOF:
            _report(record.error())
    return count


def _reached(consumer: Consumer, until: dict[Partition, int]) -> bool:
    """Whether the consumer's position is at `until` on every partition (an empty one is reached at once)."""
    asked = [TopicPartition(topic, partition) for (topic, partition), end in until.items() if end > 0]
    return all(tp.offset >= until[tp.topic, tp.partition] for tp in consumer.position(asked))


class TopicSize:
    """How many records a topic holds, counted by reading it on from where the
    last count stopped, at most every `fresh_for_s`, however often it is called:
    the order page asks every second. (Each partition's end less its start
    would count the commit markers of make redrive's transactions too.) Raises
    KafkaException while Kafka does not answer."""

    def __init__(self, settings: Settings, topic: str, fresh_for_s: float = 2.0, timeout: float = 1.0):
        self._settings = settings
        self._topic = topic
        self._fresh_for_s = fresh_for_s
        self._timeout = timeout
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._count = 0
        self._answer: tuple[float, int | KafkaException] = (-fresh_for_s, 0)

    def __call__(self) -> int:
        with self._lock:
            asked_at, answer = self._answer
            if time.monotonic() - asked_at >= self._fresh_for_s:
                answer = self._ask()
                self._answer = (time.monotonic(), answer)
        if isinstance(answer, KafkaException):
            raise answer
        return answer

    def _ask(self) -> int | KafkaException:
        try:
            self._consumer = self._consumer or make_reader(self._settings, self._topic, self._timeout)
            read_until(self._consumer, ends(self._consumer, self._timeout), self._counted, self._timeout)
            return self._count
        except KafkaException as error:
            return error

    def _counted(self, _record: Message) -> None:
        self._count += 1  # as it is read: a read cut short keeps what it counted

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


class Poller:
    """How every consumer of ours polls and commits.

    A poll returns as soon as a record is there, and takes what else has
    arrived, up to the pace's batch. When the process is short of CPU, the
    pacer (eventbus.tuning) says how long to wait for more to join it: they are
    then handled in one store transaction, which costs about the same for one
    record as for twenty.

    Offsets of finished work are committed at most every COMMIT_INTERVAL (and
    at close): committing less often only means more idempotent redelivery
    after a crash. What is committed is the client's position on each
    partition, not the last record's offset + 1: the position steps over the
    commit markers of transactions (make redrive writes in them), so a group
    that has read everything lags by 0, not by one marker per partition."""

    def __init__(self, consumer: Consumer, pace: Pace = PROMPT, pacer: Pacer | None = None):
        self._consumer = consumer
        self._pace = pace
        self._pacer = pacer or Pacer()
        self._committed: dict[Partition, int] = {}
        self._sought: dict[Partition, int] = {}  # where a partition was sought back to, until fetched again
        self._committed_at = 0.0

    def poll(self) -> dict[Partition, list[Message]]:
        """The records that arrived, by partition, in order. Raises KafkaException
        when the client failed for good (a fatal error): start over with a new one."""
        first = self._consumer.poll(IDLE_POLL_S)  # at once when a record is there (consume() waits out 200 ms)
        hold = self._pacer.hold() if first is not None and self._pace.paced else 0.0
        records = [first, *self._consumer.consume(self._pace.batch - 1, hold)] if first is not None else []
        batches: dict[Partition, list[Message]] = {}
        for record in records:
            if record.error() is None:
                batches.setdefault((record.topic(), record.partition()), []).append(record)
            else:
                _report(record.error())
        self._pacer.count(sum(map(len, batches.values())))
        return batches

    def seek(self, record: Message) -> None:
        """Read the record's partition again from the record on."""
        self._consumer.seek(TopicPartition(record.topic(), record.partition(), record.offset()))
        self._sought[record.topic(), record.partition()] = record.offset()

    def done(self) -> None:
        """The work on every record polled so far is durable, or its partition was
        sought back to where the work stopped: commit, now or soon."""
        if time.monotonic() - self._committed_at >= COMMIT_INTERVAL:
            self._commit(wait=False)

    def close(self) -> None:
        """Commit what is done and wait for the answer."""
        self._commit(wait=True)

    def _commit(self, wait: bool) -> None:
        """Commit each partition's position where it moved. A partition just
        sought back has no position until it is fetched again: the offset it
        was sought back to stands in for it."""
        positions = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            partition = (tp.topic, tp.partition)
            if tp.offset >= 0:
                positions[partition] = tp.offset
                self._sought.pop(partition, None)
            elif partition in self._sought:
                positions[partition] = self._sought[partition]
        moved = {
            partition: offset for partition, offset in positions.items() if self._committed.get(partition) != offset
        }
        if moved:
            commit(self._consumer, moved, wait=wait)
            self._committed |= moved
        self._committed_at = time.monotonic()


def commit(consumer: Consumer, next_offsets: dict[Partition, int], wait: bool = False) -> None:
    """Commit the offsets to read next, for every partition at once, by default
    without waiting for the answer. Call it only once the work they cover is
    durable: a commit that is lost means that work is redone, idempotently."""
    offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=not wait)
    except KafkaException as error:
        _report_failed_commit(error.args[0], offsets)


def _report_failed_commit(error: KafkaError | None, offsets: list[TopicPartition]) -> None:
    if error is not None:
        log.warning("Offset commit failed (%s); the work since the last one will be redone, idempotently", error.str())


def needs_new_client(error: KafkaError | Exception) -> bool:
    """librdkafka reconnects by itself; only a fatal error needs a new client.
    A client hears of one as an error of code _FATAL: a static member fenced
    after the broker lost its session, say (a broker frozen for longer than
    the session timeout)."""
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    return isinstance(error, KafkaError) and (error.fatal() or error.code() == KafkaError._FATAL)


def _report(error: KafkaError) -> None:
    if needs_new_client(error):
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("Kafka: %s; the client retries by itself", error.str())
