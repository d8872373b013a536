"""The port every store adapter implements, and what they share."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class StoreUnavailable(Exception):
    """The database cannot be reached now. Nothing of the failed transaction
    was written; the caller retries later (or answers 503)."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> tuple | None: ...

    def fetchall(self) -> list[tuple]: ...


class Transaction(Protocol):
    """What a handler gets: statements inside one transaction of the service's store."""

    def execute(self, sql: str, params: tuple | list = ()) -> Cursor: ...

    def query(self, sql: str, params: tuple | list = ()) -> list[Row]:
        """The rows as dicts keyed by column name."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an error inside rolls back only what it did."""

    def notify(self, channel: str) -> None:
        """Tell listeners of `channel` in other processes once this transaction commits."""

    def hold(self, *tables: str) -> None:
        """No other transaction writes to `tables` until this one ends."""


class Claim(Protocol):
    """Who, among the processes sharing a store, does one job (publishing the outbox)."""

    epoch: int  # grows by one each time a holder takes the claim; 0 until this one has

    def held(self) -> bool:
        """Take or keep the claim; False while another live process holds it."""

    def still_held(self, tx: Transaction) -> bool:
        """Whether no one took the claim since this holder did, as `tx` sees it.
        Another's take waits for `tx` to end, so what `tx` writes is this
        holder's last word, or not written at all."""

    def release(self) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def query(self, sql: str, params: tuple | list = ()) -> list[Row]:
        """A read outside any write transaction."""

    def create_table(self, name: str, columns: dict[str, Any], pk: str | tuple[str, ...]) -> None:
        """CREATE TABLE IF NOT EXISTS, adding the columns a table from an older
        version lacks. Column types are given as int, str, bytes or float, or
        "id": an integer primary key the database assigns."""

    def claim(self, name: str) -> Claim: ...

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Call `callback` whenever another process commits a notify on `channel`."""

    def close(self) -> None: ...


def column_sql(columns: dict[str, Any], types: dict[Any, str], pk: str | tuple[str, ...]) -> str:
    """The column list of a CREATE TABLE, with the adapter's names for the types."""
    keys = (pk,) if isinstance(pk, str) else pk
    lines = [f'"{name}" {types[kind]}' for name, kind in columns.items()]
    if not (len(keys) == 1 and columns[keys[0]] == "id"):
        lines.append("PRIMARY KEY ({})".format(", ".join(f'"{key}"' for key in keys)))
    return ", ".join(lines)


def rows(cursor) -> Iterator[Row]:
    names = [column[0] for column in cursor.description]
    return (dict(zip(names, values, strict=True)) for values in cursor)
