"""The stack under test: a fresh local stack on ports of its own, or the running
stack named by ORDERS_URL and KAFKA_BOOTSTRAP_SERVERS, as for the features."""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from devstack import claim
from devstack.kafka import VERSION as KAFKA_VERSION
from devstack.kafka import client
from devstack.stack import Stack, StackConfig, read_store
from devstack.topic import bystander, lag_by_group, partitions
from eventbus.settings import checked, env_int

TOPIC = "orders.events"
# Ports and folder of its own, away from `make run` (9092/5002) and the features (19092/15002);
# PORT_OFFSET moves them, as for the features, so several checkouts can run side by side.
_OFFSET = env_int("PORT_OFFSET", 0)
_STORE = checked(read_store)  # STORE=postgres: the stack's services on a PostgreSQL of its own
LOCAL = StackConfig(
    home=Path(".run/bench"),
    kafka_port=29092 + _OFFSET,
    controller_port=29093 + _OFFSET,
    orders_port=25002 + _OFFSET,
    store=_STORE,
    postgres_port=25432 + _OFFSET,
    metrics_port=29101 + _OFFSET,
    zipkin_port=29411 + _OFFSET,  # started only to measure the cost of traces (bench/traces_cost.py)
)
RUN_PIDS = Path(".run/pids.json")  # what `make run` in this folder started
SOAK = StackConfig(  # `make soak` beside a `make bench`: ten ports up
    home=Path(".run/soak"),
    kafka_port=29102 + _OFFSET,
    controller_port=29103 + _OFFSET,
    orders_port=25012 + _OFFSET,
    store=_STORE,
    postgres_port=25442 + _OFFSET,
    metrics_port=29111 + _OFFSET,
)


@dataclass
class Target:
    orders_url: str
    bootstrap_servers: str
    stack: Stack | None = None

    @property
    def local(self) -> bool:
        return self.stack is not None

    def pids(self) -> dict[str, int | str]:
        """The services' and the broker's pids (they change if the supervisor restarts one),
        and PostgreSQL's as "<pid>/tree": its work is done in its children.
        For a running stack, those `make run` recorded in RUN_PIDS, if they still run."""
        if self.stack is None:
            found = {name: process.pid for name, process in claim.recorded(RUN_PIDS)}
        else:
            children = self.stack.supervisor.children
            found = {name: child.process.pid for name, child in children.items() if child.process}
        if "postgres" in found:
            found["postgres"] = f"{found['postgres']}/tree"
        return found

    def broker_heap_mb(self) -> int | None:
        if self.stack is None:
            return None
        heap = self.stack.kafka.heap.lower()
        return int(heap[:-1]) * (1024 if heap.endswith("g") else 1) if heap[-1] in "mg" else None

    def kafka_version(self) -> str:
        """The broker's version for a local stack; librdkafka does not tell a remote broker's."""
        return KAFKA_VERSION if self.stack is not None else "unknown"

    def partitions(self) -> list[TopicPartition]:
        consumer = bystander(self.bootstrap_servers)
        try:
            found = partitions(consumer, (TOPIC,))
        finally:
            consumer.close()
        if not found:
            raise RuntimeError(f"no topic {TOPIC} on {self.bootstrap_servers}: is the stack up?")
        return found

    def replication_factor(self) -> int:
        """How many copies the brokers keep of orders.events (the relay's topics get as many)."""
        topic = AdminClient(client(self.bootstrap_servers)).list_topics(TOPIC, timeout=10).topics[TOPIC]
        return len(topic.partitions[0].replicas)

    def lag(self) -> int:
        """Messages on the topic that some service's consumer group has not committed yet."""
        return sum(self.lag_by_group().values())

    def lag_by_group(self) -> dict[str, int]:
        """For each service's consumer group, the messages it has not committed yet."""
        self.partitions()  # a stack that is not up is named, not taken for one with nothing to do
        return lag_by_group(self.bootstrap_servers)

    def wait_settled(self, timeout_s: float = 120) -> int:
        """Wait until every service has caught up (twice in a row, as outboxes may
        still be publishing); returns what is left when the deadline passes."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while True:
            left = self.lag()
            quiet = quiet + 1 if left == 0 else 0
            if quiet >= 2 or time.monotonic() > deadline:
                return left
            time.sleep(0.5)


@contextmanager
def open_target(say, config: StackConfig = LOCAL) -> Iterator[Target]:
    """The stack named in the environment, or a fresh local one stopped at the end."""
    if os.environ.get("ORDERS_URL"):
        yield Target(os.environ["ORDERS_URL"], os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
        return
    stack = Stack(config, echo=False, fresh=True)
    say(f"starting a local stack in {config.home} (Kafka :{config.kafka_port}, orders :{config.orders_port})")
    try:
        stack.start()
        yield Target(config.orders_url, stack.kafka.bootstrap_servers, stack)
    finally:
        say("stopping the local stack")
        stack.stop()
