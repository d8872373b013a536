"""The relay baseline: the physical limit of this design on this machine.

Three pass-through hops, each its own process like the services: consume from
bench.hopN, produce the same bytes (key, value, headers) to bench.hopN+1, wait
for the acks, commit. No envelope, no contracts, no SQLite. The producer and
consumer come from eventbus.kafka, so acks, idempotence, linger and the commit
policy are the services' own. A feeder keeps hop one supplied; what leaves hop
three per second, in steady state, is the figure the chain is compared with.
"""

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from bench.cpu import CpuMeter
from bench.stats import rate_between
from eventbus.contracts import timestamp
from eventbus.envelope import seal
from eventbus.kafka import commit, make_consumer, make_producer
from eventbus.settings import Settings
from generated.order_created import OrderCreated

HOPS = 3
TOPICS = [f"bench.hop{n}" for n in range(1, HOPS + 2)]
GROUPS = [f"bench.hop{n}" for n in range(1, HOPS + 1)]
AHEAD = 5_000  # messages the feeder keeps in flight: enough that no hop ever waits for input
FEED_CHUNK = 250
MAX_MESSAGES = 50_000_000  # a bound on the feeder, far above what a run reaches
START_TIMEOUT_S = 60


def run(
    bootstrap_servers: str,
    partitions: int,
    replication: int,
    seconds: float,
    warmup_s: float,
    progress,
    stack_pids: Callable[[], dict[str, int]] = dict,
) -> dict:
    """Run the relay for `warmup_s` plus `seconds` after its first message came
    out and take the rate over the last `seconds` (a fresh broker needs a few
    seconds of JIT compilation before it is at full speed). The CPU of
    `stack_pids` (the broker, say) is measured alongside the hops'."""
    base = Settings(service="bench", bootstrap_servers=bootstrap_servers)
    _recreate_topics(bootstrap_servers, partitions, replication)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    until = time.time() + START_TIMEOUT_S + warmup_s + seconds + 60  # children stop by then, even orphaned
    delivered = context.Value("q", 0, lock=False)
    processes = [
        context.Process(target=_hop, args=(base, n, stop, until), name=f"bench-hop{n}", daemon=True)
        for n in range(1, HOPS + 1)
    ]
    processes.append(
        context.Process(target=_feed, args=(base, delivered, stop, until), name="bench-feeder", daemon=True)
    )
    observer = _observer(bootstrap_servers)
    samples: list[tuple[float, int]] = []
    try:
        for process in processes:
            process.start()
        ours = lambda: stack_pids() | {p.name: p.pid for p in processes} | {"bench": os.getpid()}  # noqa: E731
        with CpuMeter(ours) as cpu:
            first = _count_output(observer, delivered, samples, warmup_s + seconds, progress, processes)
    finally:
        stop.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
        observer.close()
        _delete(bootstrap_servers)
    end = samples[-1][0] if samples else first
    steady_from = first + warmup_s
    rate = rate_between(samples, steady_from, end)
    return {
        "relay_msgs_per_s": round(rate, 1) if rate else None,
        "relay_messages": samples[-1][1] if samples else 0,
        "relay_window_s": round(end - steady_from, 1),
        "relay_hops": HOPS,
        "relay_partitions": partitions,
        "relay_replication": replication,
        "relay_cpu": cpu.summary(samples[-1][1] if samples else 0, "msg"),
    }


def _count_output(observer, delivered, samples, seconds, progress, processes) -> float:
    """Read hop three's output until `seconds` after the first message; returns when that was."""
    started = time.monotonic()
    first = None
    count = 0
    while True:
        now = time.monotonic()
        if first is None and now - started > START_TIMEOUT_S:
            raise TimeoutError(f"no message came out of the relay in {START_TIMEOUT_S}s")
        if first is not None and now - first >= seconds:
            return first
        dead = [p.name for p in processes if not p.is_alive()]
        if dead:
            raise RuntimeError(f"relay process(es) died: {', '.join(dead)}")
        for records in observer.poll(timeout_ms=100).values():
            count += len(records)
        now = time.monotonic()
        if count and first is None:
            first = now
        delivered.value = count
        samples.append((now, count))
        if first is not None and now - first > 1:
            rate = count / (now - first)
            progress.show("relay", (now - first) / seconds, f"{count:,} msgs out of hop {HOPS}, ~{rate:,.0f}/s")


def _observer(bootstrap_servers: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    last = TOPICS[-1]
    consumer.assign([TopicPartition(last, p) for p in sorted(consumer.partitions_for_topic(last))])
    consumer.seek_to_beginning()
    return consumer


def _hop(base: Settings, n: int, stop, until: float) -> None:
    """Consume hop n, produce the same bytes to hop n+1, flush, commit, until stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through `stop`
    settings = replace(base, service=f"bench-hop{n}", topic=TOPICS[n - 1])
    consumer = make_consumer(settings, GROUPS[n - 1])
    producer = make_producer(settings)
    out = TOPICS[n]
    try:
        while not stop.is_set() and time.time() < until:
            batches = consumer.poll(timeout_ms=500)
            sends = [
                producer.send(out, key=record.key, value=record.value, headers=record.headers)
                for records in batches.values()
                for record in records
            ]
            if not sends:
                continue
            producer.flush(timeout=30)
            failed = next((future.exception for future in sends if future.failed()), None)
            if failed:
                raise failed
            commit(consumer, {partition: records[-1].offset + 1 for partition, records in batches.items()})
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)


def _feed(base: Settings, delivered, stop, until: float) -> None:
    """Produce OrderCreated-sized messages, at most AHEAD ahead of hop three's output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    producer = make_producer(replace(base, service="bench-feeder"))
    sample = seal(OrderCreated(orderId=1, userId=1, itemId=2, qty=1, ts=timestamp()), "orders")
    headers = list(sample.headers.items())
    sent = 0
    try:
        _wait_for_metadata(producer, TOPICS[0], until)
        while not stop.is_set() and sent < MAX_MESSAGES and time.time() < until:
            if sent - delivered.value >= AHEAD:
                time.sleep(0.002)
                continue
            for _ in range(FEED_CHUNK):
                sent += 1
                producer.send(TOPICS[0], key=str(sent).encode(), value=sample.value, headers=headers)
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


def _recreate_topics(bootstrap_servers: str, partitions: int, replication: int) -> None:
    """Fresh hop topics for each run: leftovers of an earlier run are deleted first."""
    _delete(bootstrap_servers)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        deadline = time.monotonic() + 30
        spec = {"num_partitions": partitions, "replication_factor": replication}
        while missing := [topic for topic in TOPICS if topic not in admin.list_topics()]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not create {', '.join(missing)}")
            try:
                admin.create_topics({topic: spec for topic in missing}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                time.sleep(0.5)  # a deletion is still finishing
    finally:
        admin.close()


def _delete(bootstrap_servers: str) -> None:
    """Delete the hop topics and groups if they exist (safe to call any time)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = [topic for topic in TOPICS if topic in admin.list_topics()]
        if existing:
            admin.delete_topics(existing)
        try:
            admin.delete_groups(GROUPS)
        except KafkaError:
            pass
        deadline = time.monotonic() + 30
        while any(topic in admin.list_topics() for topic in TOPICS) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        admin.close()
