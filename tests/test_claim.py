"""The outbox relay's claim on each store: one holder at a time, and a holder
that goes silent (stops asking, or is paused) loses it within seconds to a live
process. Real SQLite files and real PostgreSQL servers; no broker."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

from cloudevents.core.bindings.kafka import KafkaMessage

from eventbus import outbox
from eventbus.settings import Settings
from eventbus.store import open_store
from tests.conftest import within

ROOT = Path(__file__).resolve().parent.parent
SILENCE_GIVEN_UP_WITHIN_S = 15  # the longest silence a claim survives is 6 s on either store


def test_a_holder_that_stops_asking_loses_the_claim_to_a_live_process(store_settings):
    stores = [open_store(store_settings), open_store(store_settings)]
    silent, live = (store.claim("relay") for store in stores)
    assert silent.held()
    assert not live.held()
    assert within(SILENCE_GIVEN_UP_WITHIN_S, live.held)
    assert not silent.held()
    live.release()
    for store in stores:
        store.close()


HOLD_AND_ASK = """
import sys, time
from pathlib import Path
from eventbus.settings import Settings
from eventbus.store import open_store
settings = Settings(service="test", data_dir=Path(sys.argv[1]), database_url=sys.argv[2] or None)
claim = open_store(settings).claim("relay")
assert claim.held()
print("held", flush=True)
while True:
    held = claim.held()
    print("held" if held else "lost", flush=True)
    if not held:
        break
    time.sleep(0.2)
"""


def test_a_paused_holder_loses_the_claim_and_learns_it_when_it_wakes(store_settings):
    """SIGSTOP: the process is frozen but its kernel still answers keepalives."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_ASK, str(store_settings.data_dir), store_settings.database_url or ""],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        store = open_store(store_settings)
        live = store.claim("relay")
        holder.send_signal(signal.SIGSTOP)
        assert within(SILENCE_GIVEN_UP_WITHIN_S, live.held)
        holder.send_signal(signal.SIGCONT)
        said = holder.stdout.read().split("\n")
        assert "lost" in said  # on waking it learns, in its first asking, that it no longer holds it
        assert live.held()
        live.release()
        store.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_relay_that_cannot_reach_kafka_lets_another_replica_publish(store, tmp_path, fake_producer, monkeypatch):
    monkeypatch.setattr(outbox, "make_producer", lambda settings: fake_producer(failing=(b"1",)))
    with store.transaction() as tx:
        outbox.add(tx, "orders.events", KafkaMessage(headers={}, key=b"1", value=b"{}"))
    stop = threading.Event()
    failing = outbox.Relay(store, Settings(service="test", data_dir=tmp_path), stop)
    failing.start()
    other = store.claim("outbox-relay")
    try:
        assert within(3, other.held)  # its lease or lock would last longer
    finally:
        stop.set()
        failing.join(5)
        other.release()
