"""Traces through OpenTelemetry: a W3C `traceparent` that starts at the HTTP
request and follows the order through every event and every log line, with a
span for each step (the request, each relay publish, each record consumed).

The one `traceparent` a Kafka message carries is the span that sent it:
OpenTelemetry's W3C propagator writes it into the headers and reads it back.
Spans always get ids (the logs and the order page show them); they are
recorded, and leave the process, only when OTEL_TRACES_EXPORTER names an
exporter: a span that nothing exports would cost each record consumed about
50 microseconds for nothing."""

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, Message
from opentelemetry import context, trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()  # only `traceparent` (and a `tracestate` when one came in)
_tracer = trace.get_tracer("eventbus")
log = logging.getLogger(__name__)
_exporting = False  # whether this process's spans leave it (see configure)
_arrived: ContextVar[str | None] = ContextVar("arrived_trace_id", default=None)  # see consuming


def configure(service: str, exporter: str, endpoint: str | None = None) -> bool:
    """Name this process's spans after `service` and export them with `exporter`
    (`none`: no exporter, no thread) to `endpoint`; say whether spans leave the process.
    Once per process; later calls change nothing. An exporter's packages are
    imported only when it is chosen.

    An endpoint whose host does not resolve turns the exporter off, said once:
    under Docker Compose the `zipkin` host exists only with the `traces` profile,
    and without it every batch of spans would fail and log."""
    global _exporting
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return _exporting
    if exporter != "none" and not resolves(endpoint):
        log.info("traces: %s does not resolve, so spans are not exported", urlsplit(endpoint).hostname)
        exporter = "none"
    # Exporting, every span of this process is kept, whatever the caller's traceparent says about its own.
    sampler = ALWAYS_OFF if exporter == "none" else ALWAYS_ON
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    if exporter == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter  # reads OTEL_EXPORTER_ZIPKIN_ENDPOINT

        provider.add_span_processor(BatchSpanProcessor(ZipkinExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # OTEL_EXPORTER_OTLP_*

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _exporting = exporter != "none"
    return _exporting


def resolves(endpoint: str | None) -> bool:
    """Whether the host of `endpoint` (localhost when None) has an address."""
    host = urlsplit(endpoint or "http://localhost").hostname
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def shutdown() -> None:
    """Send the spans still waiting in the exporter's batch."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


class _BytesHeaders:
    """Kafka headers ({name: bytes}) as the propagator's carrier."""

    @staticmethod
    def get(headers: dict, key: str) -> list[str] | None:
        value = headers.get(key)
        return [value.decode(errors="replace")] if value else None

    @staticmethod
    def keys(headers: dict) -> list[str]:
        return list(headers)

    @staticmethod
    def set(headers: dict, key: str, value: str) -> None:
        headers[key] = value.encode()


def inject(headers: dict[str, bytes], span: Span | None = None) -> dict[str, bytes]:
    """`headers` with the `traceparent` of `span` (by default the current one)."""
    where = trace.set_span_in_context(span) if span else None
    _PROPAGATOR.inject(headers, context=where, setter=_BytesHeaders)
    return headers


def extract(headers: dict[str, bytes]) -> context.Context:
    return _PROPAGATOR.extract(headers, getter=_BytesHeaders)


def trace_id(traceparent: str | None) -> str | None:
    """The trace id in a `traceparent`, or None when it is missing or malformed."""
    return _trace_id_of(trace.get_current_span(extract({"traceparent": (traceparent or "").encode()})))


def current_trace_id() -> str | None:
    """The trace the running code belongs to, if any."""
    return _trace_id_of(trace.get_current_span())


def arrived_trace_id() -> str | None:
    """The trace the record being handled arrived in, or None for one that came without a
    `traceparent`: the span around it then starts a trace no replay of the topic could know."""
    return _arrived.get()


def _trace_id_of(span: Span) -> str | None:
    span_context = span.get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None


@contextmanager
def consuming(record: Message, group: str) -> Iterator[Span]:
    """A consumer span around the processing of one record, child of the span that sent it,
    with OpenTelemetry's messaging attributes."""
    headers = dict(record.headers() or [])
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic(),
        "messaging.destination.partition.id": str(record.partition()),
        "messaging.kafka.offset": record.offset(),
        "messaging.consumer.group.name": group,
    }
    if record.key() is not None:
        attributes["messaging.kafka.message.key"] = record.key().decode(errors="replace")
    if headers.get("ce_id"):
        attributes["messaging.message.id"] = headers["ce_id"].decode(errors="replace")
    if headers.get("ce_type"):
        attributes["cloudevents.event_type"] = headers["ce_type"].decode(errors="replace")
    name = f"process {attributes.get('cloudevents.event_type', record.topic())}"  # "process OrderCreated"
    with arriving(headers), _tracer.start_as_current_span(name, kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span


@contextmanager
def arriving(headers: dict[str, bytes]) -> Iterator[None]:
    """Run the block in the trace of the record whose `headers` these are: the
    one arrived_trace_id names, whether this process records spans or not."""
    sender = extract(headers)
    token, arrived = context.attach(sender), _arrived.set(_trace_id_of(trace.get_current_span(sender)))
    try:
        yield
    finally:
        _arrived.reset(arrived)
        context.detach(token)


def dead_lettered(reason: str) -> None:
    """Mark the current span: its record went to the dead-letter topic, for `reason`."""
    span = trace.get_current_span()
    span.set_attribute("dlq.reason", reason)
    span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {reason}"))


def publishing(topic: str, key: bytes | None, headers: dict[str, bytes]) -> Span:
    """A producer span for one message about to be sent, child of the span whose
    `traceparent` the headers hold (the one that wrote the outbox row); the
    headers then carry this span instead. The caller ends it once Kafka answered."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode(errors="replace")
    if headers.get("ce_id"):
        attributes["messaging.message.id"] = headers["ce_id"].decode(errors="replace")
    event_type = (headers.get("ce_type") or topic.encode()).decode(errors="replace")
    span = _tracer.start_span(
        f"send {event_type}", context=extract(headers), kind=SpanKind.PRODUCER, attributes=attributes
    )
    inject(headers, span)
    return span


def published(span: Span, error: KafkaError | None, message: Message) -> None:
    """End a producer span once Kafka answered: where the message landed, or why it did not."""
    if error is None:
        span.set_attribute("messaging.destination.partition.id", str(message.partition()))
        span.set_attribute("messaging.kafka.offset", message.offset())
    else:
        span.set_status(Status(StatusCode.ERROR, error.str()))
    span.end()


def span(name: str, **attributes) -> trace.Span:
    """A span of its own inside the current one, as a context manager."""
    return _tracer.start_as_current_span(name, attributes=attributes)


def name_request(method: str, route: str) -> None:
    """Name the current HTTP request's span after its route, as OpenTelemetry's HTTP conventions do."""
    span = trace.get_current_span()
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)


def wsgi(app):
    """`app` with a server span around each HTTP request, continuing the caller's `traceparent`."""
    return OpenTelemetryMiddleware(app)


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace = current_trace_id() or "-"
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log lines on stdout, each ending with the trace it belongs to."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_TraceFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s [trace=%(trace)s]"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)  # outages are reported by our own warnings
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a short queue under bursts is normal
