"""Two baselines: what confluent-kafka alone does on this machine, measured in the
same run as the chain so that the chain is judged against the right limit.

- **relay**: three pass-through hops, each its own process: consume bench.hopN,
  produce the same bytes to bench.hopN+1. The raw cost of a Kafka hop.
- **fan-out**: shaped like the chain. One topic; a feeder produces type A;
  three consumer groups each read every message; the first turns A into B, the
  second B into C (both back onto the same topic), the third only reads, like
  orders following its orders. No HTTP, no SQLite, no contracts: a C out is one
  "order" through the chain's Kafka work alone.

Every hop uses eventbus.kafka's producer, consumer and poll pacing, so acks,
idempotence, linger, fetch batching and the commit interval are the services'
own. A feeder keeps the first hop supplied, at most AHEAD in flight; what comes
out per second, in steady state, is the figure the chain is compared with.
"""

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.cpu import CpuMeter
from bench.stats import rate_between
from devstack.kafka import client
from devstack.topic import arrived, reader
from eventbus.contracts import timestamp
from eventbus.envelope import seal
from eventbus.kafka import Poller, make_consumer, make_producer
from eventbus.settings import Settings
from generated.order_created import OrderCreated

AHEAD = 5_000  # messages the feeder keeps in flight: enough that no hop ever waits for input
FEED_CHUNK = 250
MAX_MESSAGES = 50_000_000  # a bound on the feeder, far above what a run reaches
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Hop:
    """One consumer group: reads `source`; a message whose ce_type is in `turns`
    (every message when `turns` is None) goes to `target` with its new type."""

    group: str
    source: str
    target: str | None
    turns: dict[bytes, bytes] | None = None


@dataclass(frozen=True)
class Shape:
    name: str
    topics: tuple[str, ...]
    hops: tuple[Hop, ...]
    feed: str  # the topic the feeder writes
    out: str  # the topic whose `out_type` messages are counted
    out_type: bytes | None = None  # None: every message counts
    unit: str = "msg"


RELAY = Shape(
    name="relay",
    topics=("bench.hop1", "bench.hop2", "bench.hop3", "bench.hop4"),
    hops=tuple(Hop(f"bench.hop{n}", f"bench.hop{n}", f"bench.hop{n + 1}") for n in (1, 2, 3)),
    feed="bench.hop1",
    out="bench.hop4",
)
FANOUT = Shape(
    name="fanout",
    topics=("bench.chain",),
    hops=(
        Hop("bench.first", "bench.chain", "bench.chain", {b"A": b"B"}),
        Hop("bench.second", "bench.chain", "bench.chain", {b"B": b"C"}),
        Hop("bench.third", "bench.chain", None, {}),
    ),
    feed="bench.chain",
    out="bench.chain",
    out_type=b"C",
    unit="order",
)


def run(
    shape: Shape,
    bootstrap_servers: str,
    partitions: int,
    replication: int,
    seconds: float,
    warmup_s: float,
    progress,
    stack_pids: Callable[[], dict[str, int]] = dict,
) -> dict:
    """Run `shape` for `warmup_s` plus `seconds` after its first output and take
    the rate over the last `seconds` (a fresh broker needs a few seconds of JIT
    compilation before it is at full speed). The CPU of `stack_pids` (the
    broker, say) is measured alongside the hops'. Keys start with the shape's name."""
    base = Settings(service="bench", bootstrap_servers=bootstrap_servers)
    _recreate_topics(bootstrap_servers, shape, partitions, replication)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    until = time.time() + START_TIMEOUT_S + warmup_s + seconds + 60  # children stop by then, even orphaned
    delivered = context.Value("q", 0, lock=False)
    processes = [
        context.Process(target=_hop, args=(base, hop, stop, until), name=f"bench-{hop.group[6:]}", daemon=True)
        for hop in shape.hops
    ]
    processes.append(
        context.Process(target=_feed, args=(base, shape, delivered, stop, until), name="bench-feeder", daemon=True)
    )
    observer = reader(bootstrap_servers, (shape.out,))
    samples: list[tuple[float, int]] = []
    try:
        for process in processes:
            process.start()
        ours = lambda: stack_pids() | {p.name: p.pid for p in processes} | {"bench": os.getpid()}  # noqa: E731
        with CpuMeter(ours) as cpu:
            first = _count_output(shape, observer, delivered, samples, warmup_s + seconds, progress, processes)
    finally:
        stop.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
        observer.close()
        _delete(bootstrap_servers, shape)
    end = samples[-1][0] if samples else first
    steady_from = first + warmup_s
    rate = rate_between(samples, steady_from, end)
    return {
        f"{shape.name}_{shape.unit}s_per_s": round(rate, 1) if rate else None,
        f"{shape.name}_{shape.unit}s": samples[-1][1] if samples else 0,
        f"{shape.name}_window_s": round(end - steady_from, 1),
        f"{shape.name}_hops": len(shape.hops),
        f"{shape.name}_partitions": partitions,
        f"{shape.name}_replication": replication,
        f"{shape.name}_cpu": cpu.summary(samples[-1][1] if samples else 0, shape.unit),
    }


