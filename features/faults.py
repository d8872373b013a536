"""Fault injection on the local stack: kill or freeze its processes, place
bursts of orders meanwhile, and count effects in the services' own records."""

import contextlib
import functools
import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from confluent_kafka.admin import AdminClient, ClusterMetadata

from devstack.kafka import client
from devstack.stack import Stack, StackConfig
from eventbus import outbox
from eventbus.store import Store, open_store
from features.driver import Driver, wait_until

RESTART_TIMEOUT = 60.0


DECLINED_QTY = 600  # 60000 at the default unit price: above the default credit limit
EMAILS = ("order_confirmed", "order_cancelled", "payment_refunded")


@dataclass
class Burst:
    """What happened to each order of a burst."""

    accepted: list[int] = field(default_factory=list)
    accepted_at: dict[int, float] = field(default_factory=dict)  # wall-clock seconds, as Kafka's timestamps
    refused: list[int] = field(default_factory=list)
    slowest_answer: float = 0.0
    declined: list[int] = field(default_factory=list)  # placed above the credit limit
    cancelled: list[int] = field(default_factory=list)  # cancelled by their customer right after the POST


@dataclass(frozen=True)
class Effects:
    """An order's effects, counted in the services' own records."""

    charges: int
    refunds: int
    emails: dict[str, int]  # by template


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

    def leading_broker(self, topic: str = "orders.events") -> str:
        """The process of the broker leading most of `topic`'s partitions (in a tie, the first partition's)."""
        partitions = self._metadata().topics[topic].partitions
        leaders = Counter(partitions[number].leader for number in sorted(partitions))
        return f"kafka-{leaders.most_common(1)[0][0]}"

    def in_sync_everywhere(self, broker: str) -> bool:
        """The broker holds an in-sync copy of every partition of every topic, Kafka's own included."""
        node_id = self.stack.kafka.nodes[broker].node_id
        topics = self._metadata().topics.values()
        return all(node_id in partition.isrs for topic in topics for partition in topic.partitions.values())

    def _metadata(self) -> ClusterMetadata:
        return self._admin.list_topics(timeout=10)

    @functools.cached_property
    def _admin(self) -> AdminClient:
        return AdminClient(client(self.stack.kafka.bootstrap_servers))

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

    def burst(
        self, count: int, per_second: float, faults_at: dict[float, Callable] | None = None, saga: bool = False
    ) -> Burst:
        """Place `count` fresh orders at a steady pace while, one after another,
        each fault in `faults_at` runs once that fraction of the burst is placed.
        With `saga`, every third order is above the credit limit and every third
        is cancelled by its customer right after it was accepted.

        Like a careful client, each order (and each cancel) is retried with its
        own orderId while orders cannot be reached, so an order stored just
        before a crash is answered by its replay."""
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

        def place(order_id: int, kind: str) -> None:
            qty = DECLINED_QTY if kind == "declined" else 2
            body = {"orderId": order_id, "userId": order_id % 97 + 1, "itemId": 3, "qty": qty}
            begun = time.monotonic()
            status = self._post_until_answered(body, deadline=begun + RESTART_TIMEOUT)
            accepted = status in (200, 201)
            cancelled = accepted and kind == "cancelled" and self._cancel_until_answered(order_id, begun)
            with lock:
                (result.accepted if accepted else result.refused).append(order_id)
                if accepted:
                    result.accepted_at[order_id] = time.time()
                result.slowest_answer = max(result.slowest_answer, time.monotonic() - begun)
                if accepted and kind == "declined":
                    result.declined.append(order_id)
                if cancelled:
                    result.cancelled.append(order_id)

        faults = threading.Thread(target=run_faults, name="faults")
        faults.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for n in range(count):
                kind = ("normal", "declined", "cancelled")[n % 3] if saga else "normal"
                pool.submit(place, self.driver.new_order_id(), kind)
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

    def _cancel_until_answered(self, order_id: int, begun: float) -> bool:
        while time.monotonic() < begun + RESTART_TIMEOUT:
            try:
                return self.driver.cancel_order(order_id).status in (200, 202)
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        return False

    def charges_and_emails(self, order_ids: list[int]) -> dict[int, tuple[int, int]]:
        return charges_and_emails(self.stack.config, order_ids)

    def effects(self, order_ids: list[int]) -> dict[int, Effects]:
        return effects(self.stack.config, order_ids)

    def saga_ran(self, order_id: int, declined: bool, cancelled: bool) -> bool:
        """The order's saga has run its course: charged (unless declined), refunded
        when charged and cancelled, and at least every email it is owed sent. A
        cancelled order waits for billing to have read the cancel: before, its
        charge may still be followed by a refund."""
        each = self.effects([order_id])[order_id]
        if declined or cancelled:
            owed = {"order_confirmed": each.charges, "order_cancelled": 1, "payment_refunded": each.refunds}
        else:
            owed = {"order_confirmed": 1}
        emailed = all(each.emails[template] >= count for template, count in owed.items())
        if cancelled:
            return emailed and self._billing_read_cancel(order_id) and each.refunds >= each.charges
        return emailed and (declined or each.charges >= 1)

    def _billing_read_cancel(self, order_id: int) -> bool:
        store = open_store(self.stack.config.service_settings("billing"))
        try:
            query = "SELECT 1 FROM processed WHERE handler = 'billing.refund' AND key = ?"
            return bool(store.query(query, [str(order_id)]))
        finally:
            store.close()

    def record(self, figures: dict) -> None:
        """Keep the figures of each fault scenario for the run's report."""
        with open(Path(self.stack.config.home) / "fault-figures.jsonl", "a") as report:
            report.write(json.dumps(figures) + "\n")


def effects(config: StackConfig, order_ids: list[int]) -> dict[int, Effects]:
    """Per order: charges and refunds in billing's ledger, emails of each kind in
    the mailer's mailbox, read from the stores of the stack `config` describes
    (SQLite files or PostgreSQL databases)."""

    def count(store: Store, query: str) -> dict[tuple, int]:
        """`query`'s count `n` by the columns before it, as text; none while the
        service has not created its table yet (it is still starting)."""
        try:
            rows = store.query(query)
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            rows = []
        except psycopg.errors.UndefinedTable:
            rows = []
        finally:
            store.close()
        return {tuple(str(value) for value in list(row.values())[:-1]): row["n"] for row in rows}

    billing = config.service_settings("billing")
    charges = count(open_store(billing), 'SELECT "orderId", COUNT(*) AS n FROM "charges" GROUP BY "orderId"')
    refunds = count(open_store(billing), 'SELECT "orderId", COUNT(*) AS n FROM "refunds" GROUP BY "orderId"')
    emails = count(
        open_store(config.service_settings("notifications"), "mailbox"),
        'SELECT "orderId", "template", COUNT(*) AS n FROM "emails" GROUP BY "orderId", "template"',
    )
    return {
        order_id: Effects(
            charges.get((str(order_id),), 0),
            refunds.get((str(order_id),), 0),
            {template: emails.get((str(order_id), template), 0) for template in EMAILS},
        )
        for order_id in order_ids
    }


def charges_and_emails(config: StackConfig, order_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per order: charges, and emails confirming it."""
    counted = effects(config, order_ids)
    return {order_id: (each.charges, each.emails["order_confirmed"]) for order_id, each in counted.items()}
