"""Other work on the machine, on purpose: `--busy-core` keeps one core busy
with a loop for the whole run, to show how the stack does when it has to share.

The loop is a process of its own that ends by itself after `seconds`, so it is
bounded even when the bench is killed before it can stop it."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def busy_core(seconds: float) -> Iterator[int]:
    """A loop keeping one core busy until the block ends (or `seconds` pass); yields its pid."""
    loop = subprocess.Popen([sys.executable, "-c", LOOP.format(seconds=seconds)])
    try:
        yield loop.pid
    finally:
        loop.terminate()
        loop.wait(5)
