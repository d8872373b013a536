"""A small test client for the running stack: HTTP to orders, a watcher that
reads every event on the topics, and the services' logs. Steps stay thin over it."""

import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from devstack.kafka import client
from devstack.topic import (
    BATCH,
    TOPICS,
    Partition,
    Seen,
    bystander,
    end_offsets,
    lag_by_group,
    partitions,
    reader,
    seen,
)

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEFAULT_TIMEOUT):
    """Poll `condition` until it is truthy and return it; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.05)


def publish(bootstrap_servers: str, topic: str, messages: list[tuple[bytes, bytes, list]]) -> list[tuple[int, int]]:
    """Publish (key, value, headers) messages straight onto `topic` and wait until
    Kafka has them all (acks=all): where each landed, as (partition, offset)."""
    producer = Producer(client(bootstrap_servers) | {"acks": "all"})
    landed: dict[int, Message] = {}

    def delivered(n: int, error, message: Message) -> None:
        landed[n] = message

    for n, (key, value, headers) in enumerate(messages):
        producer.produce(topic, value, key, headers=headers, on_delivery=partial(delivered, n))
    if producer.flush(DEFAULT_TIMEOUT):
        raise AssertionError(f"Kafka did not take the messages for {topic} within {DEFAULT_TIMEOUT:.0f}s")
    failed = next((message.error() for message in landed.values() if message.error()), None)
    if failed:
        raise KafkaException(failed)
    return [(landed[n].partition(), landed[n].offset()) for n in range(len(messages))]


class TopicWatcher:
    """Reads both topics from the beginning, in a thread, for the whole run."""

    def __init__(self, bootstrap_servers: str):
        self._bootstrap = bootstrap_servers
        self._lock = threading.Lock()
        self._by_key: dict[str, list[Seen]] = defaultdict(list)
        self._all: list[Seen] = []
        self._next_offset: dict[Partition, int] = {}
        self._stop = threading.Event()
        self._consumer = reader(bootstrap_servers)
        self._thread = threading.Thread(target=self._read, name="topic-watcher", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """A partition is read up to where the client says it reached its end, or
        past its last message: a transaction's commit marker takes an offset too."""
        while not self._stop.is_set():
            first = self._consumer.poll(0.2)
            records = [first, *self._consumer.consume(BATCH, 0)] if first is not None else []
            with self._lock:
                for record in records:
                    where = (record.topic(), record.partition())
                    if record.error() is None:
                        message = seen(record)
                        self._all.append(message)
                        self._by_key[message.key].append(message)
                        self._next_offset[where] = message.offset + 1
                    elif record.error().code() == KafkaError._PARTITION_EOF:
                        self._next_offset[where] = max(self._next_offset.get(where, 0), record.offset())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    def for_order(self, order_id: int, topic: str = "orders.events") -> list[Seen]:
        with self._lock:
            return [seen for seen in self._by_key.get(str(order_id), []) if seen.topic == topic]

    def all(self, topic: str = "orders.events") -> list[Seen]:
        with self._lock:
            return [seen for seen in self._all if seen.topic == topic]

    def count(self) -> int:
        """How many messages, on both topics, have been read so far."""
        with self._lock:
            return len(self._all)

    def since(self, count: int) -> list[Seen]:
        """The messages, on both topics, read after the first `count`, less those
        about orders seen before them: the rest of an earlier scenario's work."""
        with self._lock:
            earlier = {seen.key for seen in self._all[:count] if seen.key is not None}
            return [seen for seen in self._all[count:] if seen.key not in earlier]

    def caught_up(self) -> bool:
        """True once everything on the topics at this moment has been read."""
        probe = bystander(self._bootstrap)
        try:
            ends = end_offsets(probe, partitions(probe, TOPICS))
        finally:
            probe.close()
        return wait_until(
            lambda: all(self._read_up_to(partition) >= end for partition, end in ends.items()),
            "the topic watcher has read everything on the topics",
        )

    def _read_up_to(self, partition: Partition) -> int:
        with self._lock:
            return self._next_offset.get(partition, 0)


class Tail:
    """`make tail` running as a process, its output collected line by line."""

    def __init__(self, bootstrap_servers: str, *options: str):
        command = [sys.executable, "-m", "devstack.tail", "--bootstrap-servers", bootstrap_servers, *options]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="tail-output", daemon=True)
        self._reader.start()
        wait_until(lambda: any(line.startswith("Watching") for line in self.lines), "the tail is watching")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def line_with(self, *words: str) -> str:
        return wait_until(
            lambda: next((line for line in self.lines if all(word in line.split() for word in words)), None),
            f"the tail shows a line with {words}",
        )

    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Ctrl-C: the exit code."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Logs:
    """The services' log output: files in a folder (make run), or a command such
    as `docker logs event-driven-{service}-1` (compose)."""

    def __init__(self, source: str):
        self._source = source

    def text(self, service: str) -> str:
        if "{service}" in self._source:
            command = self._source.format(service=service)
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
            return done.stdout + done.stderr
        replicas = sorted(Path(self._source).glob(f"{service}.log")) + sorted(
            Path(self._source).glob(f"{service}-*.log")
        )
        return "".join(path.read_text(errors="replace") for path in replicas)


