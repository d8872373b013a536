"""The whole stack as processes: Kafka first, then topics, then the services."""

import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.kafka import Broker
from devstack.supervisor import Supervisor
from eventbus.settings import env, env_int


@dataclass(frozen=True)
class StackConfig:
    home: Path = Path(".run")
    kafka_port: int = 9092
    controller_port: int = 9093
    orders_port: int = 5002
    partitions: int = 3
    replicas: int = 1

    @classmethod
    def from_env(cls) -> "StackConfig":
        return cls(
            home=Path(env("STACK_DIR", str(cls.home))),
            kafka_port=env_int("KAFKA_PORT", cls.kafka_port),
            controller_port=env_int("KAFKA_CONTROLLER_PORT", cls.controller_port),
            orders_port=env_int("ORDERS_PORT", cls.orders_port),
            partitions=env_int("PARTITIONS", cls.partitions),
            replicas=env_int("REPLICAS", cls.replicas),
        )

    @property
    def orders_url(self) -> str:
        return f"http://127.0.0.1:{self.orders_port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


class Stack:
    def __init__(self, config: StackConfig, echo: bool = True):
        self.config = config
        self.broker = Broker(config.home / "kafka", config.kafka_port, config.controller_port)
        self.supervisor = Supervisor(config.log_dir, echo)

    def start(self) -> None:
        say = self.supervisor.say
        say(f"starting Apache Kafka on {self.broker.bootstrap_servers}")
        self.broker.prepare()
        self.supervisor.start("kafka", self.broker.command())
        self.broker.wait_ready()
        self.broker.ensure_topics({"orders.events": self.config.partitions, "orders.events.dlq": 1})
        say("Kafka is ready; starting the services")
        for service, name in self.processes():
            self.start_process(service, name)
        self._wait_for_orders()
        say(f"orders listens on {self.config.orders_url} (Ctrl-C stops everything)")

    def start_process(self, service: str, name: str) -> None:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "DATA_DIR": str(self.config.home / "data"),
            "HTTP_PORT": str(self.config.orders_port),
            "CONSUMER_INSTANCE_ID": name,
        }
        self.supervisor.start(name, [sys.executable, "-m", f"services.{service}"], env)

    def processes(self) -> list[tuple[str, str]]:
        """(service, process name) pairs: orders once, the consumers `replicas` times."""
        pairs = [("orders", "orders")]
        for service in ("billing", "notifications"):
            count = self.config.replicas
            pairs += [(service, service if count == 1 else f"{service}-{n}") for n in range(1, count + 1)]
        return pairs

    def _wait_for_orders(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.config.orders_url}/health", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"orders not healthy at {self.config.orders_url} after {timeout}s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.supervisor.stop()
