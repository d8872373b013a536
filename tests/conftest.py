"""Shared fixtures: a SQLite store, an in-process WSGI caller, a fake Kafka
consumer the consumer loop can run against, Kafka records built from sealed
events, and the spans a test made. Nothing here touches a network or a broker."""

# ruff: noqa: E402 -- the warning filter has to be in place before kafka-python is imported.
import warnings

# kafka-python loads its protocol schemas with a deprecated importlib API when imported.
warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)

import io
import json
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from wsgiref.util import setup_testing_defaults

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventbus import ledger, outbox, tracing
from eventbus.store import Store

TOPIC = "orders.events"


# --- SQLite -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Store:
    """A store on tmp_path holding the ledger and outbox tables."""
    store = Store(tmp_path / "service.db")
    ledger.create(store.db())
    outbox.create(store.db())
    return store


@pytest.fixture
def outbox_rows(store):
    """What the outbox holds, headers decoded back to the bytes the relay sends."""

    def rows() -> list[dict]:
        query = store.db().query("SELECT topic, key, value, headers FROM outbox ORDER BY id")
        return [row | {"headers": dict(outbox._headers(row["headers"]))} for row in query]

    return rows


# --- traces -------------------------------------------------------------------

_FINISHED = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def traced():
    """OpenTelemetry's SDK as a service sets it up (exporter none), keeping spans in memory."""
    tracing.configure("test", "none")
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(_FINISHED))


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
) -> ConsumerRecord:
    if message is not None:
        headers, key, value = message.headers, message.key, message.value
    return ConsumerRecord(
        topic=TOPIC,
        partition=partition,
        leader_epoch=-1,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        headers=list((headers or {}).items()),
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        serialized_header_size=-1,
    )


@pytest.fixture
def kafka_record():
    """`kafka_record(seal(event, source), offset=5)` or `kafka_record(headers=..., value=...)`:
    a kafka-python ConsumerRecord as poll() hands it out."""
    return _record


class FakeConsumer:
    """Plays scripted poll() results and sets `stop` on the last one, so the
    consumer loop runs a bounded number of polls. Records commits and seeks;
    `on_commit` runs at each commit, to look at what was durable by then."""

    def __init__(self, polls: list[list[ConsumerRecord]], stop: threading.Event):
        self._polls = list(polls)
        self._stop = stop
        self.commits: list[tuple[int, int]] = []  # (partition, next offset)
        self.seeks: list[tuple[int, int]] = []  # (partition, offset)
        self.on_commit = lambda: None
        self._fetcher = SimpleNamespace(config={})  # what eventbus.kafka.Poller paces
        self._subscription = SimpleNamespace(all_consumed_offsets=dict)  # what eventbus.metrics reads the lag from

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[ConsumerRecord]]:
        records = self._polls.pop(0) if self._polls else []
        if not self._polls:
            self._stop.set()
        batches: dict[TopicPartition, list[ConsumerRecord]] = {}
        for each in records:
            batches.setdefault(TopicPartition(each.topic, each.partition), []).append(each)
        return batches

    def commit_async(self, offsets, callback=None) -> None:
        self.on_commit()
        self.commits.extend((partition.partition, meta.offset) for partition, meta in offsets.items())

    def commit(self, offsets, timeout_ms=None) -> None:
        self.commit_async(offsets)

    def highwater(self, partition: TopicPartition) -> None:
        return None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition.partition, offset))


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
