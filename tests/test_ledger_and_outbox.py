"""The processed-events ledger and the transactional outbox, on each store
adapter: both commit or roll back with the work they belong to. Then what is
particular to each adapter: SQLite's checkpoints, and who holds a claim."""

import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage
from confluent_kafka import KafkaException

from eventbus import ledger, outbox
from eventbus.contracts import timestamp
from eventbus.settings import Settings
from eventbus.store import open_store, sqlite
from tests.conftest import within


def first_time(store, handler="billing.charge", key="1") -> bool:
    with store.transaction() as tx:
        return ledger.first_time(tx, handler, key, "event-id")


def test_a_key_is_new_once_then_seen(store):
    assert first_time(store) is True
    assert first_time(store) is False
    assert ledger.count(store, "billing.charge") == 1


def test_keys_are_kept_apart_per_handler(store):
    assert first_time(store, handler="billing.charge") is True
    assert first_time(store, handler="notifications.send_email") is True
    assert first_time(store, handler="billing.charge", key="2") is True


def test_a_rolled_back_transaction_leaves_neither_key_nor_message(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        ledger.first_time(tx, "billing.charge", "1", "event-id")
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"{}"))
        raise RuntimeError("handler failed")
    assert ledger.count(store, "billing.charge") == 0
    assert outbox.pending(store) == 0
    assert first_time(store) is True


def test_added_messages_are_pending(store):
    with store.transaction() as tx:
        for key in (b"1", b"2"):
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=key, value=b"{}"))
    assert outbox.pending(store) == 2


@pytest.fixture
def relay(store, tmp_path, monkeypatch):
    """`relay(producer)`: a relay of the test's store that publishes through `producer`."""

    def make(producer) -> outbox.Relay:
        monkeypatch.setattr(outbox, "make_producer", lambda settings: producer)
        made = outbox.Relay(store, Settings(service="test", data_dir=tmp_path), threading.Event())
        assert made._holds_claim()
        return made

    return make


def test_headers_reach_kafka_byte_for_byte(store, relay, fake_producer):
    headers = {"ce_type": b"OrderCreated", "binary": bytes(range(256)), "empty": b""}
    with store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers=headers, key=b"1", value=b'{"orderId": 1}'))
    producer = fake_producer()
    assert relay(producer)._publish_batch() == 1
    [sent] = producer.sent
    added = dict(sent["headers"])
    assert added.pop("relay_epoch") == b"test:1"  # its relay's, which took the claim first
    assert added.pop("traceparent")  # the relay's span, which sent it
    assert sent | {"headers": list(added.items())} == {
        "topic": "orders.events",
        "key": b"1",
        "value": b'{"orderId": 1}',
        "headers": list(headers.items()),
    }
    assert outbox.pending(store) == 0


def test_a_batch_kafka_did_not_acknowledge_in_full_stays_pending_in_full(store, relay, fake_producer):
    """None is marked: the next round sends the batch again, and a copy that reached Kafka shares its ce_id."""
    with store.transaction() as tx:
        for key in (b"1", b"2"):
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=key, value=b"{}"))
    with pytest.raises(KafkaException, match="broker said no"):
        relay(fake_producer(failing=(b"2",)))._publish_batch()
    assert [row["key"] for row in store.query("SELECT key FROM outbox WHERE sent_at IS NULL")] == [b"1", b"2"]


def test_rows_sent_in_quick_rounds_go_out_once_and_are_marked_in_one_transaction(store, relay, fake_producer):
    def add(key: bytes) -> None:
        with store.transaction() as tx:
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=key, value=b"{}"))

    producer = fake_producer()
    quick = relay(producer)
    add(b"1")
    quick._publish_batch()  # the first round marks at once
    add(b"2")
    quick._publish_batch()
    add(b"3")
    quick._publish_batch()
    assert outbox.pending(store) == 2  # acknowledged, marked together soon
    assert quick._publish_batch(mark_now=True) == 0
    assert [message["key"] for message in producer.sent] == [b"1", b"2", b"3"]
    assert outbox.pending(store) == 0
    assert producer.flushes == 3


