"""A PostgreSQL server of the stack's own: the binaries this machine has (or
Debian's `postgresql` package, installed when it has none), one cluster in a
folder, listening on one address (127.0.0.1 unless told) and a socket folder
of its own, one database per service. `initdb` and `postgres` refuse to run as root: as root they run
as the `postgres` user, on folders it owns."""

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from devstack import StartFailed
from devstack.supervisor import die_with_parent

DATABASES = ("orders", "billing", "notifications")  # one per service
SUPERUSER = "postgres"  # the role initdb creates; as root, also the system user that runs the server
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
CREATECLUSTER = Path("/etc/postgresql-common/createcluster.conf")
# A client that vanished (its host cut off, frozen, powered down) keeps its
# session, and any advisory lock the session holds, until the server notices.
# PostgreSQL leaves that to the system's TCP keepalive, two hours by default.
# With these the server ends such a session within about 10 s: an idle
# connection is probed after 5 s, every 2 s, and given up after 3 unanswered
# probes; data the client does not acknowledge is given up after 10 s; a
# running query looks at its client every 2 s.
VANISHED_CLIENTS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # ms
    "client_connection_check_interval": "2000",  # ms
}


def binaries(say: Callable[[str], None] = print) -> Path:
    """The folder holding `initdb` and `postgres`: beside a `postgres` on PATH,
    `pg_config --bindir`, or Debian's newest; Debian's package is installed
    when none is found."""
    found = _find_binaries()
    if found is None:
        say("postgres: no PostgreSQL server found; installing Debian's postgresql package")
        _install()
        found = _find_binaries()
    if found is None:
        raise StartFailed(f"installed Debian's postgresql, but found no server in {DEBIAN_BINARIES}/*/bin")
    return found


def _find_binaries() -> Path | None:
    candidates = []
    if on_path := shutil.which("postgres"):
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
    if pg_config := shutil.which("pg_config"):
        told = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if told.returncode == 0:
            candidates.append(Path(told.stdout.strip()))
    candidates += sorted(DEBIAN_BINARIES.glob("*/bin"), key=lambda folder: _major(folder.parent.name), reverse=True)
    return next(
        (folder for folder in candidates if (folder / "initdb").exists() and (folder / "postgres").exists()), None
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def _install() -> None:
    """Debian's package, binaries only: with `create_main_cluster = false` set
    before the server package is installed, no system cluster is created or
    started (the official postgres image does the same)."""
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        raise StartFailed(
            "no PostgreSQL server found (no postgres on PATH, no pg_config): install PostgreSQL"
            " and put its bin folder on PATH"
        )
    if os.geteuid() != 0:
        raise StartFailed(
            "no PostgreSQL server found: install Debian's (sudo apt-get install postgresql), it is found by itself"
        )
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    environ = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], "apt-get update", env=environ)
    _run([*install, "postgresql-common"], "installing Debian's postgresql-common", env=environ)
    conf = CREATECLUSTER.read_text() if CREATECLUSTER.exists() else ""
    CREATECLUSTER.write_text(
        re.sub(r"(?m)^#?\s*create_main_cluster\b.*\n?", "", conf) + "create_main_cluster = false\n"
    )
    _run([*install, "postgresql"], "installing Debian's postgresql", env=environ)


def _run(command: list[str], what: str, **options) -> str:
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=die_with_parent, **options)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise StartFailed(f"{what} failed (exit code {done.returncode}): " + " / ".join(output[-5:]))
    return done.stdout


