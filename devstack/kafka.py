"""A single-node KRaft Apache Kafka broker from the official jars on Maven Central."""

import base64
import logging
import os
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


@dataclass(frozen=True)
class Broker:
    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Write the configuration and format the storage on first start."""
        data = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self._properties(data))
        (self.home / "log4j2.properties").write_text(LOG4J2)
        if not (data / "meta.properties").exists():
            _run(
                [
                    *self._java("kafka.tools.StorageTool", "-XX:TieredStopAtLevel=1"),  # a short run: no optimising JIT
                    "format",
                    f"--cluster-id={_cluster_id()}",  # one joined argument: an id may start with "-"
                    "-c",
                    str(self.home / "server.properties"),
                ],
                "formatting Kafka's storage",
            )

    def command(self) -> list[str]:
        return [*self._java("kafka.Kafka"), str(self.home / "server.properties")]

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

    def _properties(self, data: Path) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "auto.create.topics.enable=false",
                # Every record is kept (not 7 days): the order page's read model is rebuilt
                # from orders.events (make rebuild), a dead letter waits until it is sent back
                # (make redrive), and what was sent back is how a second redrive knows.
                "log.retention.ms=-1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=5",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
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

    def wait_ready(self, stopping: threading.Event, timeout: float = 180) -> bool:
        """Poll until the broker answers an admin request; False if `stopping` is set first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                AdminClient(client(self.bootstrap_servers)).list_topics(timeout=2)
                return True
            except KafkaException:
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"Kafka at {self.bootstrap_servers} did not answer within {timeout:.0f}s"
                    ) from None
                if stopping.wait(0.5):
                    return False

    def ensure_topics(self, topics: dict[str, int]) -> list[str]:
        """Create each topic with its partition count unless it exists; the created ones."""
        admin = AdminClient(client(self.bootstrap_servers))
        answers = admin.create_topics(
            [NewTopic(name, num_partitions=count, replication_factor=1) for name, count in topics.items()]
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


def client(bootstrap_servers: str) -> dict:
    """What every Kafka client of the tooling is configured with: the broker,
    and librdkafka's own log lines kept off the screen."""
    return {"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG}


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
