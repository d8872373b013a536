"""The chain as seen on the topic: for each order, when its EmailSent was seen
here, and when each of its events was produced (the record's CreateTime), which
splits a delay between the services."""

import os
import threading
import time
from collections.abc import Callable

from confluent_kafka import Message, TopicPartition

from devstack.topic import bystander, end_offsets
from eventbus.kafka import Poller

STAGES = (b"OrderCreated", b"PaymentCaptured", b"EmailSent")


class ChainWatcher:
    """Reads orders.events in a thread from the moment it is made. No consumer
    group: it reads all partitions from their end at start, so it neither
    disturbs the services' groups nor sees earlier runs. It polls as the
    services do (eventbus.kafka.Poller), and its threads' CPU is measured apart,
    since it is a fourth consumer on the same cores."""

    def __init__(self, bootstrap_servers: str, partitions: list[TopicPartition]):
        before = _threads()
        self._consumer = bystander(bootstrap_servers)
        ends = end_offsets(self._consumer, partitions)  # connects, so the client's threads are all there after it
        self._io_threads = sorted(_threads() - before)
        self._consumer.assign([TopicPartition(topic, p, end) for (topic, p), end in ends.items()])
        self._poller = Poller(self._consumer)
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}
        self._produced: dict[int, dict[bytes, int]] = {}
        self._first_id: dict[tuple[int, bytes], bytes | None] = {}  # (order, type) -> its first ce_id
        self.doubled: dict[bytes, set[int]] = {event_type: set() for event_type in STAGES}
        self._waiting: dict[int, Callable[[float], None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="chain-watcher", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            batches = self._poller.poll()
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    event_type = _header(record, "ce_type")
                    if event_type not in STAGES or not (record.key() or b"").isdigit():
                        continue  # not an order's event (a poison test message, say)
                    order_id = int(record.key())
                    self._produced.setdefault(order_id, {}).setdefault(event_type, record.timestamp()[1])
                    self._count(order_id, event_type, record)
                    if event_type == b"EmailSent":
                        self._saw(order_id, now)

    def _count(self, order_id: int, event_type: bytes, record: Message) -> None:
        """A second copy with the same ce_id is a harmless redelivery; another
        ce_id is a second effect (a second charge, a second email)."""
        ce_id = _header(record, "ce_id")
        if self._first_id.setdefault((order_id, event_type), ce_id) != ce_id:
            self.doubled[event_type].add(order_id)

    def _saw(self, order_id: int, when: float) -> None:
        with self._lock:
            if order_id in self._seen:
                return  # a redelivered email: the first one counts
            self._seen[order_id] = when
            then = self._waiting.pop(order_id, None)
        if then:
            then(when)

    def when_emailed(self, order_id: int, then: Callable[[float], None]) -> None:
        """Call `then(seen_at)` once the EmailSent of `order_id` is seen (now, if it was)."""
        with self._lock:
            seen = self._seen.get(order_id)
            if seen is None:
                self._waiting[order_id] = then
        if seen is not None:
            then(seen)

    def wait_for(self, order_id: int, timeout_s: float) -> float | None:
        """When the EmailSent of `order_id` was seen (time.monotonic), or None at the deadline."""
        emailed = threading.Event()
        self.when_emailed(order_id, lambda _: emailed.set())
        emailed.wait(max(timeout_s, 0))
        with self._lock:
            self._waiting.pop(order_id, None)
            return self._seen.get(order_id)

    def emailed(self) -> int:
        """How many orders' EmailSent was seen."""
        with self._lock:
            return len(self._seen)

    def produced(self, order_id: int) -> dict[bytes, int]:
        """When each event of the order was produced, in ms since the epoch, by ce_type."""
        return self._produced.get(order_id, {})

    def threads(self) -> dict[str, str]:
        """This watcher's threads (its own and its client's, librdkafka's threads in C)
        as CpuMeter names them: /proc/<pid>/task/<tid>/stat holds one thread's CPU."""
        ids = {"bench.watcher": self._thread.native_id}
        ids |= {f"bench.watcher-io{n}": tid for n, tid in enumerate(self._io_threads)}
        return {name: f"{os.getpid()}/task/{tid}" for name, tid in ids.items() if tid is not None}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def _header(record: Message, name: str) -> bytes | None:
    return next((value for key, value in record.headers() or () if key == name), None)


def _threads() -> set[int]:
    """The ids of this process's threads, librdkafka's included (they are not Python's)."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}
