"""Shared fixtures: a SQLite store, a throw-away PostgreSQL server with a fresh
database per test, an in-process WSGI caller, a fake Kafka consumer the consumer
loop can run against, Kafka records built from sealed events, and the spans a
test made. Nothing here touches a broker; PostgreSQL listens on 127.0.0.1 only."""

import functools
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import psycopg
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import OFFSET_INVALID, KafkaError, Message, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from psycopg import sql

from devstack.postgres import Server
from devstack.supervisor import die_with_parent
from eventbus import ledger, outbox
from eventbus.settings import Settings
from eventbus.store import Store, open_store, sqlite

TOPIC = "orders.events"


# --- the store, on each adapter ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request, tmp_path) -> Settings:
    """A service's settings with its state in SQLite in tmp_path, or in a fresh PostgreSQL database."""
    url = request.getfixturevalue("postgres_database") if request.param == "postgres" else None
    return Settings(service="test", data_dir=tmp_path, database_url=url)


@pytest.fixture
def store(store_settings) -> Store:
    """A store on each adapter, holding the ledger and outbox tables."""
    store = open_store(store_settings)
    ledger.create(store)
    outbox.create(store)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path) -> sqlite.SqliteStore:
    """A SQLite store, for what only that adapter does (checkpoints)."""
    store = sqlite.SqliteStore(tmp_path / "service.db")
    outbox.create(store)
    return store


@pytest.fixture
def outbox_rows(store):
    """What the outbox holds, headers decoded back to the bytes the relay sends."""

    def rows() -> list[dict]:
        query = store.query("SELECT topic, key, value, headers FROM outbox ORDER BY id")
        return [row | {"headers": dict(outbox._headers(row["headers"]))} for row in query]

    return rows


# --- PostgreSQL ---------------------------------------------------------------


@contextmanager
def _running_postgres(home: Path, **options) -> Iterator[tuple[Server, subprocess.Popen]]:
    """A server in `home` on a free port, not durable (no fsync), stopped fast
    at the end; it dies with this process should pytest be killed. `options`: Server's."""
    server = Server(home, free_port(), durable=False, **options)
    server.prepare()
    with open(home / "server.log", "ab") as log:
        process = subprocess.Popen(
            server.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(die_with_parent, signal.SIGINT),
        )
    try:
        server.wait_ready(threading.Event())
        yield server, process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


@contextmanager
def _postgres_home() -> Iterator[Path]:
    """A temporary folder the server may enter: as root it runs as `postgres`,
    and pytest's own temporary folders are root's alone."""
    home = Path(tempfile.mkdtemp(prefix="event-driven-postgres-"))
    os.chmod(home, 0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def within(seconds: float, condition) -> bool:
    """Poll `condition` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """One throw-away PostgreSQL for the whole session. Never skipped: with no
    server on this machine (and none installable) every test using it errors."""
    with _postgres_home() as home, _running_postgres(home) as (server, _):
        yield server


@pytest.fixture
def postgres_home() -> Iterator[Path]:
    """A folder for a server of the test's own (see `running_postgres`)."""
    with _postgres_home() as home:
        yield home


@pytest.fixture
def running_postgres():
    """`with running_postgres(home) as (server, process):` a server of the test's own."""
    return _running_postgres


@pytest.fixture
def postgres_database(postgres_server) -> Iterator[str]:
    """The URL of a fresh, empty database of this test's own, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.create_databases((name,))
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


# --- traces -------------------------------------------------------------------

_FINISHED = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def traced():
    """OpenTelemetry's SDK as a service exporting its spans sets it up, exporting them to memory."""
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}), sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(_FINISHED))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans():
    """`spans()`: the spans finished since the test began, oldest first."""
    _FINISHED.clear()
    return _FINISHED.get_finished_spans


# --- Kafka --------------------------------------------------------------------


def _record(
    message: KafkaMessage | None = None,
    *,
    headers: dict[str, bytes | None] | None = None,
    key: bytes | None = b"1",
    value: bytes | None = b"{}",
    offset: int = 0,
    partition: int = 0,
) -> Message:
    if message is not None:
        headers, key, value = message.headers, message.key, message.value
    return Message(
        topic=TOPIC, partition=partition, offset=offset, key=key, value=value, headers=list((headers or {}).items())
    )


