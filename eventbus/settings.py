"""The one way to read configuration: environment variables with defaults."""

import os
from dataclasses import dataclass
from pathlib import Path


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


@dataclass(frozen=True)
class Settings:
    """What every service needs: where Kafka is, which topics, where data lives."""

    service: str
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "orders.events"
    dead_letter_topic: str = "orders.events.dlq"
    data_dir: Path = Path(".run/data")
    log_level: str = "INFO"
    instance: str | None = None
    outbox_retention_s: float = 3600.0  # sent outbox rows are deleted this long after they were sent

    @classmethod
    def from_env(cls, service: str) -> "Settings":
        return cls(
            service=service,
            bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            topic=env("EVENTS_TOPIC", cls.topic),
            dead_letter_topic=env("DEAD_LETTER_TOPIC", cls.dead_letter_topic),
            data_dir=Path(env("DATA_DIR", str(cls.data_dir))),
            log_level=env("LOG_LEVEL", cls.log_level),
            instance=os.environ.get("CONSUMER_INSTANCE_ID") or None,
            outbox_retention_s=env_float("OUTBOX_RETENTION_S", cls.outbox_retention_s),
        )

    def database(self, name: str | None = None) -> Path:
        """The SQLite file of this service (or another named file of it)."""
        return self.data_dir / f"{name or self.service}.db"
