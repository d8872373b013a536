"""The stack's PostgreSQL server: it starts from the machine's binaries, holds
one database per service, stops fast, and leaves no process behind, whatever
ended the one that started it. Real servers on 127.0.0.1; no broker."""

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import psycopg
import pytest

from devstack.postgres import DATABASES, binaries
from devstack.stack import Stack, StackConfig
from eventbus.settings import Env, SettingError

ROOT = Path(__file__).resolve().parent.parent


def server_processes(data: Path) -> list[psutil.Process]:
    """The postmaster serving `data` (its backends die with it)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        words = process.info["cmdline"] or []
        if "-D" in words and Path(words[words.index("-D") + 1]).absolute() == data.absolute():
            found.append(process)
    return found


def test_the_server_creates_one_database_per_service_once_and_stops_leaving_nothing(running_postgres, postgres_home):
    with running_postgres(postgres_home) as (server, process):
        assert server.create_databases() == list(DATABASES)
        assert server.create_databases() == []
        for database in DATABASES:
            with psycopg.connect(server.url(database)) as connection:
                assert connection.execute("SELECT current_database()").fetchone() == (database,)
        assert [p.pid for p in server_processes(server.data)] == [process.pid]
    assert process.returncode == 0  # a fast shutdown, not a kill
    assert server_processes(server.data) == []


def test_the_server_listens_on_loopback_and_its_own_socket_only(postgres_server):
    with psycopg.connect(postgres_server.url()) as connection:
        (addresses,) = connection.execute("SHOW listen_addresses").fetchone()
        (sockets,) = connection.execute("SHOW unix_socket_directories").fetchone()
    assert addresses == "127.0.0.1"
    assert Path(sockets) == postgres_server.sockets.absolute()
    assert (postgres_server.sockets / f".s.PGSQL.{postgres_server.port}").exists()


def test_a_fresh_database_per_test_is_empty(postgres_database):
    with psycopg.connect(postgres_database) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_the_server_stops_when_whoever_started_it_is_killed(postgres_home):
    """As root the server changes user, which clears the parent-death signal: it must be kept."""
    program = textwrap.dedent(
        f"""
        import functools, signal, socket, subprocess, threading, time
        from pathlib import Path
        from devstack.postgres import Server
        from devstack.supervisor import die_with_parent
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = Server(Path({str(postgres_home)!r}), port, durable=False)
        server.prepare()
        process = subprocess.Popen(
            server.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=functools.partial(die_with_parent, signal.SIGINT),
        )
        server.wait_ready(threading.Event())
        print(process.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    postmaster = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    gone, alive = psutil.wait_procs([postmaster], timeout=10)
    assert not alive


def test_a_server_on_path_is_used_as_it_is(tmp_path, monkeypatch):
    for name in ("postgres", "initdb"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert binaries() == tmp_path


def test_the_stack_hands_each_service_its_own_database():
    stack = Stack(StackConfig(store="postgres", postgres_port=15999, replicas=2))
    urls = {name: stack.service_env(service, name)["DATABASE_URL"] for service, name in stack.processes()}
    assert urls == {
        "orders": "postgresql://postgres@127.0.0.1:15999/orders",
        "billing-1": "postgresql://postgres@127.0.0.1:15999/billing",
        "billing-2": "postgresql://postgres@127.0.0.1:15999/billing",
        "notifications-1": "postgresql://postgres@127.0.0.1:15999/notifications",
        "notifications-2": "postgresql://postgres@127.0.0.1:15999/notifications",
    }
    assert "DATABASE_URL" not in Stack(StackConfig()).service_env("orders", "orders")


def test_postgres_needs_a_port_of_its_own():
    with pytest.raises(SettingError, match="POSTGRES_PORT must be a port of its own, got '5002'"):
        StackConfig.from_env(Env({"STORE": "postgres", "POSTGRES_PORT": "5002"}))
