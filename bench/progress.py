"""A progress line on stderr, so a two-minute run never looks hung.

On a terminal the line is redrawn in place; in a log (make test, CI) it is a
plain line every few seconds instead of a wall of carriage returns.
"""

import signal
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WIDTH = 24
LOG_EVERY_S = 5.0


class Progress:
    def __init__(self, stream=sys.stderr):
        self._stream = stream
        self._tty = stream.isatty()
        self._last_logged = 0.0
        self._open = False

    def show(self, label: str, fraction: float, detail: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(fraction * WIDTH)
        line = f"{label:<10} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%}  {detail}"
        if self._tty:
            self._stream.write("\r" + line.ljust(100)[:100])
            self._stream.flush()
            self._open = True
        elif time.monotonic() - self._last_logged >= LOG_EVERY_S:
            self._last_logged = time.monotonic()
            self._stream.write(line + "\n")
            self._stream.flush()

    def done(self, label: str, detail: str) -> None:
        if self._open:
            self._stream.write("\r" + " " * 100 + "\r")
            self._open = False
        self._stream.write(f"{label:<10} done: {detail}\n")
        self._stream.flush()
        self._last_logged = 0.0

    def note(self, message: str) -> None:
        if self._open:
            self._stream.write("\n")
            self._open = False
        self._stream.write(message + "\n")
        self._stream.flush()


def until_interrupted(work: Callable[[], T], progress: Progress) -> T | None:
    """Run `work`; Ctrl-C or SIGTERM unwinds it, so the stack is stopped on the
    way out, and gives None. Set explicitly because a shell starts background
    jobs with SIGINT ignored."""

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    try:
        return work()
    except KeyboardInterrupt:
        progress.note("interrupted; the stack is stopped and nothing was written")
        return None
