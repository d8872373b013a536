"""Resident memory of the stack's processes, sampled from /proc under load:
the issue's budget is 80 MB per service, and a leak shows as a rising peak."""

import threading
from collections.abc import Callable
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    """VmRSS of `pid` in MB, or None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class RssSampler:
    """Samples every process that `pids()` names, in a thread, until stopped."""

    def __init__(self, pids: Callable[[], dict[str, int]], every_s: float = 0.5):
        self._pids = pids
        self._every_s = every_s
        self._stop = threading.Event()
        self._samples: dict[str, list[float]] = {}
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            for name, pid in self._pids().items():
                value = rss_mb(pid)
                if value is not None:
                    self._samples.setdefault(name, []).append(value)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"peak_mb": round(max(values), 1), "mean_mb": round(sum(values) / len(values), 1)}
            for name, values in self._samples.items()
            if values
        }
