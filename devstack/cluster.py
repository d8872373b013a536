"""Three Kafka nodes on this machine, one cluster (`make run BROKERS=3`): each
is broker and controller at once, node n with its broker on KAFKA_PORT+2(n-1),
its controller on KAFKA_CONTROLLER_PORT+2(n-1) and its data in kafka-<n>/.
Given `hosts` (an address each, on hosts of their own: devstack.hosts), node
n listens on the n-th instead, on KAFKA_PORT and KAFKA_CONTROLLER_PORT.

The controllers form one dynamic quorum (KIP-853): every node finds it through
all three controller listeners, and every node's storage is formatted with
the same cluster id and the same list of initial controllers, each with the
id of its metadata directory chosen up front. That identity is chosen at the
first start and kept beside the nodes, so a node whose format was cut short
(a Ctrl-C, a killed supervisor) is formatted the same way at the next start."""

from dataclasses import dataclass
from pathlib import Path

from devstack import StartFailed
from devstack.kafka import Broker, Kafka, new_id

IDENTITY = "kafka-cluster.properties"


@dataclass(frozen=True)
class Cluster(Kafka):
    home: Path  # the stack's folder
    port: int = 9092
    controller_port: int = 9093
    size: int = 3
    heap: str = "320m"  # each; three of them share a laptop's 2 cores with the services
    hosts: tuple[str, ...] = ()

    @property
    def nodes(self) -> dict[str, Broker]:
        """The processes to start, by name: kafka-1, kafka-2, ..."""
        step = 0 if self.hosts else 2
        places = [
            (self.hosts[n] if self.hosts else "127.0.0.1", self.port + step * n, self.controller_port + step * n)
            for n in range(self.size)
        ]
        quorum = tuple(f"{host}:{controller}" for host, _, controller in places)
        return {
            f"kafka-{n}": Broker(self.home / f"kafka-{n}", port, controller, self.heap, n, quorum, host)
            for n, (host, port, controller) in enumerate(places, start=1)
        }

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes.values())

    def initial_controllers(self, directory_ids: list[str]) -> str:
        """`1@127.0.0.1:9093:<directory id>,2@...`: kafka-storage.sh format's --initial-controllers."""
        return ",".join(f"{voter}:{directory}" for voter, directory in zip(self._voters(), directory_ids, strict=True))

    def _voters(self) -> list[str]:
        return [f"{node.node_id}@{node.host}:{node.controller_port}" for node in self.nodes.values()]

    def prepare(self) -> None:
        """Write each node's configuration and format the storage of those that have none."""
        for node in self.nodes.values():
            node.configure()
        cluster_id, controllers = self._identity()
        for node in self.nodes.values():
            if not node.formatted:
                node.format(cluster_id, f"--initial-controllers={controllers}")

    def _identity(self) -> tuple[str, str]:
        """The cluster id and initial controllers: chosen and written down at the
        first start, then read back. The controllers' ports are part of them."""
        path = self.home / IDENTITY
        if not path.exists():
            controllers = self.initial_controllers([new_id() for _ in range(self.size)])
            temporary = path.with_suffix(".tmp")
            temporary.write_text(
                "# Chosen at the cluster's first start; every node is formatted with it.\n"
                f"cluster.id={new_id()}\ninitial.controllers={controllers}\n"
            )
            temporary.replace(path)
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#"))
        made_with = [entry.rsplit(":", 1)[0] for entry in values["initial.controllers"].split(",")]
        if made_with != self._voters():
            raise StartFailed(
                f"the Kafka cluster in {self.home} has its controllers at {', '.join(made_with)}: start it"
                " with the KAFKA_PORT and KAFKA_CONTROLLER_PORT it was made with, or wipe it: make clean"
            )
        return values["cluster.id"], values["initial.controllers"]
