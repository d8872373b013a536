"""Hosts of their own on this one machine, for fault tests: each a Linux
network namespace with its own address on a bridge of the machine's. Cutting
a host off takes its link down: its packets, and those sent to it, are dropped
without a word, as when a cable is pulled or a switch port dies. Needs root;
nothing leaves the machine (10.231.<n>.0/24 lives on the bridge alone)."""

import subprocess
from dataclasses import dataclass


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Network:
    """A bridge with the /24 10.231.`number`.0; the machine itself is .1 on it."""

    number: int  # 0 to 255: networks of different numbers can exist side by side

    @property
    def bridge(self) -> str:
        return f"edbr{self.number}"

    @property
    def machine(self) -> str:
        """The machine's own address on the bridge, where its servers can listen."""
        return f"10.231.{self.number}.1"

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.machine}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def remove(self) -> None:
        _ip("link", "del", self.bridge)

    def host(self, name: str, number: int) -> "Host":
        return Host(self, name, number)


@dataclass(frozen=True)
class Host:
    """A network namespace with address 10.231.<network>.`number` on the network's bridge."""

    network: Network
    name: str
    number: int  # 2 to 254

    @property
    def namespace(self) -> str:
        return f"ed{self.network.number}-{self.name}"

    @property
    def address(self) -> str:
        return f"10.231.{self.network.number}.{self.number}"

    @property
    def link(self) -> str:
        """The machine's end of the host's cable (a veth; its other end is the host's eth0)."""
        return f"ed{self.network.number}h{self.number}"

    def create(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.namespace)
        _ip("link", "set", self.link, "master", self.network.bridge, "up")
        _ip("-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _ip("-n", self.namespace, "link", "set", "eth0", "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host: it sees only the host's own network."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        _ip("link", "set", self.link, "down")

    def mend(self) -> None:
        _ip("link", "set", self.link, "up")

    def remove(self) -> None:
        _ip("netns", "del", self.namespace)  # its eth0 goes with it, and so the machine's end