class Server:
    """One cluster in `home` (data/ and socket/), served on `listen`:`port`.
    Not `durable`, it skips fsync: for throw-away test servers only."""

    def __init__(
        self, home: Path, port: int = 5432, durable: bool = True, listen: str = "127.0.0.1", clients: str | None = None
    ):
        """`listen`: the addresses to serve on, separated by commas; `clients`: a network (CIDR) let in
        besides loopback, such as the fault tests' hosts of their own."""
        self.home = home
        self.port = port
        self.durable = durable
        self.listen = listen
        self.clients = clients
        self.bindir: Path | None = None  # found by prepare()

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def sockets(self) -> Path:
        return self.home / "socket"

    def url(self, database: str = "postgres") -> str:
        """On the first address it listens on."""
        return f"postgresql://{SUPERUSER}@{self.listen.split(',')[0]}:{self.port}/{database}"

    def prepare(self, say: Callable[[str], None] = print) -> str:
        """Find (or install) the binaries and create the cluster on first start;
        returns the server's version, as `postgres --version` words it."""
        self.bindir = binaries(say)
        owner = _owner()
        if owner is not None and not _reachable(self.home, owner):
            self.home = _linked_from(self.home, owner)
        self.sockets.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)  # what a killed initdb left
            self.data.mkdir(mode=0o700)
            if owner is not None:
                os.chown(self.data, owner.pw_uid, owner.pw_gid)
            _run(
                [
                    *self._as_owner(owner),
                    str(self.bindir / "initdb"),
                    f"--pgdata={self.data}",
                    f"--username={SUPERUSER}",
                    "--auth=trust",  # pg_hba.conf then lets in loopback and the socket only
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
            )
        if owner is not None:
            os.chown(self.sockets, owner.pw_uid, owner.pw_gid)
        hba = self.data / "pg_hba.conf"
        if self.clients and self.clients not in hba.read_text():
            with hba.open("a") as rules:
                rules.write(f"host all all {self.clients} trust\n")
        version = _run([str(self.bindir / "postgres"), "--version"], "postgres --version")
        return version.strip().removeprefix("postgres (PostgreSQL) ")

    def command(self) -> list[str]:
        """The server in the foreground; SIGINT stops it fast (SIGTERM would wait for clients)."""
        return [
            *self._as_owner(_owner()),
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.listen}",
            "-c",
            f"unix_socket_directories={self.sockets.absolute()}",
            *[option for name, value in VANISHED_CLIENTS.items() for option in ("-c", f"{name}={value}")],
            *([] if self.durable else ["-c", "fsync=off"]),
        ]

    @staticmethod
    def _as_owner(owner: pwd.struct_passwd | None) -> list[str]:
        """As root, switch to `owner` keeping the parent-death signal (which the
        kernel clears when a process changes user): it still dies with its supervisor."""
        if owner is None:
            return []
        return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--pdeathsig=keep"]

    def wait_ready(self, stopping: threading.Event, timeout: float = 60) -> bool:
        """Poll until the server takes a connection; False if `stopping` is set first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"PostgreSQL on {self.listen}:{self.port} did not answer within {timeout:.0f}s"
                    ) from None
                if stopping.wait(0.1):
                    return False

    def create_databases(self, names: tuple[str, ...] = DATABASES) -> list[str]:
        """Create each database unless it exists; the created ones."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            existing = {name for (name,) in connection.execute("SELECT datname FROM pg_database")}
            created = [name for name in names if name not in existing]
            for name in created:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return created


def _owner() -> pwd.struct_passwd | None:
    """Who runs initdb and the server as root: the `postgres` user; None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise StartFailed(
            f"initdb and postgres refuse to run as root and there is no {SUPERUSER} user to run them:"
            f" create one (useradd --system {SUPERUSER}) or run as another user"
        ) from None


def _reachable(folder: Path, owner: pwd.struct_passwd) -> bool:
    """Whether `owner` may enter `folder` and every folder above it."""
    for parent in [folder.absolute(), *folder.absolute().parents]:
        if not parent.exists():
            continue
        found = parent.stat()
        if found.st_uid == owner.pw_uid:
            bit = stat.S_IXUSR
        elif found.st_gid == owner.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not found.st_mode & bit:
            return False
    return True


def _linked_from(home: Path, owner: pwd.struct_passwd) -> Path:
    """A folder for the cluster of `home` that `owner` can reach, and `home` made
    a link to it. As root, a clone may live where the server's user cannot enter
    (root's home, a `mktemp -d` folder: mode 0700); the cluster then lives in
    that user's home (Debian's: /var/lib/postgresql), one folder per `home`."""
    owners_home = Path(owner.pw_dir)
    base = owners_home if owners_home.is_dir() and _reachable(owners_home, owner) else Path("/var/tmp")
    digest = hashlib.sha256(str(home.absolute()).encode()).hexdigest()[:16]
    place = base / "event-driven" / digest  # short: a socket's path may not pass 107 bytes
    place.mkdir(parents=True, exist_ok=True)
    for folder in (place.parent, place):
        folder.chmod(0o755)  # mkdir's mode is masked by the umask
    if not home.is_symlink():
        shutil.rmtree(home, ignore_errors=True)
        home.parent.mkdir(parents=True, exist_ok=True)
        home.symlink_to(place, target_is_directory=True)
    return place
