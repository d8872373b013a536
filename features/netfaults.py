"""Faults of hosts of their own (make netfaults): a process paused, its host
cut off whole, or from the database or Kafka alone, or a broker killed, each
for a while; and who to fault, found as the system itself knows it: the
claim holder from the session holding the advisory lock in PostgreSQL, the
partition leader from Kafka's metadata, the controller quorum's leader from
Kafka's own kafka-metadata-quorum tool."""

import json
from collections.abc import Callable
from pathlib import Path

import psycopg

from features.driver import wait_until
from features.faults import Faults

# The session holding a service's outbox claim (eventbus.store.postgres.AdvisoryLock), and its host.
CLAIM_HOLDER = """
SELECT host(activity.client_addr) AS address
FROM pg_locks AS locks JOIN pg_stat_activity AS activity ON activity.pid = locks.pid
WHERE locks.locktype = 'advisory' AND locks.granted AND activity.datname = %(service)s
  AND locks.objid = (hashtext(%(claim)s)::bigint & 4294967295)::oid
"""
COLUMNS = ("fault", "for (s)", "longest stall (s)", "accepted", "refused", "charged twice", "emailed twice")


class HostFaults:
    def __init__(self, faults: Faults):
        self.faults = faults
        self.stack = faults.stack

    def process(self, who: str) -> str:
        """The process named by a scenario: "billing's claim holder", "the partition
        leader", "the controller quorum's leader", "orders", "the database"."""
        if who.endswith(" claim holder"):
            return self.claim_holder(who.split("'")[0])
        if who == "the partition leader":
            return self.faults.leading_broker()
        if who == "the controller quorum's leader":
            node = next(iter(self.stack.kafka.nodes.values()))
            return f"kafka-{node.quorum_leader()}"
        return self.faults.process(who)

    def claim_holder(self, service: str) -> str:
        """The replica of `service` whose relay holds the outbox claim: its session's client address names its host."""
        addresses = {self.stack.config.address(name): name for name in self.stack.supervisor.children}
        url = self.stack.config.service_settings(service).database_url
        claim = {"service": service, "claim": f"{service}:outbox-relay"}

        def holder() -> str | None:
            with psycopg.connect(url) as connection:
                found = connection.execute(CLAIM_HOLDER, claim).fetchone()
            return found and addresses.get(found[0])

        wait_until(holder, f"a replica of {service} holds the outbox claim")
        return holder()

    def begin(self, name: str, fault: str) -> Callable[[], None]:
        """Start `fault` on process `name`; returns what ends it."""
        config, network = self.stack.config, self.stack.network
        host = config.host(name)
        if fault == "paused":
            self.faults.freeze(name)
            return lambda: self.faults.thaw(name)
        if fault == "cut off":
            host.cut()
            return host.mend
        if fault == "killed":  # a broker: the supervisor would restart anything else at once
            self.stack.supervisor.kill(name)
            return lambda: self.stack.start_broker(name)
        others = {"cut from the database": ["postgres"], "cut from Kafka": list(self.stack.kafka.nodes)}[fault]
        hosts = [config.host(other) for other in others]
        network.separate(host, hosts)
        return lambda: network.join(host, hosts)


def table(figures: Path) -> str:
    """The netfaults rows Faults.record kept, one line each."""
    rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    lines = [[str(row[column]) for column in COLUMNS] for row in rows if "longest stall (s)" in row]
    widths = [max(len(cells[n]) for cells in [list(COLUMNS), *lines]) for n in range(len(COLUMNS))]
    return "\n".join(
        " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        for cells in [list(COLUMNS), *lines]
    )
