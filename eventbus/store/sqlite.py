"""The SQLite adapter, through sqlite-utils: one file per service on this
host, one connection per thread, WAL so readers never block the writer, and
explicit write transactions.

Checkpoints (copying the WAL back into the database file, with an fsync) run
in a thread of their own once a second, not inside whichever commit happens to
cross SQLite's 1,000-page threshold: that commit was an HTTP request's or a
consumer batch's, and the checkpoint landed on its latency."""

import logging
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventbus.store.port import Row, column_sql

# sqlite-utils imports numpy whenever it is installed, to insert numpy values,
# which no service does: 18 MB of every service on SQLite, in a venv that has
# numpy for the bench's picture (the images do not). Hidden while it loads,
# importable again after; a process that loaded numpy first keeps it.
_HIDDEN = sys.modules.setdefault("numpy", None) is None
from sqlite_utils import Database  # noqa: E402

if _HIDDEN:
    del sys.modules["numpy"]

BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_EVERY_S = 1.0
WAL_LIMIT_BYTES = 4 * 1024 * 1024  # the WAL file is cut back to this after a checkpoint, emptied past it
EMPTYING_WAIT_MS = 200  # how long writers are held back for readers to let the WAL be emptied
LEASE_SECONDS = 5.0
TYPES = {int: "INTEGER", str: "TEXT", bytes: "BLOB", float: "REAL", "id": "INTEGER PRIMARY KEY"}
log = logging.getLogger(__name__)


class FairLock:
    """A lock taken in the order it was asked for. A plain threading.Lock lets
    the thread that lets go take it again at once: orders' consumer, taking
    batch after batch from one fetch, kept a POST waiting for several of its
    transactions (11 ms), not for one. Here letting go hands it to the longest
    waiter."""

    def __init__(self):
        self._guard = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder that hands it over

    def __exit__(self, *exc) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()  # held still, by the next in line
            else:
                self._held = False


class SqliteTransaction:
    """The port's transaction over this thread's connection."""

    def __init__(self, db: Database):
        self.db = db

    def execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def query(self, sql: str, params: tuple | list = ()) -> list[Row]:
        return list(self.db.query(sql, params))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    def notify(self, channel: str) -> None:
        """Nothing to do: the processes sharing a SQLite file poll it."""

    def hold(self, *tables: str) -> None:
        """Nothing to do: a write transaction holds the whole file already (BEGIN IMMEDIATE)."""


class SqliteStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = FairLock()
        self._writes = 0
        self.db().enable_wal()
        checkpoints = threading.Thread(
            target=_checkpoint_while_alive, args=(weakref.ref(self),), name="sqlite-checkpoint", daemon=True
        )
        checkpoints.start()

    def db(self) -> Database:
        """This thread's connection (SQLite connections must stay on their thread)."""
        if not hasattr(self._local, "db"):
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
            db = Database(connection)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            self._local.db = db
        return self._local.db

    @contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        """A write transaction that holds the write lock from its first statement,
        so concurrent writers wait instead of failing mid-way. Threads of this
        process queue on a FairLock first: SQLite's own busy wait polls and is unfair."""
        db = self.db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTransaction(db)
            except BaseException:
                db.rollback()
                raise
            db.commit()
            self._writes += 1

    def query(self, sql: str, params: tuple | list = ()) -> list[Row]:
        return list(self.db().query(sql, params))

    def create_table(self, name: str, columns: dict[str, Any], pk: str | tuple[str, ...]) -> None:
        with self.transaction() as tx:
            tx.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({column_sql(columns, TYPES, pk)})')
            present = {row["name"] for row in tx.query(f'PRAGMA table_info("{name}")')}
            for column, kind in columns.items():
                if column not in present:
                    tx.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}" {TYPES[kind]}')

    def claim(self, name: str) -> "Lease":
        return Lease(self, name)

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Nothing to listen to: writers in this process wake their relay directly,
        and another process's rows are found by the relay's polling."""

    def close(self) -> None:
        self.db().close()

    def checkpoint(self) -> None:
        """Fold the WAL into the database file, without waiting for readers or
        writers. Writers that never pause starve that passive checkpoint: the WAL
        only starts over once one caught up with the last write before the next
        began, so at 100 orders/s orders' WAL grew by 2.5 MB a second, to 650 MB.
        Once it outgrows WAL_LIMIT_BYTES, this process's writers wait for one
        checkpoint that empties it; the passive one before it did most of the
        copying and syncing, so they wait for little."""
        db = self.db()
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        wal = self.path.with_name(self.path.name + "-wal")
        if not wal.exists() or wal.stat().st_size <= WAL_LIMIT_BYTES:
            return
        with self._write_lock:
            db.execute(f"PRAGMA busy_timeout = {EMPTYING_WAIT_MS}")  # a reader that stays gets the next try
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _checkpoint_while_alive(store_ref: weakref.ref) -> None:
    """Checkpoint every CHECKPOINT_EVERY_S after writes; ends with its Store."""
    done = 0
    while True:
        time.sleep(CHECKPOINT_EVERY_S)
        store = store_ref()
        if store is None:
            return
        if store._writes != done:
            done = store._writes
            try:
                store.checkpoint()
            except sqlite3.Error as error:
                log.warning("SQLite checkpoint of %s failed (%s); the next one catches up", store.path, error)
        del store


class Lease:
    """The claim of a SQLite store: a row with the holder, an expiry time and
    the epoch. A SQLite file is shared only by the processes of one host, which
    read one clock, so comparing times is safe here (it would not be across
    hosts). A holder that dies or pauses loses the claim when its lease runs
    out. Letting go keeps the row, and with it the epoch."""

    def __init__(self, store: SqliteStore, name: str):
        self._store = store
        self._name = name
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._until = 0.0
        self.epoch = 0
        store.create_table("leases", {"name": str, "holder": str, "until": float, "epoch": int}, pk="name")

    def held(self) -> bool:
        """A lease still good for more than half its time is not renewed yet."""
        now = time.time()
        if now < self._until - LEASE_SECONDS / 2:
            return True
        with self._store.transaction() as tx:
            taken = tx.execute(
                "INSERT INTO leases (name, holder, until, epoch) VALUES (?, ?, ?, 1)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until,"
                " epoch = CASE WHEN leases.holder = excluded.holder AND leases.until >= ? THEN leases.epoch"
                " ELSE COALESCE(leases.epoch, 0) + 1 END"
                " WHERE leases.holder = excluded.holder OR leases.until < ?",
                (self._name, self._holder, now + LEASE_SECONDS, now, now),
            ).rowcount
            if taken == 1:
                self.epoch = tx.query("SELECT epoch FROM leases WHERE name = ?", [self._name])[0]["epoch"]
        self._until = now + LEASE_SECONDS if taken == 1 else 0.0
        return taken == 1

    def still_held(self, tx: SqliteTransaction) -> bool:
        """A write transaction holds the whole file: no take runs beside it."""
        return bool(
            tx.query(
                "SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ?",
                [self._name, self._holder, self.epoch],
            )
        )

    def release(self) -> None:
        with self._store.transaction() as tx:
            tx.execute("UPDATE leases SET until = 0 WHERE name = ? AND holder = ?", [self._name, self._holder])
        self._until = 0.0
