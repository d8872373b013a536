"""The order page's read model (how far along its chain and its saga each
order is) rebuilt from orders.events, from its start, while the stack runs.

    python -m services.orders.rebuild     (make rebuild; under Compose:
    docker compose exec orders python -m services.orders.rebuild)

It reads the topic outside any consumer group into a fresh read model of its
own, a SQLite file in a temporary folder, with the very functions orders
follows the chain with (services.orders.read_model.FOLLOWED). Once it has read
to the end, it switches, in one transaction on orders' store that holds off
orders' own consumer: it reads what arrived meanwhile, compares, and puts the
rebuilt rows in place of those that differ. Orders' consumer then goes on
from where it was: an event it sees again changes nothing, since the first
step seen wins. The topic keeps every record for this (see devstack/kafka.py).
"""

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message

from eventbus import tracing
from eventbus.consumer import sent_back_to_another
from eventbus.envelope import PoisonMessage, open_message
from eventbus.kafka import Partition, ends, make_reader, read_until
from eventbus.outbox import Fence
from eventbus.settings import Settings, checked
from eventbus.store import Store, StoreUnavailable, Transaction, open_store
from eventbus.store.sqlite import SqliteStore
from services.orders.read_model import FOLLOWED, READ_MODEL, create_read_model

PROGRESS_EVERY_S = 2.0
SHOWN_DIFFERENCES = 5


def follow(tx: Transaction, record: Message, fence: Fence) -> None:
    """What orders' consumer does with `record` for the read model: the same
    records skipped (see eventbus.consumer), inside the same trace."""
    headers = dict(record.headers() or [])
    if sent_back_to_another(headers, "orders") or fence.stale((record.topic(), record.partition()), headers):
        return
    try:
        envelope = open_message(headers, record.key(), record.value() or b"")
    except PoisonMessage:
        return  # orders set it aside: it is in no read model
    step = envelope and FOLLOWED.get(type(envelope.event))
    if step:
        with tracing.arriving(headers):
            step(envelope.event, tx)


def rows(store: Store | Transaction, table: str) -> dict[int, dict]:
    return {row["orderId"]: row for row in store.query(f'SELECT * FROM "{table}"')}


def differences(live: dict[int, dict], rebuilt: dict[int, dict]) -> list[int]:
    """The orders whose rows differ, missing ones included."""
    return sorted(order for order in live.keys() | rebuilt.keys() if live.get(order) != rebuilt.get(order))


def put_in_place(tx: Transaction, table: str, rebuilt: dict[int, dict], orders: list[int]) -> None:
    columns = list(READ_MODEL[table])
    names, marks = ", ".join(f'"{name}"' for name in columns), ", ".join("?" * len(columns))
    for order in orders:
        tx.execute(f'DELETE FROM "{table}" WHERE "orderId" = ?', [order])
        if order in rebuilt:
            tx.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', [rebuilt[order][c] for c in columns])


class Rebuild:
    def __init__(self, settings: Settings, say: Callable[[str], None]):
        self.settings = settings
        self.say = say
        self.read = 0
        self._said_at = time.monotonic()
        self._fence = Fence()

    def run(self, scratch: Path) -> int:
        """Rebuild into a store in `scratch`, then switch; returns how many orders differed."""
        fresh = SqliteStore(scratch / "read-model.db")
        create_read_model(fresh)
        live = open_store(self.settings)
        consumer = make_reader(self.settings, self.settings.topic)
        try:
            first = ends(consumer)
            topic = self.settings.topic
            self.say(f"rebuild: reading {topic} from its start ({len(first)} partitions) into a fresh read model")
            self._catch_up(consumer, fresh, first)
            self._catch_up(consumer, fresh, ends(consumer))  # what came meanwhile, before holding anything up
            return self._switch(consumer, fresh, live)
        finally:
            consumer.close()
            live.close()
            fresh.close()

    def _catch_up(self, consumer: Consumer, fresh: Store, until: dict[Partition, int]) -> None:
        with fresh.transaction() as tx:
            read_until(consumer, until, lambda record: self._follow(tx, record))

    def _follow(self, tx: Transaction, record: Message) -> None:
        follow(tx, record, self._fence)
        self.read += 1
        if time.monotonic() - self._said_at >= PROGRESS_EVERY_S:
            self._said_at = time.monotonic()
            self.say(f"rebuild: {self.read} records read")

    def _switch(self, consumer: Consumer, fresh: Store, live: Store) -> int:
        began = time.monotonic()
        with live.transaction() as tx:
            tx.hold(*READ_MODEL)  # orders' consumer waits from here to the commit
            self._catch_up(consumer, fresh, ends(consumer))
            differed = 0
            for table in READ_MODEL:
                rebuilt, current = rows(fresh, table), rows(tx, table)
                orders = differences(current, rebuilt)
                put_in_place(tx, table, rebuilt, orders)
                differed += len(orders)
                self._report(table, current, rebuilt, orders)
        self.say(
            f"rebuild: switched in {(time.monotonic() - began) * 1000:.0f} ms, after {self.read} records;"
            f" the page shows the rebuilt read model"
        )
        return differed

    def _report(self, table: str, live: dict[int, dict], rebuilt: dict[int, dict], orders: list[int]) -> None:
        if not orders:
            self.say(f"rebuild: {table}: the rebuilt rows equal the live ones ({_orders(len(rebuilt))})")
            return
        shown = [f"order {order}: live {live.get(order)}, rebuilt {rebuilt.get(order)}" for order in orders]
        more = len(orders) - SHOWN_DIFFERENCES
        self.say(
            f"rebuild: {table}: {len(orders)} of {_orders(len(rebuilt))} differed from the live rows, now replaced: "
            + "; ".join(shown[:SHOWN_DIFFERENCES])
            + f"; and {more} more" * (more > 0)
        )


def _orders(count: int) -> str:
    return f"{count} order{'s' * (count != 1)}"


def rebuild(settings: Settings, say: Callable[[str], None] = print) -> int:
    """Rebuild orders' read model; returns how many orders' rows differed (and were replaced)."""
    with tempfile.TemporaryDirectory(prefix="orders-rebuild-") as scratch:
        return Rebuild(settings, say).run(Path(scratch))


def main() -> int:
    settings = checked(lambda env: Settings.from_env("orders", env))
    try:
        rebuild(settings, lambda text: print(text, flush=True))
    except (KafkaException, StoreUnavailable) as error:
        print(f"rebuild: {error}; the live read model is as it was", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