def test_while_rows_keep_coming_relay_rounds_start_at_most_every_hold_the_pacer_sets(
    store, relay, monkeypatch, fake_producer
):
    rounds = []

    class CountingProducer(fake_producer):
        def flush(self, timeout=None) -> int:
            rounds.append(time.monotonic())
            return super().flush(timeout)

    class HoldingPacer:
        def count(self, events: int) -> None:
            pass

        def hold(self) -> float:
            return 0.02

    producer = CountingProducer()
    monkeypatch.setattr(outbox, "Pacer", HoldingPacer)
    busy = relay(producer)
    busy.start()
    started = time.monotonic()
    for n in range(40):
        with store.transaction() as tx:
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=str(n).encode(), value=b"{}"))
        busy.wake()
        time.sleep(0.002)
    assert within(10.0, lambda: len(producer.sent) == 40)
    elapsed = time.monotonic() - started
    busy._stop.set()
    assert busy.join(5)
    assert len(rounds) <= elapsed / 0.02 + 2  # without the hold: a round per row


def test_sent_rows_older_than_the_retention_are_deleted_and_pending_ones_never(store):
    with store.transaction() as tx:
        for key, sent_at in ((b"old", "2020-01-01T00:00:00.000Z"), (b"new", None), (b"unsent", None)):
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=key, value=b"{}"))
            tx.execute("UPDATE outbox SET sent_at = ? WHERE key = ?", [sent_at, key])
        tx.execute("UPDATE outbox SET sent_at = ? WHERE key = ?", [timestamp(), b"new"])
        assert outbox.prune(tx, 3600) == 1
    assert [row["key"] for row in store.query("SELECT key FROM outbox ORDER BY id")] == [b"new", b"unsent"]


def test_commits_never_checkpoint_and_a_background_thread_does_it(sqlite_store):
    assert sqlite_store.db().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    size = sqlite_store.path.stat().st_size
    with sqlite_store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"x" * 20_000))
    assert within(5.0, lambda: sqlite_store.path.stat().st_size > size)


def test_a_wal_past_its_limit_is_emptied_even_while_writes_never_pause(sqlite_store, monkeypatch):
    monkeypatch.setattr(sqlite, "WAL_LIMIT_BYTES", 64 * 1024)
    wal = sqlite_store.path.with_name(sqlite_store.path.name + "-wal")
    for n in range(100):
        with sqlite_store.transaction() as tx:
            outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=str(n).encode(), value=b"x" * 2_000))
    assert wal.stat().st_size > 64 * 1024
    sqlite_store.checkpoint()
    assert wal.stat().st_size == 0
    assert outbox.pending(sqlite_store) == 100


def test_a_reader_that_stays_holds_writers_back_only_briefly(sqlite_store, monkeypatch):
    monkeypatch.setattr(sqlite, "WAL_LIMIT_BYTES", 0)
    with sqlite_store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"x"))
    reader = sqlite3.connect(sqlite_store.path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM outbox").fetchone()
    with sqlite_store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"2", value=b"x"))
    started = time.monotonic()
    sqlite_store.checkpoint()
    assert time.monotonic() - started < 2.0  # not the 10 s busy timeout writers use
    with sqlite_store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"3", value=b"x"))
    reader.close()


def test_the_write_lock_goes_to_the_thread_waiting_longest_not_back_to_the_one_that_let_go():
    """orders' consumer let go and took it again batch after batch, while a POST waited."""
    lock, taken = sqlite.FairLock(), []

    def wait_in_line(name: str) -> None:
        with lock:
            taken.append(name)

    lock.__enter__()
    first, second = (threading.Thread(target=wait_in_line, args=[name]) for name in ("first", "second"))
    first.start()
    assert within(5, lambda: len(lock._waiters) == 1)
    second.start()
    assert within(5, lambda: len(lock._waiters) == 2)
    lock.__exit__(None, None, None)
    wait_in_line("the one that let go")
    first.join(5), second.join(5)
    assert taken == ["first", "second", "the one that let go"]


def test_the_checkpoint_thread_ends_with_its_store(tmp_path):
    before = set(threading.enumerate())
    store = sqlite.SqliteStore(tmp_path / "gone.db")
    [thread] = [thread for thread in set(threading.enumerate()) - before if thread.name == "sqlite-checkpoint"]
    del store
    gc.collect()
    assert within(15.0, lambda: not thread.is_alive())


