"""The processed-events ledger: a handler runs at most once per idempotency key.

The key is recorded in the same transaction as the handler's effects and its
outgoing events, so a redelivered or replayed event finds it and is skipped.
On PostgreSQL the insert of a key another host is recording waits for that
transaction, then finds the key: the check holds across hosts.
"""

from eventbus.contracts import timestamp
from eventbus.store import Store, Transaction


def create(store: Store) -> None:
    store.create_table(
        "processed", {"handler": str, "key": str, "event_id": str, "processed_at": str}, pk=("handler", "key")
    )


def first_time(tx: Transaction, handler: str, key: str, event_id: str) -> bool:
    """Record (handler, key); False when it was already there. Call inside a transaction."""
    cursor = tx.execute(
        "INSERT INTO processed (handler, key, event_id, processed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (handler, key, event_id, timestamp()),
    )
    return cursor.rowcount == 1


def count(store: Store | Transaction, handler: str) -> int:
    return store.query("SELECT COUNT(*) AS n FROM processed WHERE handler = ?", [handler])[0]["n"]
