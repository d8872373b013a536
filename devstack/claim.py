"""One stack per data folder and per ports. A start locks its folder (the kernel
drops the lock however the supervisor ends, so it is never stale), stops what a
killed stack left running there, and checks that its ports are free, naming
whoever holds one and how to stop it."""

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import TextIO

import psutil

from devstack import StartFailed

LEFTOVER_GRACE = 5.0  # seconds a leftover gets to stop after SIGTERM before SIGKILL


def lock_folder(home: Path) -> TextIO:
    """Hold `home`'s lock for as long as the returned file stays open."""
    home.mkdir(parents=True, exist_ok=True)
    lock = open(home / "stack.lock", "a+")  # noqa: SIM115 -- held open for the stack's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise StartFailed(
            f"a stack already runs from {home}: {describe(holder)}; stop it with Ctrl-C in its terminal,"
            f" or: kill {holder}"
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def stop_leftovers(pid_file: Path) -> list[str] | None:
    """Stop the processes that a stack which did not stop cleanly left running,
    and name them; None when the last stack here stopped cleanly."""
    if not pid_file.exists():
        return None
    left = recorded(pid_file)
    for _, process in left:
        process.terminate()
        process.resume()  # a frozen process acts on SIGTERM only once it runs
    _, stubborn = psutil.wait_procs([process for _, process in left], timeout=LEFTOVER_GRACE)
    for process in stubborn:
        process.kill()
    psutil.wait_procs(stubborn, timeout=LEFTOVER_GRACE)
    pid_file.unlink()
    return [f"{name} (pid {process.pid})" for name, process in left]


def recorded(pid_file: Path) -> list[tuple[str, psutil.Process]]:
    """The processes named in a supervisor's pid file that still run (the same
    processes: a pid the system gave to another process since does not count, nor
    a zombie, which holds nothing and is for its new parent to reap)."""
    try:
        entries = json.loads(pid_file.read_text() or "{}")
    except FileNotFoundError:
        return []
    found = []
    for name, (pid, started) in entries.items():
        try:
            process = psutil.Process(pid)
            if round(process.create_time(), 2) == round(started, 2) and process.status() != psutil.STATUS_ZOMBIE:
                found.append((name, process))
        except psutil.Error:
            pass
    return found


def check_ports(ports: dict[int, str], hint: str) -> None:
    """Refuse to start when one of `ports` (port: what uses it) is taken."""
    for port, what in ports.items():
        if not _free(port):
            raise StartFailed(f"port {port} ({what}) is taken by {_holder(port)}, or {hint}")


def describe(pid: int | str) -> str:
    """`pid 123 (python -m devstack run)`, as far as this user may see it."""
    try:
        words = psutil.Process(int(pid)).cmdline() or ["?"]
    except (psutil.Error, ValueError):
        return f"pid {pid}"
    if len(" ".join(words)) > 100:  # java's long options: its name and what it runs tell enough
        words = [words[0], "...", *words[-2:]]
    return f"pid {pid} ({' '.join(words)})"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka and waitress bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _holder(port: int) -> str:
    """Who listens on `port` and how to stop it: the stack it belongs to when it
    is one of ours (its supervisor's pid is in its environment)."""
    pids = {
        conn.pid
        for conn in psutil.net_connections("tcp")
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid
    }
    if not pids:
        return "a process this user cannot see (`sudo ss -ltnp sport = :PORT` names it); free the port".replace(
            "PORT", str(port)
        )
    pid = min(pids)
    try:
        supervisor = int(psutil.Process(pid).environ().get("DEVSTACK_SUPERVISOR", 0))
    except (psutil.Error, ValueError):
        supervisor = 0
    if supervisor and psutil.pid_exists(supervisor):
        return (
            f"{describe(pid)} of the stack run by {describe(supervisor)}; stop that stack with Ctrl-C in its"
            f" terminal, or: kill {supervisor}"
        )
    if supervisor:
        return f"{describe(pid)}, left by a stack that was killed; stop it: kill {pid}"
    return f"{describe(pid)}; stop it: kill {pid}"
