"""Hosts of their own on this one machine, for fault tests: each a Linux
network namespace with its own address on a bridge of the machine's. Cutting
a host off takes its link down: its packets, and those sent to it, are dropped
without a word, as when a cable is pulled or a switch port dies. Cutting one
host from some others drops only the packets between them, in an iptables
chain of the network's own (Docker sets FORWARD's policy to DROP, and bridged
packets pass through it). Needs root; nothing leaves the machine: the chain
drops whatever the bridge would send outside 10.231.<n>.0/24.

`python -m devstack.hosts remove <n>` removes network n, its hosts and its
chain, whatever a killed run left of them."""

import subprocess
import sys
from dataclasses import dataclass


def _run(*argv: str, check: bool = True) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        if check:
            raise
        return False  # a program not installed left nothing to undo
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.returncode == 0


def _ip(*args: str) -> None:
    _run("ip", *args)


def _iptables(*args: str, check: bool = True) -> bool:
    return _run("iptables", "-w", "5", *args, check=check)


@dataclass(frozen=True)
class Network:
    """A bridge with the /24 10.231.`number`.0; the machine itself is .1 on it."""

    number: int  # 0 to 255: networks of different numbers can exist side by side

    @property
    def bridge(self) -> str:
        return f"edbr{self.number}"

    @property
    def chain(self) -> str:
        """The iptables chain FORWARD jumps to: the cuts first, then ACCEPT inside the network."""
        return f"ED-NET{self.number}"

    @property
    def subnet(self) -> str:
        return f"10.231.{self.number}.0/24"

    @property
    def machine(self) -> str:
        """The machine's own address on the bridge, where its servers can listen."""
        return f"10.231.{self.number}.1"

    def create(self) -> None:
        """The bridge and the chain; one that fails half-way removes what it made."""
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.machine}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            _iptables("-N", self.chain)
            _iptables("-A", self.chain, "-s", self.subnet, "-d", self.subnet, "-j", "ACCEPT")
            _iptables("-A", self.chain, "-i", self.bridge, "-j", "DROP")
            _iptables("-I", "FORWARD", "1", "-j", self.chain)
        except (RuntimeError, OSError):
            self.remove()
            raise

    def remove(self) -> None:
        """Whatever is left of the network: its hosts, its chain, its bridge."""
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
        for line in links:
            name = line.split(": ")[1].split("@")[0]
            if name.startswith(f"ed{self.number}h"):
                _run("ip", "link", "del", name, check=False)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        for namespace in listed:
            if namespace.startswith(f"ed{self.number}-"):
                _run("ip", "netns", "del", namespace, check=False)
        while _iptables("-D", "FORWARD", "-j", self.chain, check=False):
            pass
        _iptables("-F", self.chain, check=False)
        _iptables("-X", self.chain, check=False)
        _run("ip", "link", "del", self.bridge, check=False)

    def host(self, name: str, number: int) -> "Host":
        return Host(self, name, number)

    def separate(self, host: "Host", others: list["Host"]) -> None:
        """Drop every packet between `host` and each of `others`, both ways."""
        for rule in self._rules(host, others):
            _iptables("-I", self.chain, "1", *rule)

    def join(self, host: "Host", others: list["Host"]) -> None:
        """Undo separate()."""
        for rule in self._rules(host, others):
            _iptables("-D", self.chain, *rule)

    @staticmethod
    def _rules(host: "Host", others: list["Host"]) -> list[list[str]]:
        pairs = [(host, other) for other in others] + [(other, host) for other in others]
        return [["-s", a.address, "-d", b.address, "-j", "DROP"] for a, b in pairs]


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
        """The cable first: a namespace's own links go some time after the namespace, in the background."""
        _run("ip", "link", "del", self.link, check=False)
        _ip("netns", "del", self.namespace)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "remove" or not sys.argv[2].isdigit():
        sys.exit("usage: python -m devstack.hosts remove <network number>")
    Network(int(sys.argv[2])).remove()
