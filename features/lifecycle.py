"""`make run` as a user runs it: in a terminal of its own (a pseudo-terminal,
in a session of its own), with a data folder and ports of its own derived from
PORT_OFFSET. Steps close that terminal, kill its processes, start a second one,
and look for what is left."""

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from devstack import claim
from features.driver import wait_until

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240.0  # Kafka's first start on a busy 2-core machine
MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # `make test` runs us: the stack's make is not a sub-make


@dataclass(frozen=True)
class Place:
    """Where one scenario's stack lives: a folder and ports no other stack uses."""

    home: Path
    kafka_port: int
    orders_port: int
    postgres_port: int  # used when STORE=postgres
    metrics_port: int  # billing's; notifications' is the next one

    @classmethod
    def number(cls, n: int, offset: int) -> "Place":
        return cls(
            ROOT / ".run" / "lifecycle" / str(n),
            22092 + offset + 2 * n,
            23002 + offset + n,
            24432 + offset + n,
            24101 + offset + 2 * n,
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if name not in MAKE_VARIABLES}
        return env | {
            "STACK_DIR": str(self.home),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.kafka_port + 1),
            "ORDERS_PORT": str(self.orders_port),
            "POSTGRES_PORT": str(self.postgres_port),
            "METRICS_PORT": str(self.metrics_port),
            **extra,
        }

    @property
    def orders_url(self) -> str:
        return f"http://127.0.0.1:{self.orders_port}"

    def children(self) -> dict[str, psutil.Process]:
        """The stack's running processes by name, from its supervisor's pid file."""
        return dict(claim.recorded(self.home / "pids.json"))


# A command typed in a terminal reacts to Ctrl-C. A test run started in the
# background (`make test &`, CI runners) ignores SIGINT, its children inherit
# that, and the stack rightly keeps ignoring it; so the command starts afresh.
WITH_CTRL_C = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """One command (`make run` by default) in a terminal window of its own."""

    def __init__(self, env: dict[str, str], command: tuple[str, ...] = ("make", "run")):
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            (sys.executable, "-c", WITH_CTRL_C, *command),
            cwd=ROOT,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="terminal", daemon=True)
        self._reader.start()

    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        def shown() -> bool:
            if self.process.poll() is not None and text not in self.output():
                raise AssertionError(f"exited with {self.process.returncode} before showing {text!r}:\n{self.output()}")
            return text in self.output()

        wait_until(shown, f"the terminal shows {text!r}", timeout)

    def wait_for_exit(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def processes(self) -> list[psutil.Process]:
        """make, the supervisor, Kafka and the services, while they run."""
        try:
            top = psutil.Process(self.process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def supervisor(self) -> psutil.Process:
        return next(p for p in self.processes() if "devstack" in " ".join(p.cmdline()))

    def hang_up(self) -> None:
        """What closing the window does: SIGHUP to the command's process group, and the terminal is gone."""
        os.killpg(self.process.pid, signal.SIGHUP)
        self._closing.set()
        self._reader.join(5)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the process group in the foreground."""
        os.killpg(self.process.pid, signal.SIGINT)

    def _read(self) -> None:
        try:
            while not self._closing.is_set():
                if select.select([self._master], [], [], 0.1)[0]:
                    data = os.read(self._master, 65536)
                    if not data:
                        break
                    self._chunks.append(data)
        except OSError:  # EIO: every process that had the terminal open has ended
            pass
        finally:
            os.close(self._master)


def post_order(orders_url: str, order: dict) -> int:
    request = urllib.request.Request(
        f"{orders_url}/orders", json.dumps(order).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def parts(processes: list[psutil.Process]) -> list[psutil.Process]:
    """One process per part of the stack: PostgreSQL's own workers (its
    postmaster's children) left out."""
    servers, found = set(), []
    for process in processes:
        try:
            if process.name() == "postgres":
                servers.add(process.pid)
            found.append((process, process.ppid()))
        except psutil.NoSuchProcess:
            pass
    return [process for process, parent in found if parent not in servers]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie is gone: it holds no port, no file, no CPU)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


def wait_until_gone(processes: list[psutil.Process], seconds: float) -> float:
    """How long it took until none of `processes` runs; fail after `seconds`."""
    began = time.monotonic()
    wait_until(lambda: not alive(processes), f"none of {[p.pid for p in processes]} runs", seconds)
    return time.monotonic() - began


def kill_all(processes: list[psutil.Process]) -> None:
    for process in alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):  # gone meanwhile, as PostgreSQL's workers go with it
            process.kill()
    psutil.wait_procs(processes, timeout=10)
