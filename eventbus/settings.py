"""The one way to read configuration: environment variables with defaults, each
checked where it is read, so that a bad value stops the start with one line
naming the variable, the value and what is expected."""

import errno
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

EX_CONFIG = 78  # sysexits.h's "configuration error": a supervisor does not restart it
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRACES_EXPORTERS = ("NONE", "ZIPKIN", "OTLP")  # OpenTelemetry's names for OTEL_TRACES_EXPORTER
URL = r"https?://[^\s/]+(/\S*)?"
NAME = r"[A-Za-z0-9._-]{1,249}"  # Kafka's rule for topic names and group instance ids
HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"  # a host name or an IPv4 address
IPV6 = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"
T = TypeVar("T")


class SettingError(ValueError):
    """A setting that cannot be used; its message is the one line the user sees."""

    def __init__(self, name: str, value: str, expected: str):
        super().__init__(f"{name} must be {expected}, got {value!r}")


class Env:
    """Reads settings from an environment: the process's own, or the one a
    process is about to be started with (so `make run` checks them first)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str, default: str) -> str:
        return self.environ.get(name) or default

    def text(self, name: str, default: str, pattern: str = r".*", expected: str = "") -> str:
        value = self.raw(name, default)
        if not re.fullmatch(pattern, value):
            raise SettingError(name, value, expected)
        return value

    def whole(self, name: str, default: int, minimum: int = 0, maximum: int | None = None, expected: str = "") -> int:
        value = self.raw(name, str(default))
        number = int(value) if re.fullmatch(r"[0-9]+", value) else None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise SettingError(name, value, expected or _whole_number(minimum, maximum))
        return number

    def port(self, name: str, default: int) -> int:
        return self.whole(name, default, 1, 65535, "a TCP port number from 1 to 65535")

    def fraction(self, name: str, default: float, expected: str) -> float:
        """A number from 0 up to, not including, 1."""
        value = self.raw(name, str(default))
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0 <= number < 1:
            raise SettingError(name, value, expected)
        return number

    def whole_pairs(self, name: str, expected: str) -> dict[int, int]:
        """`2=150,7=250` as {2: 150, 7: 250}."""
        value = self.raw(name, "").replace(" ", "")
        if value and not re.fullmatch(r"[0-9]+=[0-9]+(,[0-9]+=[0-9]+)*,?", value):
            raise SettingError(name, value, expected)
        pairs = (pair.split("=") for pair in value.split(",") if pair)
        return {int(key): int(number) for key, number in pairs}

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name, default)
        if value.upper() not in choices:
            raise SettingError(name, value, f"one of {', '.join(choices)}")
        return value.upper()

    def servers(self, name: str, default: str) -> str:
        """Kafka's bootstrap list: host:port pairs separated by commas."""
        value = self.raw(name, default)
        for entry in value.split(","):
            found = re.fullmatch(rf"(?:{HOST}|\[{IPV6}\]):([0-9]{{1,5}})", entry.strip())
            if not found or not 1 <= int(found[1]) <= 65535:
                raise SettingError(name, value, "host:port pairs separated by commas, such as '127.0.0.1:9092'")
        return value

    def database_url(self, name: str) -> str | None:
        """A PostgreSQL URL, postgresql://user:password@host:port/database, or None when unset."""
        value = self.raw(name, "")
        if not value:
            return None
        from psycopg import ProgrammingError  # only once a URL is set: a service on SQLite never loads psycopg
        from psycopg.conninfo import conninfo_to_dict

        expected = "a PostgreSQL URL such as postgresql://user:password@host:5432/database"
        if not re.match(r"postgres(ql)?://", value):
            raise SettingError(name, _without_password(value), expected)
        try:
            parts = conninfo_to_dict(value)
        except ProgrammingError:
            raise SettingError(name, _without_password(value), expected) from None
        port = parts.get("port", "5432")
        if not parts.get("dbname") or not (port.isdigit() and 1 <= int(port) <= 65535):
            raise SettingError(name, _without_password(value), expected)
        return value

    def folder(self, name: str, default: str) -> Path:
        """A folder this user can create and write in."""
        value = self.raw(name, default)
        path = Path(value).absolute()
        existing = next(parent for parent in (path, *path.parents) if parent.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise SettingError(name, value, "a folder this user can write in")
        return Path(value)


def checked(read: Callable[[Env], T]) -> T:
    """Read settings at start. A bad one ends the process with its line on stderr
    and EX_CONFIG, no traceback: restarting would only fail the same way."""
    try:
        return read(Env())
    except SettingError as error:
        print(error, file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None


@contextmanager
def listening(name: str, port: int) -> Iterator[None]:
    """Around binding the port that setting `name` chose: a port another process
    holds is a bad setting like any other, one line and EX_CONFIG."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(SettingError(name, str(port), "a port no other process listens on"), file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None


def _without_password(url: str) -> str:
    """A URL as an error message may show it."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _whole_number(minimum: int, maximum: int | None) -> str:
    if maximum is not None:
        return f"a whole number from {minimum} to {maximum}"
    return "a whole number" if minimum == 0 else f"a whole number, at least {minimum}"


def env_int(name: str, default: int) -> int:
    return Env().whole(name, default)


@dataclass(frozen=True)
class Settings:
    """What every service needs: where Kafka is, which topics, where data lives."""

    service: str
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "orders.events"
    dead_letter_topic: str = "orders.events.dlq"
    redrive_topic: str = "orders.events.redrive"  # which dead letters make redrive sent back: its ledger
    data_dir: Path = Path(".run/data")
    database_url: str | None = None  # PostgreSQL; SQLite files in data_dir when None
    log_level: str = "INFO"
    instance: str | None = None
    outbox_retention_s: int = 3600  # sent outbox rows are deleted this long after they were sent
    traces_exporter: str = "none"  # where spans go: none, zipkin or otlp (each reads its OTEL_EXPORTER_* endpoint)
    traces_endpoint: str | None = None  # that exporter's endpoint, as its OTEL_EXPORTER_* variable gives it
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # a port of its own for GET /metrics (orders also serves it on its HTTP port)

    @classmethod
    def from_env(cls, service: str, env: Env | None = None) -> "Settings":
        env = env or Env()
        topic = "a Kafka topic name: letters, digits, '.', '_' or '-'"
        return cls(
            service=service,
            bootstrap_servers=env.servers("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            topic=env.text("EVENTS_TOPIC", cls.topic, NAME, topic),
            dead_letter_topic=env.text("DEAD_LETTER_TOPIC", cls.dead_letter_topic, NAME, topic),
            redrive_topic=env.text("REDRIVE_TOPIC", cls.redrive_topic, NAME, topic),
            data_dir=env.folder("DATA_DIR", str(cls.data_dir)),
            database_url=env.database_url("DATABASE_URL"),
            log_level=env.choice("LOG_LEVEL", cls.log_level, LOG_LEVELS),
            instance=env.text("CONSUMER_INSTANCE_ID", "", f"|{NAME}", "letters, digits, '.', '_' or '-'") or None,
            outbox_retention_s=env.whole(
                "OUTBOX_RETENTION_S", cls.outbox_retention_s, expected="a whole number of seconds"
            ),
            **_traces_exporter(env),
            metrics_host=env.text("METRICS_HOST", cls.metrics_host, f"{HOST}|{IPV6}", "a host name or IP address"),
            metrics_port=env.port("METRICS_PORT", 1) if env.raw("METRICS_PORT", "") else None,
        )

    def database(self, name: str | None = None) -> Path:
        """The SQLite file of this service (or another named file of it)."""
        return self.data_dir / f"{name or self.service}.db"


def _traces_exporter(env: Env) -> dict:
    """OTEL_TRACES_EXPORTER, and the endpoint of the exporter it names."""
    exporter = env.choice("OTEL_TRACES_EXPORTER", "none", TRACES_EXPORTERS).lower()
    variable = {"zipkin": "OTEL_EXPORTER_ZIPKIN_ENDPOINT", "otlp": "OTEL_EXPORTER_OTLP_ENDPOINT"}.get(exporter)
    endpoint = env.text(variable, "http://localhost", URL, "an http:// or https:// URL") if variable else None
    return {"traces_exporter": exporter, "traces_endpoint": endpoint}
