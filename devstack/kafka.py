"""Apache Kafka in KRaft mode from the official jars on Maven Central: the
single broker of `make run`, or a node of a cluster (devstack.cluster)."""

import base64
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from devstack import StartFailed
from devstack.supervisor import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "kafka" / "VERSION").read_text().strip()
# In the user's cache, like Maven's own: a fresh clone does not copy the jars again.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "event-driven"
LIBS = CACHE / "kafka" / VERSION / "libs"
# librdkafka logs a line each time it cannot reach the broker, as the tooling
# expects while a broker starts; the tools report what fails themselves.
LIBRDKAFKA_LOG = logging.getLogger("devstack.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss,SSS} %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
logger.broker.name = kafka.server.BrokerLifecycleManager
logger.broker.level = INFO
# Expected on a first start and at shutdown, not worth a warning on a developer's screen:
logger.activation.name = org.apache.kafka.controller.QuorumController
logger.activation.level = ERROR
logger.closing.name = org.apache.kafka.clients.NetworkClient
logger.closing.level = ERROR
# In a cluster (devstack.cluster), each time a node stops or dies: its followers say so, with
# a stack trace, until they find the new leader; and the last controller to stop, with no one
# left to hand the quorum to, waits 5 s and says that it could not.
logger.follower.name = kafka.server.ReplicaFetcherThread
logger.follower.level = ERROR
appender.console.filter.shutdown.type = RegexFilter
appender.console.filter.shutdown.regex = .*Graceful shutdown.*
appender.console.filter.shutdown.onMatch = DENY
appender.console.filter.shutdown.onMismatch = NEUTRAL
# Consumers asking two brokers at once to create Kafka's offsets topic: one finds it made.
logger.autocreate.name = org.apache.kafka.server.DefaultAutoTopicCreationManager
logger.autocreate.level = ERROR
"""


def fetch() -> bool:
    """Download the broker and its dependencies with Maven, once; True when it did.
    Maven's own output is shown only when it fails."""
    done = LIBS / ".complete"
    if done.exists():
        return False
    shutil.rmtree(LIBS, ignore_errors=True)
    _run(
        [
            "mvn",
            "--batch-mode",
            "--quiet",
            "--no-transfer-progress",
            "-Dstyle.color=never",
            "-f",
            str(ROOT / "kafka" / "pom.xml"),
            f"-Dkafka.version={VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={LIBS}",
        ],
        f"fetching Apache Kafka {VERSION} with Maven",
    )
    done.touch()
    return True


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=die_with_parent)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise StartFailed(f"{what} failed (exit code {done.returncode}): " + " / ".join(output[-5:]))


