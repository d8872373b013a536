"""Runs child processes like compose's `restart: unless-stopped`: each output
line is prefixed with the child's name (and kept in a log file), and a child
that dies is started again."""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.0


class Supervisor:
    def __init__(self, log_dir: Path, echo: bool = True):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.children: dict[str, Child] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._log_files: dict[str, TextIO] = {}
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def say(self, message: str) -> None:
        self._write("devstack", message + "\n")

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, command, env or {})
        self.children[name] = child
        self._spawn(child)
        if not self._watcher.is_alive():
            self._watcher.start()
        return child

    def pid(self, name: str) -> int:
        return self.children[name].process.pid

    def retire(self, name: str, timeout: float = 20) -> None:
        """Stop one child for good (SIGTERM), without restarting it."""
        child = self.children.pop(name)
        child.process.send_signal(signal.SIGTERM)
        child.process.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the children, last started first; SIGKILL what outlives `timeout`."""
        self._stopping.set()
        for child in reversed(list(self.children.values())):
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop in {timeout}s; killing it")
                    child.process.kill()
                    child.process.wait()
        self.say("all stopped")
        with self._lock:
            for log_file in self._log_files.values():
                log_file.close()
            self._log_files.clear()

    def _spawn(self, child: Child) -> None:
        child.started_at = time.monotonic()
        child.process = subprocess.Popen(
            child.command,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **child.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(child, child.process), daemon=True).start()

    def _pump(self, child: Child, process: subprocess.Popen) -> None:
        for line in iter(process.stdout.readline, b""):
            self._write(child.name, line.decode(errors="replace"))

    def _write(self, name: str, line: str) -> None:
        with self._lock:
            if name not in self._log_files:
                self._log_files[name] = open(self.log_dir / f"{name}.log", "a", buffering=1)  # noqa: SIM115
            self._log_files[name].write(line)
            if self.echo:
                sys.stdout.write(f"{name:<13} | {line}")
                sys.stdout.flush()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in list(self.children.values()):
                code = child.process.poll()
                if code is not None and not self._stopping.is_set():
                    self._restart(child, code)

    def _restart(self, child: Child, code: int) -> None:
        """Restart at once after a long run; back off when it keeps dying young."""
        lived = time.monotonic() - child.started_at
        child.backoff = 0.0 if lived > 10 else min(max(child.backoff * 2, 0.5), 10.0)
        child.restarts += 1
        self.say(
            f"{child.name} exited with code {code}; restarting it in {child.backoff:.1f}s (restart {child.restarts})"
        )
        self._stopping.wait(child.backoff)
        if not self._stopping.is_set():
            self._spawn(child)
