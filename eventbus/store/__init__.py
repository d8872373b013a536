"""The store port: one transaction API over two adapters, so the consumer
loop, the ledger, the outbox, the relay and the services' handlers have one
code path whether state lives in a SQLite file of this host (`sqlite`, the
default) or in a PostgreSQL database any number of hosts share (`postgres`,
when DATABASE_URL names one).

Statements are written once, in the SQL both databases agree on: `?`
placeholders, double-quoted mixed-case names ("orderId"), ON CONFLICT clauses,
timestamps passed in from Python. The adapters differ only where the
databases do: connecting, column types, and how one relay at a time is chosen.
"""

from eventbus.settings import Settings
from eventbus.store.port import Claim, Row, Store, StoreUnavailable, Transaction

__all__ = ["Claim", "Row", "Store", "StoreUnavailable", "Transaction", "open_store"]


def open_store(settings: Settings, name: str | None = None) -> Store:
    """The service's store: the PostgreSQL database of DATABASE_URL when set,
    else the SQLite file of the data folder (`name` picks another file of the
    service, the mailer's mailbox; on PostgreSQL every table is in one database).

    Only the adapter chosen is imported: each driver costs a process 10-15 MB
    of memory that the other store never uses."""
    if settings.database_url:
        from eventbus.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, settings.service)
    from eventbus.store.sqlite import SqliteStore

    return SqliteStore(settings.database(name))