class Kafka:
    """What a stack asks of its Kafka, one broker or a cluster of `size`: every
    topic is kept on `size` brokers, and a write is acknowledged once
    `min_insync` of them have it (a cluster of 3 loses one without losing one)."""

    bootstrap_servers: str
    size: int
    nodes: dict[str, "Broker"]  # its processes by name, each started with `command()` once `prepare()` is done
    heap: str  # each node's

    @property
    def min_insync(self) -> int:
        return max(1, self.size - 1)

    def wait_ready(self, stopping: threading.Event, timeout: float = 180) -> bool:
        """Poll until every broker has joined; False if `stopping` is set first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(AdminClient(client(self.bootstrap_servers)).list_topics(timeout=2).brokers) >= self.size:
                    return True
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise StartFailed(f"Kafka at {self.bootstrap_servers} did not answer within {timeout:.0f}s")
            if stopping.wait(0.5):
                return False

    def ensure_topics(self, topics: dict[str, int]) -> list[str]:
        """Create each topic with its partition count unless it exists; the created ones."""
        admin = AdminClient(client(self.bootstrap_servers))
        answers = admin.create_topics(
            [
                NewTopic(name, count, self.size, config={"min.insync.replicas": str(self.min_insync)})
                for name, count in topics.items()
            ]
        )
        created = []
        for name in topics:
            try:
                answers[name].result()
                created.append(name)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        return created


@dataclass(frozen=True)
class Broker(Kafka):
    """One KRaft node, broker and controller at once, listening on `host`: alone
    (no `quorum`), or node `node_id` of a cluster whose controllers listen at
    the `quorum` addresses (host:port)."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    node_id: int = 1
    quorum: tuple[str, ...] = ()
    host: str = "127.0.0.1"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def size(self) -> int:
        return len(self.quorum) or 1

    @property
    def nodes(self) -> dict[str, "Broker"]:
        """The processes to start, by name."""
        return {"kafka": self}

    @property
    def formatted(self) -> bool:
        return (self.home / "data" / "meta.properties").exists()

    def prepare(self) -> None:
        """Write the configuration and format the storage on first start (alone)."""
        self.configure()
        if not self.formatted:
            self.format(new_id())

    def configure(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self.properties())
        (self.home / "log4j2.properties").write_text(LOG4J2)

    def format(self, cluster_id: str, *options: str) -> None:
        _run(
            [
                *self._java("kafka.tools.StorageTool", "-XX:TieredStopAtLevel=1"),  # a short run: no optimising JIT
                "format",
                f"--cluster-id={cluster_id}",  # one joined argument: an id may start with "-"
                *options,
                "-c",
                str(self.home / "server.properties"),
            ],
            f"formatting Kafka's storage in {self.home}",
        )

    def command(self) -> list[str]:
        return [*self._java("kafka.Kafka"), str(self.home / "server.properties")]

    def quorum_leader(self) -> int:
        """The node id of the controller quorum's leader, as Kafka's own tool
        (kafka-metadata-quorum describe --status) hears it from this node's controller."""
        tool = self._java("org.apache.kafka.tools.MetadataQuorumCommand", "-XX:TieredStopAtLevel=1")
        where = f"{self.host}:{self.controller_port}"
        command = [*tool, "--bootstrap-controller", where, "describe", "--status"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=die_with_parent)
        found = re.search(r"^LeaderId:\s+(\d+)", done.stdout, re.MULTILINE)
        if found is None:
            raise StartFailed(f"kafka-metadata-quorum named no leader: {(done.stdout + done.stderr).strip()[-300:]}")
        return int(found.group(1))

    def _java(self, main_class: str, *options: str) -> list[str]:
        return [
            "java",
            *options,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{LIBS}/*",
            main_class,
        ]

    def properties(self) -> str:
        """server.properties: alone, its own controller is the quorum; in a cluster it
        finds the quorum through every node's controller (KIP-853's dynamic quorum)."""
        if self.quorum:
            quorum = "controller.quorum.bootstrap.servers=" + ",".join(self.quorum)
        else:
            quorum = f"controller.quorum.voters=1@{self.host}:{self.controller_port}"
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                quorum,
                f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                "auto.create.topics.enable=false",
                # Every record is kept (not 7 days): the order page's read model is rebuilt
                # from orders.events (make rebuild), a dead letter waits until it is sent back
                # (make redrive), and what was sent back is how a second redrive knows.
                "log.retention.ms=-1",
                # Each topic, Kafka's own included, on every broker (up to 3), a write
                # acknowledged once all but one have it; a replica that fell behind never leads.
                f"default.replication.factor={self.size}",
                f"min.insync.replicas={self.min_insync}",
                "unclean.leader.election.enable=false",
                f"offsets.topic.replication.factor={self.size}",
                "offsets.topic.num.partitions=5",
                f"transaction.state.log.replication.factor={self.size}",
                f"transaction.state.log.min.isr={self.min_insync}",
                "group.initial.rebalance.delay.ms=0",
                # After a crash the broker re-registers once its old session ends: keep that short.
                "broker.session.timeout.ms=3000",
                "broker.heartbeat.interval.ms=1000",
                # Sized for a laptop's 2 cores rather than a server's (defaults 3, 8, 10, 4):
                # every thread is one more to wake and schedule.
                "num.network.threads=2",
                "num.io.threads=2",
                "background.threads=2",
                "group.coordinator.threads=1",
                # The controller writes a no-op metadata record this often to show it is alive
                # (default 500 ms): at rest that was most of the broker's work.
                "metadata.max.idle.interval.ms=5000",
                "",
            ]
        )


def client(bootstrap_servers: str) -> dict:
    """What every Kafka client of the tooling is configured with: the broker,
    and librdkafka's own log lines kept off the screen."""
    return {"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG}


def new_id() -> str:
    """A random id as Kafka writes one (kafka-storage.sh random-uuid): a cluster's, a log directory's."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
