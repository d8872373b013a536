"""What runs a service: its store, its outbox relay and its consumer loop, each
in a thread, until SIGTERM or SIGINT asks them to finish what they are doing;
its traces and, on METRICS_PORT when set, its metrics."""

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

from eventbus import health, ledger, metrics, outbox, tracing, tuning
from eventbus.consumer import ConsumerLoop, Handler, StoreOutage
from eventbus.contracts import Event
from eventbus.kafka import make_consumer
from eventbus.settings import Settings, listening
from eventbus.store import Store, StoreUnavailable, Transaction, open_store

log = logging.getLogger(__name__)
STOP_WITHIN = 4.0  # seconds from SIGTERM to exit, whatever Kafka does; `make run` waits 5
BEAT_EVERY_S = 1.0  # the heartbeat file is touched at most this often (it goes stale after 30 s)
STORE_RETRY_S = 1.0  # in a store outage, how often the store is asked whether it answers again


def stop_on_signals(stop: threading.Event, *signums: int) -> None:
    """Set `stop` when one of `signums` arrives. Not from a Python handler: it runs
    between two bytecodes of the main thread, which may hold the very lock that
    Event.set() takes, and a second signal (a second Ctrl-C; a dying parent's
    SIGTERM, sent once per thread it had) then deadlocks. The C-level handler
    writes to a pipe instead, and a thread that reads it sets `stop`. A signal
    this process was told to ignore (nohup's SIGHUP, say) stays ignored."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    for signum in signums:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda *_: None)

    def wait_for_signal() -> None:
        os.read(read, 1)
        stop.set()

    threading.Thread(target=wait_for_signal, name="signals", daemon=True).start()


class Service:
    def __init__(
        self,
        settings: Settings,
        handlers: dict[type, Handler],
        create_tables: Callable[[Store], None] = lambda store: None,
        pace: tuning.Pace = tuning.PROMPT,
    ):
        """`pace`: how its consumer reads (see eventbus.tuning)."""
        tuning.tune_process()
        tracing.configure_logging(settings.log_level)
        self.exports_traces = tracing.configure(settings.service, settings.traces_exporter, settings.traces_endpoint)
        self.settings = settings
        self.handlers = handlers
        self.pace = pace
        self.stop = threading.Event()
        self.crashed = False
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the heartbeat's, whatever the store
        self.store = open_store(settings)
        for create in (ledger.create, outbox.create, create_tables):
            create(self.store)
        self.relay = outbox.Relay(self.store, settings, self.stop)
        metrics.OUTBOX.watch(lambda: outbox.oldest_pending(self.store))
        self._beaten_at = 0.0

    def publish(self, tx: Transaction, event: Event) -> None:
        """Queue `event` in the outbox, inside the caller's transaction."""
        outbox.add_event(tx, self.settings, event)

    def run(self, serve: Callable[[], None] | None = None, close: Callable[[], None] = lambda: None):
        """Run until signalled; `serve` (an HTTP server, say) runs beside the consumer."""
        stop_on_signals(self.stop, signal.SIGTERM, signal.SIGINT)
        if self.settings.metrics_port:
            with listening("METRICS_PORT", self.settings.metrics_port):
                metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        self.relay.start()
        consumer = threading.Thread(target=self._consume, name="consumer")
        consumer.start()
        if serve:
            threading.Thread(target=serve, name="server", daemon=True).start()
        log.info("%s started", self.settings.service)
        while not self.stop.wait(1.0):
            pass
        log.info("%s stopping", self.settings.service)
        deadline = time.monotonic() + STOP_WITHIN
        close()
        consumer.join(max(0.0, deadline - time.monotonic()))
        if not self.relay.join(max(0.0, deadline - time.monotonic())) or consumer.is_alive():
            self._exit_now()
        tracing.shutdown()
        log.info("%s stopped", self.settings.service)
        if self.crashed:
            raise SystemExit(1)

    def _exit_now(self) -> None:
        """Kafka did not answer in time. Leave as a crash would, which loses
        nothing: unsent outbox rows go out on the next start, and the work since
        the last offset commit is redone, idempotently."""
        log.warning(
            "%s stopped without waiting longer for Kafka: unsent events go out on the next start",
            self.settings.service,
        )
        logging.shutdown()
        os._exit(1 if self.crashed else 0)

    def _heartbeat(self) -> None:
        """Called after every poll; touching the file each time cost a few syscalls per poll."""
        if time.monotonic() - self._beaten_at >= BEAT_EVERY_S:
            health.beat(self.settings.data_dir / f"{self.settings.instance or self.settings.service}.alive")
            self._beaten_at = time.monotonic()

    def _consume(self) -> None:
        """Run the consumer loop; on a Kafka failure start over with a new consumer
        (the work since the last commit is redone, idempotently). In a store
        outage, leave the group until the store answers: a replica that reaches
        it takes the partitions meanwhile."""
        group = self.settings.service
        while not self.stop.is_set():
            consumer = make_consumer(self.settings, group, self.pace)
            outage = False
            try:
                loop = ConsumerLoop(
                    consumer,
                    self.store,
                    self.settings,
                    self.handlers,
                    self.relay.wake,
                    polled=self._heartbeat,
                    pace=self.pace,
                )
                loop.run(self.stop)
            except StoreOutage as error:
                log.warning("Consumer leaves Kafka's group: %s; it joins again once the store answers", error)
                outage = True
            except KafkaException as error:
                log.warning("Kafka consumer failed (%s); reconnecting", error)
                self.stop.wait(1.0)
            except Exception:
                log.exception("The consumer loop crashed; stopping so the service is restarted")
                self.crashed = True
                self.stop.set()
            finally:
                consumer.close()
            if outage:
                self._wait_for_store()

    def _wait_for_store(self) -> None:
        """Until the store answers or the service stops; each try is bounded by the store's own timeouts."""
        while not self.stop.wait(STORE_RETRY_S):
            try:
                self.store.query("SELECT 1 AS up")
            except StoreUnavailable:
                continue
            log.info("The store answers again; the consumer joins Kafka's group")
            return
