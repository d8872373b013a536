"""The processed-events ledger: a handler runs at most once per idempotency key.

The key is recorded in the same transaction as the handler's effects and its
outgoing events, so a redelivered or replayed event finds it and is skipped.
"""

from sqlite_utils import Database


def create(db: Database) -> None:
    db["processed"].create(
        {"handler": str, "key": str, "event_id": str, "processed_at": str},
        pk=("handler", "key"),
        if_not_exists=True,
    )


def first_time(db: Database, handler: str, key: str, event_id: str) -> bool:
    """Record (handler, key); False when it was already there. Call inside a transaction."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO processed (handler, key, event_id, processed_at)"
        " VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        (handler, key, event_id),
    )
    return cursor.rowcount == 1


def count(db: Database, handler: str) -> int:
    return db["processed"].count_where("handler = ?", [handler])
