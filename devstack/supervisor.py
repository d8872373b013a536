"""Runs child processes like compose's `restart: unless-stopped`: each output
line is prefixed with the child's name (and kept in a log file), and a child
that dies is started again, unless it exited for a bad setting.

The supervisor owns its children: whatever ends it, they end too.
- Each child runs in a session of its own, so the terminal's Ctrl-C or hang-up
  reaches only the supervisor, which stops them in order.
- Each child is started with a parent-death signal (Linux's PR_SET_PDEATHSIG):
  when the supervisor dies without stopping them (SIGKILL, the OOM killer), the
  kernel signals every child at once. Unlike a pipe the children watch, this
  needs no code in the children, so it covers the Kafka JVM as well as our
  services, and unlike keeping the children in the terminal's process group it
  leaves Ctrl-C to the supervisor. The services get SIGTERM, and stop within
  seconds; Kafka gets SIGKILL, as no one is left to wait for its shutdown (which
  can take 10 s on a busy machine) and it recovers from a crash by design. The
  kernel sends the signal when the *thread* that started a child ends, so every
  child is started by one launcher thread that lives as long as the supervisor.
- A pid file lists the children, so that one which outlives all this (a frozen
  process cannot act on SIGTERM) is found and stopped by the next start.
"""

import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psutil

from eventbus.settings import EX_CONFIG

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `signum` when its parent dies (Linux;
    elsewhere the next start cleans up). Safe in a `preexec_fn`: one C call."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signum)


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    orphan_signal: int = signal.SIGTERM  # what it gets should the supervisor die
    stop_signal: int = signal.SIGTERM  # what asks it to stop (PostgreSQL: SIGINT, its fast shutdown)
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.0
    stopping: bool = False


class Supervisor:
    def __init__(self, log_dir: Path, echo: bool = True, pid_file: Path | None = None):
        self.log_dir = log_dir
        self.echo = echo
        self.pid_file = pid_file
        self.children: dict[str, Child] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._spawning = threading.Lock()  # a child is never restarted once asked to stop
        self._log_files: dict[str, TextIO] = {}
        self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="launcher")  # its thread lives on
        threading.Thread(target=self._watch, name="supervisor", daemon=True).start()

    def say(self, message: str) -> None:
        self._write("devstack", message + "\n")

    def start(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        orphan_signal: int = signal.SIGTERM,
        stop_signal: int = signal.SIGTERM,
    ) -> Child:
        child = Child(name, command, env or {}, orphan_signal, stop_signal)
        self._spawn(child)
        self.children[name] = child
        self._record()
        return child

    def pid(self, name: str) -> int:
        return self.children[name].process.pid

    def retire(self, name: str) -> None:
        """Stop one child for good, without restarting it."""
        self.stop([name])

    def kill(self, name: str) -> None:
        """SIGKILL one child, as a crash would, and leave it down: no restart."""
        child = self.children.pop(name)
        with self._spawning:
            child.stopping = True
            child.process.kill()
        child.process.wait()
        self._record()

    def stop(self, names: list[str], grace: float = 5.0) -> None:
        """Signal the named children to stop at once (SIGTERM unless they asked
        for another; with SIGCONT, in case one is frozen); SIGKILL any still
        running after `grace` seconds."""
        children = [self.children[name] for name in names if name in self.children]
        for child in children:
            with self._spawning:
                child.stopping = True
                if child.process.poll() is None:
                    child.process.send_signal(child.stop_signal)
                    child.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + grace
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_signal = signal.Signals(child.stop_signal).name
                self.say(f"{child.name} did not stop within {grace:.0f}s of {stop_signal}; killing it")
                child.process.kill()
                child.process.wait()
            del self.children[child.name]
        self._record()

    def close(self) -> None:
        """After the last child stopped: no more restarts, logs closed, no pid file."""
        self._stopping.set()
        self._launcher.shutdown()
        if self.pid_file:
            self.pid_file.unlink(missing_ok=True)
        with self._lock:
            for log_file in self._log_files.values():
                log_file.close()
            self._log_files.clear()

    def _spawn(self, child: Child) -> None:
        self._launcher.submit(self._popen, child).result()
        threading.Thread(target=self._pump, args=(child, child.process), daemon=True).start()

    def _popen(self, child: Child) -> None:
        """Runs on the launcher thread only (see the module's docstring)."""
        child.started_at = time.monotonic()
        child.process = subprocess.Popen(
            child.command,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "DEVSTACK_SUPERVISOR": str(os.getpid()), **child.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, child.orphan_signal),
        )

    def _record(self) -> None:
        """Write the pid file: each running child's pid and start time (which
        tells it from a later process that happens to get the same pid)."""
        if self.pid_file is None:
            return
        running = {}
        for child in list(self.children.values()):
            try:
                running[child.name] = [child.process.pid, psutil.Process(child.process.pid).create_time()]
            except psutil.Error:
                pass
        temporary = self.pid_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(running))
        temporary.replace(self.pid_file)

    def _pump(self, child: Child, process: subprocess.Popen) -> None:
        for line in iter(process.stdout.readline, b""):
            self._write(child.name, line.decode(errors="replace"))

    def _write(self, name: str, line: str) -> None:
        with self._lock:
            if name not in self._log_files:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._log_files[name] = open(self.log_dir / f"{name}.log", "a", buffering=1)  # noqa: SIM115
            self._log_files[name].write(line)
            if self.echo:
                try:
                    sys.stdout.write(f"{name:<13} | {line}")
                    sys.stdout.flush()
                except OSError:  # the terminal was closed (EIO) or the reader left (EPIPE): log files only
                    self.echo = False

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in list(self.children.values()):
                code = child.process.poll()
                if code is not None and not child.stopping and not self._stopping.is_set():
                    self._restart(child, code)

    def _restart(self, child: Child, code: int) -> None:
        """Restart at once after a long run; back off when it keeps dying young.
        A child that exited for a bad setting would only fail again: it stays down."""
        if code == EX_CONFIG:
            self.say(f"{child.name} exited: a setting is wrong (its line above says which); not restarting it")
            del self.children[child.name]
            self._record()
            return
        lived = time.monotonic() - child.started_at
        child.backoff = 0.0 if lived > 10 else min(max(child.backoff * 2, 0.5), 10.0)
        child.restarts += 1
        self.say(
            f"{child.name} exited with code {code}; restarting it in {child.backoff:.1f}s (restart {child.restarts})"
        )
        self._stopping.wait(child.backoff)
        with self._spawning:
            if not self._stopping.is_set() and not child.stopping:
                self._spawn(child)
                self._record()