class Driver:
    def __init__(self, orders_url: str, bootstrap_servers: str, logs: Logs):
        self.orders_url = orders_url.rstrip("/")
        self.logs = logs
        self.bootstrap_servers = bootstrap_servers
        self.topic = TopicWatcher(bootstrap_servers)

    def close(self) -> None:
        self.topic.close()

    @staticmethod
    def new_order_id() -> int:
        """A fresh order number for one scenario, far from the assigned 1, 2, 3, ..."""
        return random.randrange(10**9, 2**53)

    def post_order(self, body: dict | bytes, content_type: str = "application/json") -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.orders_url}/orders", data=data, method="POST", headers={"Content-Type": content_type}
        )
        return self._send(request)

    def get_order(self, order_id: int) -> Reply:
        return self._send(urllib.request.Request(f"{self.orders_url}/orders/{order_id}"))

    def latest_orders(self, limit: int = 10) -> Reply:
        """What the order page shows: the latest orders, newest first."""
        return self._send(urllib.request.Request(f"{self.orders_url}/orders?limit={limit}"))

    def dead_letters(self) -> Reply:
        """How many dead letters the order page shows."""
        return self._send(urllib.request.Request(f"{self.orders_url}/dead-letters"))

    def health(self) -> Reply:
        return self._send(urllib.request.Request(f"{self.orders_url}/health"))

    def cancel_order(self, order_id: int) -> Reply:
        return self._send(urllib.request.Request(f"{self.orders_url}/orders/{order_id}/cancel", method="POST"))

    @staticmethod
    def _send(request: urllib.request.Request) -> Reply:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, json.loads(error.read() or b"{}"))

    def events(self, order_id: int, event_type: str) -> list[Seen]:
        return [seen for seen in self.topic.for_order(order_id) if seen.type == event_type]

    def distinct_ids(self, order_id: int, event_type: str) -> set[str]:
        """Copies of one event published again after a crash share its ce_id."""
        return {seen.id for seen in self.events(order_id, event_type)}

    def emails(self, order_id: int, template: str) -> set[str]:
        """The ids of the emails of one kind sent about the order (no template: a confirmation)."""
        return {
            seen.id
            for seen in self.events(order_id, "EmailSent")
            if seen.payload.get("template", "order_confirmed") == template
        }

    def money_kept(self, order_id: int) -> int:
        """What the order's events say billing kept: charges minus refunds, each event counted once."""
        charged = {seen.id: seen.payload["amount"] for seen in self.events(order_id, "PaymentCaptured")}
        refunded = {seen.id: seen.payload["amount"] for seen in self.events(order_id, "PaymentRefunded")}
        return sum(charged.values()) - sum(refunded.values())

    def wait_for_event(self, order_id: int, event_type: str) -> Seen:
        return wait_until(lambda: self.events(order_id, event_type), f"{event_type} for order {order_id}")[0]

    def restarts(self, service: str) -> int:
        """How often the service was restarted, counted from the supervisor's log lines."""
        return self.logs.text("devstack").count(f"{service} exited with code")

    def wait_for_log(self, service: str, text: str) -> None:
        wait_until(lambda: text in self.logs.text(service), f"{service} logs {text!r}")

    def settle(self) -> None:
        """Wait until every late copy would have arrived: place a marker order and
        wait for its OrderCreated (the outbox publishes in order, so anything queued
        before it is there too); then until every service's consumer group has
        committed up to the topic's end twice in a row (a service commits after its
        store's commit, and its relay publishes what that work queued right after);
        then read the topics to their end."""
        marker = self.new_order_id()
        reply = self.post_order({"orderId": marker, "userId": 1, "itemId": 1, "qty": 1})
        assert reply.status == 201, reply
        self.wait_for_event(marker, "OrderCreated")
        checks: list[dict[str, int]] = []

        def caught_up_twice() -> bool:
            checks.append(lag_by_group(self.bootstrap_servers))
            return not any(checks[-1].values()) and len(checks) > 1 and not any(checks[-2].values())

        try:
            wait_until(caught_up_twice, "every service has read orders.events to its end")
        except AssertionError as error:
            raise AssertionError(f"{error}; still to read, by group: {checks[-1]}") from None
        self.topic.caught_up()