def test_a_relay_whose_claim_was_taken_marks_nothing_and_the_next_holder_sends_it_again(store, relay, fake_producer):
    """Readers drop what the first sends after the next holder's records (outbox.Fence),
    so only a holder that still holds the claim may mark a row sent."""
    with store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"{}"))
    first_producer, next_producer = fake_producer(), fake_producer()
    first = relay(first_producer)
    first._marked_at = time.monotonic()  # not due yet: the row stays unmarked
    first._publish_batch()
    first._claim.release()  # as the store does when its holder falls silent
    after = relay(next_producer)
    assert not first._holds_claim()
    assert first._unmarked == [] and outbox.pending(store) == 1
    assert after._publish_batch(mark_now=True) == 1
    assert outbox.pending(store) == 0
    sent = first_producer.sent + next_producer.sent
    assert [dict(message["headers"])["relay_epoch"] for message in sent] == [b"test:1", b"test:2"]


def test_each_take_of_a_claim_has_a_higher_epoch_and_ends_the_last_holders_word(store_settings):
    stores = [open_store(store_settings), open_store(store_settings)]
    first, second = (store.claim("relay") for store in stores)
    assert first.held() and first.held()
    epoch = first.epoch
    with stores[0].transaction() as tx:
        assert first.still_held(tx)
    assert not second.held()
    first.release()
    assert second.held() and second.epoch == epoch + 1
    with stores[0].transaction() as tx:
        assert not first.still_held(tx)
    second.release()
    assert first.held() and first.epoch == epoch + 2
    first.release()
    for store in stores:
        store.close()


def test_a_reader_drops_a_relays_record_older_than_one_it_read_from_that_relay_on_that_partition():
    fence = outbox.Fence()

    def stale(partition: int, stamp: bytes) -> bool:
        return fence.stale(("orders.events", partition), {"relay_epoch": stamp})

    assert [stale(0, b"billing:3"), stale(0, b"billing:4"), stale(0, b"billing:3"), stale(0, b"billing:4")] == [
        False,
        False,
        True,
        False,
    ]
    assert not stale(1, b"billing:3")  # nothing newer read on that partition
    assert not stale(0, b"orders:1")  # another relay, another claim
    assert not fence.stale(("orders.events", 0), {})  # not sent by a relay: a test's, a tool's


def test_a_relay_that_lost_kafka_asks_for_the_claim_again_only_once_kafka_answers(
    store, relay, fake_producer, monkeypatch
):
    """Cut off from Kafka, a holder lets the claim go; asking for it again at
    once would take it from a replica that can publish, and publish nothing."""
    answers, kafka_answers = [], [False]
    monkeypatch.setattr(outbox, "reachable", lambda settings, timeout: answers.append(timeout) or kafka_answers[0])
    producer = fake_producer(failing=(b"1",))
    holder = relay(producer)
    with store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"{}"))
    holder.start()
    try:
        assert within(10, lambda: len(answers) >= 2), "the relay never probed Kafka"
        other = store.claim("outbox-relay")
        assert other.held(), "the relay that lost Kafka took the claim back"
        assert within(2, lambda: len(answers) >= 3)
        producer._failing = ()
        kafka_answers[0] = True
        other.release()
        assert within(10, lambda: outbox.pending(store) == 0)
    finally:
        holder._stop.set()
        assert holder.join(10)


def test_a_service_on_sqlite_never_loads_psycopg(tmp_path):
    """Only the store a service runs on is imported: psycopg is about 10 MB of a
    process on SQLite for nothing (and sqlite-utils as much on PostgreSQL)."""
    script = (
        "import sys\n"
        "from eventbus.settings import Settings\n"
        "from eventbus.store import open_store\n"
        "import services.billing.service as billing\n"
        "billing.create_tables(open_store(Settings.from_env('billing')))\n"
        "print(sorted({'psycopg', 'sqlite_utils'} & set(sys.modules)))\n"
    )
    assert _printed_by_a_fresh_process(script, tmp_path) == "['sqlite_utils']"


def test_a_service_on_sqlite_never_loads_numpy_which_stays_importable(tmp_path):
    """sqlite-utils would import numpy, installed here for the bench's picture:
    18 MB of each service for nothing. The bench's own process may still use it."""
    script = (
        "import sys\n"
        "from eventbus.settings import Settings\n"
        "from eventbus.store import open_store\n"
        "open_store(Settings.from_env('billing')).query('SELECT 1')\n"
        "print('numpy' in sys.modules)\n"
        "import numpy\n"
    )
    assert _printed_by_a_fresh_process(script, tmp_path) == "False"


def _printed_by_a_fresh_process(script: str, data_dir) -> str:
    """What `script` prints in a Python of its own (nothing imported yet), its data in `data_dir`."""
    env = {"PATH": os.environ["PATH"], "DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
