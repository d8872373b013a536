"""SQLite through sqlite-utils: one file per service, one connection per thread,
WAL so readers never block the writer, and explicit write transactions."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

BUSY_TIMEOUT_MS = 10_000


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.db().enable_wal()

    def db(self) -> Database:
        """This thread's connection (SQLite connections must stay on their thread)."""
        if not hasattr(self._local, "db"):
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
            db = Database(connection)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return self._local.db

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction that holds the write lock from its first statement,
        so concurrent writers wait instead of failing mid-way. Threads of this
        process queue on a lock first: SQLite's own busy wait polls and is unfair."""
        db = self.db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.commit()
