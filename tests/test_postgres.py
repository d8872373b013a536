"""The stack's PostgreSQL server: it starts from the machine's binaries, holds
one database per service, stops fast, and leaves no process behind, whatever
ended the one that started it. Real servers on 127.0.0.1; no broker."""

import os
import select
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
import pytest

from devstack.hosts import Network
from devstack.postgres import DATABASES, binaries
from devstack.stack import Stack, StackConfig
from eventbus import outbox
from eventbus.settings import Env, SettingError
from eventbus.store import StoreUnavailable
from eventbus.store.postgres import PostgresStore

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


def test_a_clone_in_a_folder_only_root_may_enter_still_gets_its_server(tmp_path, running_postgres):
    """pytest's tmp_path is root's alone (0700), like a root's home or `mktemp -d`:
    as root the server's user cannot enter it, so the cluster lives where it can,
    linked from the folder asked for, and a fresh start empties it there."""
    tmp_path.chmod(0o700)
    home = tmp_path / "postgres"
    with running_postgres(home) as (server, _):
        with psycopg.connect(server.url()) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    if os.geteuid() == 0:
        assert home.is_symlink() and home.resolve() == server.home
        stack = Stack(StackConfig(home=tmp_path))
        stack._wipe()
        assert not home.exists() and not server.home.exists()


@pytest.fixture
def network():
    """A bridge of this test's own, for hosts in their own network namespaces."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    network = Network(os.getpid() % 256)
    network.create()
    yield network
    network.remove()


LOCK_AND_WAIT = """
import sys, psycopg
connection = psycopg.connect(sys.argv[1], autocommit=True)
connection.execute("SELECT pg_advisory_lock(42)")
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def client_on_a_host_of_its_own(network, postgres_home, running_postgres, script: str):
    """A PostgreSQL server on the machine and a Python client running `script`
    (given the server's URL) on host 2 of `network`, talking through pipes;
    yields (server, client host, client), and removes them all whatever happens."""
    client_host = network.host("client", 2)
    client_host.create()
    options = {"listen": f"127.0.0.1,{network.machine}", "clients": f"{client_host.address}/32"}
    try:
        with running_postgres(postgres_home, **options) as (server, _):
            url = f"postgresql://postgres@{network.machine}:{server.port}/postgres"
            command = client_host.command([sys.executable, "-c", script, url])
            client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            try:
                yield server, client_host, client
            finally:
                client.kill()
                client.wait()
    finally:
        client_host.remove()


def test_the_server_ends_the_session_of_a_client_whose_host_vanished(network, postgres_home, running_postgres):
    """A client on a host of its own takes an advisory lock, then its host's
    cable is pulled: the server must end that session, and free the lock, in
    seconds. Without its keepalive settings it would wait two hours."""
    with client_on_a_host_of_its_own(network, postgres_home, running_postgres, LOCK_AND_WAIT) as (
        server,
        client_host,
        client,
    ):
        assert client.stdout.readline() == "locked\n"
        with psycopg.connect(server.url(), autocommit=True) as connection:
            assert connection.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (False,)
            client_host.cut()
            cut_at = time.monotonic()
            while not connection.execute("SELECT pg_try_advisory_lock(42)").fetchone()[0]:
                assert time.monotonic() - cut_at < 30, "the vanished client's session still holds its lock"
                time.sleep(0.2)  # polling the lock, not waiting for it
            freed_after = time.monotonic() - cut_at
    assert freed_after < 20


def test_replicas_creating_the_same_tables_at_once_do_not_collide(postgres_database):
    """CREATE TABLE IF NOT EXISTS (and CREATE INDEX IF NOT EXISTS) is not safe run
    concurrently: two sessions both find no table and one fails on the catalog's
    unique key. Replicas starting together each create every table."""
    stores = [PostgresStore(postgres_database, "test") for _ in range(6)]
    try:
        failures = [error for name in ("raced_1", "raced_2", "raced_3") for error in _create_at_once(stores, name)]
    finally:
        for store in stores:
            store.close()
    assert not failures


def _create_at_once(stores: list, name: str) -> list[Exception]:
    """Each store creates table `name` and the outbox in a thread of its own, all let go at once."""
    start, failures = threading.Barrier(len(stores)), []

    def create(store) -> None:
        start.wait()
        try:
            store.create_table(name, {"id": "id", "note": str}, pk="id")
            outbox.create(store)
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


QUERY_AFTER_CUT = """
import sys, time, psycopg
from eventbus.store.postgres import CONNECTION
connection = psycopg.connect(sys.argv[1], **CONNECTION)
print("connected", flush=True)
sys.stdin.readline()
began = time.monotonic()
try:
    connection.execute("SELECT 1")
    print("answered", flush=True)
except psycopg.OperationalError:
    print(f"gave up after {time.monotonic() - began:.1f}", flush=True)
"""


def test_a_query_on_a_link_gone_dead_is_given_up_within_seconds(network, postgres_home, running_postgres):
    """A replica cut off from the database alone: its next query gets no
    acknowledgement, which keepalives (idle sockets only) never notice; the
    kernel would retransmit it for a quarter of an hour. tcp_user_timeout
    gives up after 5 s, so the consumer can let its partitions go."""
    with client_on_a_host_of_its_own(network, postgres_home, running_postgres, QUERY_AFTER_CUT) as (
        _,
        client_host,
        client,
    ):
        assert client.stdout.readline() == "connected\n"
        client_host.cut()
        client.stdin.write("go\n")
        client.stdin.flush()
        answered, _, _ = select.select([client.stdout], [], [], 30)
        said = client.stdout.readline() if answered else "no answer within 30 s"
    assert said.startswith("gave up after ")
    assert float(said.split()[-1]) < 9


def test_a_statement_on_a_lost_connection_says_the_store_is_unavailable(postgres_database):
    """Inside a transaction, at once: a consumer then retries its whole batch later, not one message."""
    store = PostgresStore(postgres_database, "test")
    try:
        with pytest.raises(StoreUnavailable), store.transaction() as tx:
            pid = tx.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
            with psycopg.connect(postgres_database, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
            tx.execute("SELECT 1")
    finally:
        store.close()
