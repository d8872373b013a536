"""Fault injection on the local stack: kill or freeze its processes, place
bursts of orders meanwhile, and count effects in the services' own records."""

import contextlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devstack.stack import Stack, StackConfig
from eventbus import outbox
from eventbus.store import Store, open_store
from features.driver import Driver, wait_until

RESTART_TIMEOUT = 60.0


@dataclass
class Burst:
    """What happened to each order of a burst."""

    accepted: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    slowest_answer: float = 0.0


class Faults:
    def __init__(self, stack: Stack, driver: Driver):
        self.stack = stack
        self.driver = driver
        self.kills: dict[str, int] = {}

    def process(self, target: str) -> str:
        """The process name of a target: `the broker` is kafka, `the database`
        postgres, `billing` its first replica running."""
        wanted = {"the broker": "kafka", "the database": "postgres"}.get(target, target)
        return next(name for name in self.stack.supervisor.children if name == wanted or name.startswith(f"{wanted}-"))

    def kill(self, target: str) -> None:
        """SIGKILL the target and wait until the supervisor has started it again
        (not until it is ready: the next kill may well hit it while it starts)."""
        name = self.process(target)
        child = self.stack.supervisor.children[name]
        old = child.process
        os.kill(old.pid, signal.SIGKILL)
        self.kills[name] = self.kills.get(name, 0) + 1
        wait_until(
            lambda: child.process is not old and child.process.poll() is None, f"{name} is restarted", RESTART_TIMEOUT
        )

    def add_replica(self, service: str, name: str, **env: str) -> None:
        self.stack.start_process(service, name, **env)

    def retire(self, name: str) -> None:
        self.stack.supervisor.retire(name)

    def pending_in_outboxes(self) -> dict[str, int]:
        """Rows each service's outbox still has to publish."""
        pending = {}
        for service in ("orders", "billing", "notifications"):
            store = open_store(self.stack.config.service_settings(service))
            try:
                pending[service] = outbox.pending(store)
            finally:
                store.close()
        return pending

    def freeze(self, target: str) -> None:
        """SIGSTOP the target and its children: PostgreSQL's connections are served by processes of their own."""
        self._signal_tree(target, signal.SIGSTOP)

    def thaw(self, target: str) -> None:
        self._signal_tree(target, signal.SIGCONT)

    def _signal_tree(self, target: str, signum: int) -> None:
        process = psutil.Process(self.stack.supervisor.pid(self.process(target)))
        for each in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                each.send_signal(signum)

    def burst(self, count: int, per_second: float, faults_at: dict[float, Callable] | None = None) -> Burst:
        """Place `count` fresh orders at a steady pace while, one after another,
        each fault in `faults_at` runs once that fraction of the burst is placed.

        Like a careful client, each order is retried with its own orderId while
        orders cannot be reached, so an order stored just before a crash is
        answered by its replay."""
        result = Burst()
        lock = threading.Lock()
        placed = [0]
        failures: list[BaseException] = []

        def run_faults() -> None:
            try:
                for fraction, fault in sorted((faults_at or {}).items()):
                    wait_until(lambda f=fraction: placed[0] >= f * count, f"{fraction:.0%} of the burst is placed")
                    fault()
            except BaseException as error:
                failures.append(error)

        def place(order_id: int) -> None:
            body = {"orderId": order_id, "userId": order_id % 97 + 1, "itemId": 3, "qty": 2}
            begun = time.monotonic()
            status = self._post_until_answered(body, deadline=begun + RESTART_TIMEOUT)
            with lock:
                (result.accepted if status in (200, 201) else result.refused).append(order_id)
                result.slowest_answer = max(result.slowest_answer, time.monotonic() - begun)

        faults = threading.Thread(target=run_faults, name="faults")
        faults.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for n in range(count):
                pool.submit(place, self.driver.new_order_id())
                placed[0] = n + 1
                time.sleep(1 / per_second)
        faults.join(RESTART_TIMEOUT * 4)
        if failures:
            raise failures[0]
        return result

    def _post_until_answered(self, body: dict, deadline: float) -> int | None:
        while time.monotonic() < deadline:
            try:
                return self.driver.post_order(body).status
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        return None

    def charges_and_emails(self, order_ids: list[int]) -> dict[int, tuple[int, int]]:
        return charges_and_emails(self.stack.config, order_ids)

    def record(self, figures: dict) -> None:
        """Keep the figures of each fault scenario for the run's report."""
        with open(Path(self.stack.config.home) / "fault-figures.jsonl", "a") as report:
            report.write(json.dumps(figures) + "\n")


def charges_and_emails(config: StackConfig, order_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per order: charges in billing's ledger, emails in the mailer's mailbox,
    read from the stores of the stack `config` describes (SQLite or PostgreSQL)."""

    def count(store: Store, query: str) -> dict[str, int]:
        try:
            return {str(row["key"]): row["n"] for row in store.query(query)}
        finally:
            store.close()

    charges = count(
        open_store(config.service_settings("billing")),
        "SELECT key, COUNT(*) AS n FROM processed WHERE handler = 'billing.charge' GROUP BY key",
    )
    emails = count(
        open_store(config.service_settings("notifications"), "mailbox"),
        'SELECT "orderId" AS key, COUNT(*) AS n FROM mailbox GROUP BY "orderId"',
    )
    return {order_id: (charges.get(str(order_id), 0), emails.get(str(order_id), 0)) for order_id in order_ids}
