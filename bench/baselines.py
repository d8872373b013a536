"""Two baselines: what kafka-python alone does on this machine, measured in the
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

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from bench.cpu import CpuMeter
from bench.stats import rate_between
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
    observer = _observer(bootstrap_servers, shape.out)
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
        for records in observer.poll(timeout_ms=100).values():
            count += sum(1 for record in records if shape.out_type is None or _type(record) == shape.out_type)
        now = time.monotonic()
        if count and first is None:
            first = now
        delivered.value = count
        samples.append((now, count))
        if first is not None and now - first > 1:
            rate = count / (now - first)
            progress.show(shape.name, (now - first) / seconds, f"{count:,} {shape.unit}s out, ~{rate:,.0f}/s")


def _type(record) -> bytes | None:
    return next((value for name, value in record.headers or () if name == "ce_type"), None)


def _observer(bootstrap_servers: str, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, metrics_enabled=False)
    consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))])
    consumer.seek_to_beginning()
    return consumer


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
            sends = [
                producer.send(hop.target, key=record.key, value=record.value, headers=_passed(record, hop.turns))
                for records in batches.values()
                for record in records
                if hop.turns is None or _type(record) in hop.turns
            ]
            if sends:
                producer.flush(timeout=30)
            failed = next((future.exception for future in sends if future.failed()), None)
            if failed:
                raise failed
            poller.done({partition: records[-1].offset + 1 for partition, records in batches.items()})
    finally:
        poller.close()
        producer.close(timeout=5)
        consumer.close(autocommit=False)


def _passed(record, turns: dict[bytes, bytes] | None) -> list[tuple[str, bytes]]:
    """The record's headers, with its ce_type turned into the next one."""
    if turns is None:
        return record.headers
    return [(name, turns[value] if name == "ce_type" else value) for name, value in record.headers]


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
                producer.send(shape.feed, key=str(sent).encode(), value=sample.value, headers=headers)
    finally:
        producer.close(timeout=5)


def _wait_for_metadata(producer, topic: str, until: float) -> None:
    """A new topic can take a moment to reach every part of the broker; a busy
    machine can make that longer than the producer's max_block_ms."""
    while True:
        try:
            producer.partitions_for(topic)
            return
        except KafkaTimeoutError:
            if time.time() > until:
                raise


def _recreate_topics(bootstrap_servers: str, shape: Shape, partitions: int, replication: int) -> None:
    """Fresh topics for each run: leftovers of an earlier run are deleted first."""
    _delete(bootstrap_servers, shape)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        deadline = time.monotonic() + 30
        spec = {"num_partitions": partitions, "replication_factor": replication}
        while missing := [topic for topic in shape.topics if topic not in admin.list_topics()]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not create {', '.join(missing)}")
            try:
                admin.create_topics({topic: spec for topic in missing}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                time.sleep(0.5)  # a deletion is still finishing
    finally:
        admin.close()


def _delete(bootstrap_servers: str, shape: Shape) -> None:
    """Delete the shape's topics and groups if they exist (safe to call any time)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = [topic for topic in shape.topics if topic in admin.list_topics()]
        if existing:
            admin.delete_topics(existing)
        try:
            admin.delete_groups([hop.group for hop in shape.hops])
        except KafkaError:
            pass
        deadline = time.monotonic() + 30
        while any(topic in admin.list_topics() for topic in shape.topics) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        admin.close()