def _count_output(shape: Shape, observer, delivered, samples, seconds, progress, processes) -> float:
    """Read the output until `seconds` after the first message; returns when that was."""
    started = time.monotonic()
    first = None
    count = 0
    while True:
        now = time.monotonic()
        if first is None and now - started > START_TIMEOUT_S:
            raise TimeoutError(f"nothing came out of the {shape.name} baseline in {START_TIMEOUT_S}s")
        if first is not None and now - first >= seconds:
            return first
        dead = [p.name for p in processes if not p.is_alive()]
        if dead:
            raise RuntimeError(f"{shape.name} process(es) died: {', '.join(dead)}")
        out = arrived(observer, 0.1)
        count += sum(1 for record in out if shape.out_type is None or _type(record) == shape.out_type)
        now = time.monotonic()
        if count and first is None:
            first = now
        delivered.value = count
        samples.append((now, count))
        if first is not None and now - first > 1:
            rate = count / (now - first)
            progress.show(shape.name, (now - first) / seconds, f"{count:,} {shape.unit}s out, ~{rate:,.0f}/s")


def _type(record: Message) -> bytes | None:
    return next((value for name, value in record.headers() or () if name == "ce_type"), None)


def _hop(base: Settings, hop: Hop, stop, until: float) -> None:
    """Consume, produce what this hop passes on, flush, commit, until stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through `stop`
    settings = replace(base, service=f"bench-{hop.group}", topic=hop.source)
    consumer = make_consumer(settings, hop.group)
    poller = Poller(consumer)
    producer = make_producer(settings)
    try:
        while not stop.is_set() and time.time() < until:
            batches = poller.poll()
            passed = [
                record
                for records in batches.values()
                for record in records
                if hop.turns is None or _type(record) in hop.turns
            ]
            for record in passed:
                producer.produce(
                    hop.target, record.value(), record.key(), headers=_passed(record, hop.turns), on_delivery=_sent
                )
            if passed and producer.flush(30):
                raise TimeoutError(f"{hop.group}: Kafka did not take its messages within 30s")
            poller.done()
    finally:
        poller.close()
        producer.flush(5)
        consumer.close()


def _sent(error: KafkaError | None, _message: Message) -> None:
    """A delivery report: a failed send ends the hop (raised out of flush or poll)."""
    if error is not None:
        raise KafkaException(error)


def _passed(record: Message, turns: dict[bytes, bytes] | None) -> list[tuple[str, bytes]]:
    """The record's headers, with its ce_type turned into the next one."""
    if turns is None:
        return record.headers()
    return [(name, turns[value] if name == "ce_type" else value) for name, value in record.headers()]


def _feed(base: Settings, shape: Shape, delivered, stop, until: float) -> None:
    """Produce OrderCreated-sized messages of type A, at most AHEAD ahead of the output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    producer = make_producer(replace(base, service="bench-feeder"))
    sample = seal(OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts=timestamp()), "orders")
    headers = [(name, b"A" if name == "ce_type" else value) for name, value in sample.headers.items()]
    sent = 0
    try:
        _wait_for_metadata(producer, shape.feed, until)
        while not stop.is_set() and sent < MAX_MESSAGES and time.time() < until:
            if sent - delivered.value >= AHEAD:
                time.sleep(0.002)
                continue
            for _ in range(FEED_CHUNK):
                sent += 1
                producer.produce(shape.feed, sample.value, str(sent).encode(), headers=headers, on_delivery=_sent)
            producer.poll(0)  # serve the delivery reports
    finally:
        producer.flush(5)


def _wait_for_metadata(producer: Producer, topic: str, until: float) -> None:
    """A new topic can take a moment to reach every part of the broker; a busy
    machine can make that longer than a send may wait for it."""
    while True:
        try:
            if producer.list_topics(topic, timeout=5).topics[topic].partitions:
                return
        except KafkaException:
            pass  # no answer in time: ask again
        if time.time() > until:
            raise TimeoutError(f"no partitions of {topic} known to the feeder")
        time.sleep(0.2)


def _recreate_topics(bootstrap_servers: str, shape: Shape, partitions: int, replication: int) -> None:
    """Fresh topics for each run: leftovers of an earlier run are deleted first."""
    _delete(bootstrap_servers, shape)
    admin = AdminClient(client(bootstrap_servers))
    deadline = time.monotonic() + 30
    while missing := [topic for topic in shape.topics if topic not in admin.list_topics(timeout=10).topics]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not create {', '.join(missing)}")
        asked = [NewTopic(topic, num_partitions=partitions, replication_factor=replication) for topic in missing]
        for answer in admin.create_topics(asked).values():
            try:
                answer.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                time.sleep(0.5)  # a deletion is still finishing


def _delete(bootstrap_servers: str, shape: Shape) -> None:
    """Delete the shape's topics and groups if they exist (safe to call any time)."""
    admin = AdminClient(client(bootstrap_servers))
    existing = [topic for topic in shape.topics if topic in admin.list_topics(timeout=10).topics]
    if existing:
        for answer in admin.delete_topics(existing).values():
            answer.result()
    for answer in admin.delete_consumer_groups([hop.group for hop in shape.hops]).values():
        try:
            answer.result()
        except KafkaException:
            pass  # no such group: nothing to delete
    deadline = time.monotonic() + 30
    while any(topic in admin.list_topics(timeout=10).topics for topic in shape.topics) and time.monotonic() < deadline:
        time.sleep(0.2)
