"""A single-node KRaft Apache Kafka broker from the official jars on Maven Central."""

import base64
import logging
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "kafka" / "VERSION").read_text().strip()
LIBS = ROOT / ".cache" / "kafka" / VERSION / "libs"

log = logging.getLogger("devstack")

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
"""


def fetch() -> Path:
    """Download the broker and its dependencies with Maven, once."""
    done = LIBS / ".complete"
    if not done.exists():
        print(f"Fetching Apache Kafka {VERSION} from Maven Central into {LIBS} ...", flush=True)
        shutil.rmtree(LIBS, ignore_errors=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(ROOT / "kafka" / "pom.xml"),
                f"-Dkafka.version={VERSION}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={LIBS}",
            ],
            check=True,
        )
        done.touch()
    return LIBS


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
        fetch()
        data = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self._properties(data))
        (self.home / "log4j2.properties").write_text(LOG4J2)
        if not (data / "meta.properties").exists():
            subprocess.run(
                [
                    *self._java("kafka.tools.StorageTool"),
                    "format",
                    "-t",
                    _cluster_id(),
                    "-c",
                    str(self.home / "server.properties"),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    def command(self) -> list[str]:
        return [*self._java("kafka.Kafka"), str(self.home / "server.properties")]

    def _java(self, main_class: str) -> list[str]:
        return [
            "java",
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

    def wait_ready(self, timeout: float = 90) -> None:
        """Poll until the broker answers an admin request, or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000, bootstrap_timeout_ms=2000
                ).close()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Kafka at {self.bootstrap_servers} not ready after {timeout}s") from None
                time.sleep(0.5)

    def ensure_topics(self, topics: dict[str, int]) -> None:
        """Create each topic with its partition count unless it exists."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            for name, partitions in topics.items():
                try:
                    admin.create_topics([NewTopic(name, partitions, 1)])
                    log.info("Created topic %s with %d partitions", name, partitions)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
