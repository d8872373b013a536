"""Liveness for a process without HTTP: the consumer loop touches a file after
every poll, and `python -m eventbus.health FILE` exits 0 while it is fresh
(a container healthcheck)."""

import sys
import time
from pathlib import Path

MAX_AGE_SECONDS = 30.0


def beat(path: Path) -> None:
    path.touch()


def fresh(path: Path, now: float | None = None) -> bool:
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age < MAX_AGE_SECONDS


if __name__ == "__main__":
    sys.exit(0 if fresh(Path(sys.argv[1])) else 1)
