"""CPU time over a phase, from /proc: what each process spent per order (the
efficiency figure, which holds even on a busy machine) and how busy the whole
machine was (other work on it skews every rate)."""

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | str) -> float | None:
    """User plus system CPU seconds of `pid`, all its threads, or of one thread
    when `pid` is "<pid>/task/<tid>", or of a process and every child it has or
    had when `pid` is "<pid>/tree" (PostgreSQL works in the postmaster's
    children, one per connection); None when it is gone."""
    if str(pid).endswith("/tree"):
        return _tree_cpu_s(int(str(pid).removesuffix("/tree")))
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def _tree_cpu_s(pid: int) -> float | None:
    """Its own time, its reaped children's (cutime, cstime) and its running children's."""
    fields = _stat(pid)
    if fields is None:
        return None
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        children = []
    running = sum(_tree_cpu_s(child.pid) or 0.0 for child in children)
    return sum(int(field) for field in fields[11:15]) / TICKS + running


def _stat(pid: int | str) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces; what follows may not


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICKS


class CpuMeter:
    """CPU use of the processes `pids()` names, and of the machine, between enter and exit."""

    def __init__(self, pids: Callable[[], dict[str, int | str]]):
        self._pids = pids

    def __enter__(self) -> "CpuMeter":
        self._start = self._snapshot()
        return self

    def __exit__(self, *_) -> None:
        self._end = self._snapshot()

    def _snapshot(self) -> dict:
        pids = self._pids()
        return {
            "wall": time.monotonic(),
            "machine": machine_busy_s(),
            "pids": pids,
            "cpu": {name: process_cpu_s(pid) for name, pid in pids.items()},
        }

    def seconds(self) -> dict[str, float]:
        """CPU seconds per process over the phase (a process restarted meanwhile is left out)."""
        start, end = self._start, self._end
        return {
            name: end["cpu"][name] - start["cpu"][name]
            for name in start["pids"]
            if end["pids"].get(name) == start["pids"][name] and None not in (start["cpu"][name], end["cpu"].get(name))
        }

    def machine_cores(self) -> float:
        """How many cores the machine kept busy on average, ours and everyone else's."""
        return (self._end["machine"] - self._start["machine"]) / (self._end["wall"] - self._start["wall"])

    def summary(self, work: int, unit: str) -> dict:
        """Per process: average cores in use and CPU milliseconds per unit of `work`;
        and what the rest of the machine used meanwhile (other work skews the rates)."""
        wall = self._end["wall"] - self._start["wall"]
        spent = self.seconds()
        return {
            "machine_cores_busy": round(self.machine_cores(), 2),
            "other_cores_busy": round(max(self.machine_cores() - sum(spent.values()) / wall, 0.0), 2),
            "cores": {name: round(seconds / wall, 3) for name, seconds in spent.items()},
            f"cpu_ms_per_{unit}": {name: round(seconds * 1000 / work, 3) for name, seconds in spent.items()}
            if work
            else {},
        }