@pytest.fixture
def kafka_record():
    """`kafka_record(seal(event, source), offset=5)` or `kafka_record(headers=..., value=...)`:
    a confluent-kafka Message as consume() hands it out."""
    return _record


class FakeConsumer:
    """Plays scripted polls and sets `stop` on the last one, so the consumer
    loop runs a bounded number of polls: a poll() takes the first record of
    the next list, the consume() after it the rest; waiting for more (a
    pacer's hold) finds nothing more. Records commits and seeks; `on_commit`
    runs at each commit, to look at what was durable by then."""

    def __init__(self, polls: list[list[Message]], stop: threading.Event):
        self._polls = list(polls)
        self._stop = stop
        self._rest: list[Message] = []
        self.commits: list[tuple[int, int]] = []  # (partition, next offset)
        self.seeks: list[tuple[int, int]] = []  # (partition, offset)
        self.waits: list[float] = []  # each poll()'s and consume()'s timeout
        self.on_commit = lambda: None
        self.assigned: list[TopicPartition] = []
        self.positions: dict[int, int] = {}  # partition -> next offset to hand out, as the client keeps it

    def poll(self, timeout: float = -1) -> Message | None:
        self.waits.append(timeout)
        records = self._polls.pop(0) if self._polls else []
        if not self._polls:
            self._stop.set()
        self._rest = records[1:]
        return self._handed(records[:1])[0] if records else None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self.waits.append(timeout)
        rest, self._rest = self._rest[:num_messages], self._rest[num_messages:]
        return self._handed(rest)

    def _handed(self, records: list[Message]) -> list[Message]:
        for record in records:
            if record.offset() is not None:  # an error not about a partition has none
                self.positions[record.partition()] = record.offset() + (record.error() is None)
        return records

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.on_commit()
        self.commits.extend((partition.partition, partition.offset) for partition in offsets)

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.partition, partition.offset))
        self.positions[partition.partition] = OFFSET_INVALID  # as librdkafka's until the next fetch

    def assignment(self) -> list[TopicPartition]:
        seen = [TopicPartition(TOPIC, number) for number in self.positions]
        return self.assigned + [tp for tp in seen if tp.partition not in {a.partition for a in self.assigned}]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, max(self.positions.get(partition.partition, -1), -1)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, tp.offset)) for tp in partitions
        ]


class FakeProducer:
    """Takes sends as confluent-kafka's Producer does and answers them at the
    flush: each acknowledged on partition 1 at the next offset, or failed for
    the `failing` keys."""

    def __init__(self, failing: tuple[bytes, ...] = ()):
        self.sent: list[dict] = []
        self.flushes = 0
        self._failing = failing
        self._answers: list = []

    def produce(self, topic, value, key, headers, on_delivery):
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        error = KafkaError(KafkaError._MSG_TIMED_OUT, "broker said no") if key in self._failing else None
        message = Message(topic=topic, partition=1, offset=len(self.sent), key=key, value=value)
        self._answers.append(lambda: on_delivery(error, message))

    def flush(self, timeout=None) -> int:
        self.flushes += 1
        answers, self._answers = self._answers, []
        for answer in answers:
            answer()
        return 0


@pytest.fixture
def fake_producer() -> type[FakeProducer]:
    """`fake_producer()`, or `fake_producer(failing=(b"2",))`."""
    return FakeProducer


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture
def fake_consumer(stop):
    """`fake_consumer([record, ...], [record, ...])`: one list per poll()."""
    return lambda *polls: FakeConsumer(list(polls), stop)


# --- WSGI ---------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self):
        return json.loads(self.text)


def _call(app, method: str, path: str, body: bytes = b"", content_type: str = "application/json", headers=None):
    environ: dict = {}
    setup_testing_defaults(environ)
    path, _, query = path.partition("?")
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
        }
    )
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in (headers or {}).items()})
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started.update(status=int(status.split()[0]), headers=dict(response_headers))

    chunks = app(environ, start_response)
    try:
        text = b"".join(chunks).decode()
    finally:
        getattr(chunks, "close", lambda: None)()
    return Response(started["status"], started["headers"], text)


@pytest.fixture
def call():
    """`call(app, "POST", "/orders", body=b"...")` drives a WSGI app in-process,
    without sockets; the Response has status, headers, text and json."""
    return _call
