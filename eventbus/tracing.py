"""W3C trace context: a `traceparent` that starts at the HTTP request and
follows the order through every event and every log line."""

import contextvars
import logging
import re
import secrets
import sys
from contextlib import contextmanager

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def valid(traceparent: str | None) -> bool:
    return bool(traceparent and _TRACEPARENT.match(traceparent))


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if valid(traceparent) else None


def current_trace_id() -> str | None:
    """The trace the running code belongs to, if any."""
    return trace_id(_current.get())


def child_traceparent() -> str:
    """A new span in the current trace (or a new trace when there is none)."""
    return new_traceparent(trace_id(_current.get()))


@contextmanager
def continuing(traceparent: str | None):
    """Run the block inside the trace of `traceparent`; start one if it is missing or bad."""
    token = _current.set(traceparent if valid(traceparent) else new_traceparent())
    try:
        yield
    finally:
        _current.reset(token)


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace = trace_id(_current.get()) or "-"
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log lines on stdout, each ending with the trace it belongs to."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_TraceFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s [trace=%(trace)s]"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # The format shows none of these, and each costs a call per record (the
    # logging HOWTO's "Optimization" section); _srcfile=None skips the stack walk.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # outages are reported by our own warnings
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a short queue under bursts is normal
