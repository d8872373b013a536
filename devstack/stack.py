"""The whole stack as processes: settings checked, folder and ports claimed,
then Kafka (one broker, or three with BROKERS=3), the topics, PostgreSQL (with
STORE=postgres) and the services, each start step reported on one line; with
TRACES=1 a Zipkin server too, which every service sends its spans to, and with
METRICS=1 a Prometheus that scrapes every process and evaluates the alert
rules. With NETWORK=<n> (as root) every process runs on a host of its own,
at its own address on 10.231.<n>.0/24 (devstack.hosts), which the stack
removes when it stops. It stops in order (services and Prometheus, then
Kafka, PostgreSQL and Zipkin) within 15 seconds."""

import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import StartFailed, claim, prometheus, zipkin
from devstack.cluster import Cluster
from devstack.hosts import Host, Network
from devstack.kafka import LIBS, VERSION, Broker, Kafka, fetch
from devstack.postgres import Server
from devstack.supervisor import Supervisor
from eventbus.settings import Env, SettingError, Settings
from services.billing.service import read_settings as billing_settings
from services.notifications.service import read_settings as notifications_settings
from services.orders.service import read_settings as orders_settings

SERVICES = {"orders": orders_settings, "billing": billing_settings, "notifications": notifications_settings}
SERVICE_GRACE = 5.0  # seconds a service gets after SIGTERM (it stops within 4, Kafka or not)
BROKER_GRACE = 8.0  # then Kafka's: the whole stack stops within 15
KEEP = ("stack.lock", "pids.json")  # what a fresh start does not wipe
BACKING = ("kafka", "postgres")  # stopped once the services that use them have stopped
STORES = ("sqlite", "postgres")
CLUSTER_PORTS = " (with BROKERS={brokers}, node n takes KAFKA_PORT+2(n-1) and KAFKA_CONTROLLER_PORT+2(n-1))"
# Each process's host on a NETWORK: 10.231.<n>.<number>; the machine itself, the test driver's, is .1.
HOSTS = {"kafka": 11, "postgres": 20, "orders": 30, "billing": 41, "notifications": 51}
HOSTS |= {f"kafka-{n}": 10 + n for n in range(1, 4)}
HOSTS |= {
    f"{service}-{n}": base + n for service, base in (("billing", 40), ("notifications", 50)) for n in range(1, 10)
}


def read_brokers(env: Env) -> int:
    """BROKERS: one Kafka broker, or a cluster of three that may lose one without losing a write."""
    return int(env.text("BROKERS", "1", "[13]", "1 (one Kafka broker) or 3 (a cluster of three)"))


def read_network(env: Env) -> int | None:
    """NETWORK: every process on a host of its own, on network 10.231.<n>.0/24 (root only); unset, all on 127.0.0.1."""
    if not env.raw("NETWORK", ""):
        return None
    return env.whole("NETWORK", 0, 0, 255)


def read_store(env: Env) -> str:
    """STORE: where the services keep their state (a SQLite file each, or a database each on the stack's PostgreSQL)."""
    return env.text("STORE", STORES[0], "|".join(STORES), " or ".join(STORES))


class Interrupted(Exception):
    """Asked to stop while starting."""


@dataclass(frozen=True)
class StackConfig:
    home: Path = Path(".run")
    kafka_port: int = 9092
    controller_port: int = 9093
    orders_port: int = 5002
    partitions: int = 3
    replicas: int = 1
    brokers: int = 1
    store: str = "sqlite"
    postgres_port: int = 5432
    traces: bool = False
    zipkin_port: int = 9411
    metrics_port: int = 9101  # billing's; each consumer process gets the next one (orders serves /metrics itself)
    metrics: bool = False  # a Prometheus of the stack's own scrapes them all
    prometheus_port: int = 9090
    network: int | None = None  # each process on a host of its own, on this network (see devstack.hosts)

    @classmethod
    def from_env(cls, env: Env) -> "StackConfig":
        config = cls(
            home=env.folder("STACK_DIR", str(cls.home)),
            kafka_port=env.port("KAFKA_PORT", cls.kafka_port),
            controller_port=env.port("KAFKA_CONTROLLER_PORT", cls.controller_port),
            orders_port=env.port("ORDERS_PORT", cls.orders_port),
            partitions=env.whole("PARTITIONS", cls.partitions, 1, 1000),
            replicas=env.whole("REPLICAS", cls.replicas, 1, 16),
            brokers=read_brokers(env),
            store=read_store(env),
            postgres_port=env.port("POSTGRES_PORT", cls.postgres_port),
            traces=env.whole("TRACES", 0, 0, 1, "1 (start Zipkin and send it every span) or 0") == 1,
            zipkin_port=env.port("ZIPKIN_PORT", cls.zipkin_port),
            metrics_port=env.port("METRICS_PORT", cls.metrics_port),
            metrics=env.whole("METRICS", 0, 0, 1, "1 (start Prometheus, scraping every process) or 0") == 1,
            prometheus_port=env.port("PROMETHEUS_PORT", cls.prometheus_port),
            network=read_network(env),
        )
        room = 65535 - 2 * (config.brokers - 1)  # node n of a cluster takes each port + 2(n-1)
        for name, port in (("KAFKA_PORT", config.kafka_port), ("KAFKA_CONTROLLER_PORT", config.controller_port)):
            if port > room:
                raise SettingError(name, str(port), f"at most {room} with BROKERS={config.brokers}")
        nodes = config.kafka.nodes.values()
        brokers, controllers = {node.port for node in nodes}, {node.controller_port for node in nodes}
        scheme = "" if config.brokers == 1 else CLUSTER_PORTS.format(brokers=config.brokers)
        if controllers & (brokers | {config.orders_port}):
            raise SettingError("KAFKA_CONTROLLER_PORT", str(config.controller_port), "a port of its own" + scheme)
        if config.orders_port in brokers:
            raise SettingError("ORDERS_PORT", str(config.orders_port), "a port other than KAFKA_PORT's" + scheme)
        taken = (*brokers, *controllers, config.orders_port)
        if config.store == "postgres" and config.postgres_port in taken:
            raise SettingError("POSTGRES_PORT", str(config.postgres_port), "a port of its own")
        return config

    def service_settings(self, service: str, name: str | None = None) -> Settings:
        """Where process `name` of `service` keeps its state: on PostgreSQL its
        service's database (and a data folder of its own, as on a host of its
        own: replicas share nothing but the database and Kafka), else the
        stack's one data folder."""
        data = self.home / "data"
        if self.store != "postgres":
            return Settings(service=service, data_dir=data)
        url = Server(self.home / "postgres", self.postgres_port, listen=self.address("postgres")).url(service)
        return Settings(service=service, data_dir=data / (name or service), database_url=url)

    def host(self, name: str) -> Host | None:
        """The host process `name` runs on, on the NETWORK; None without one."""
        return None if self.network is None else Network(self.network).host(name, HOSTS[name])

    def address(self, name: str) -> str:
        """Where process `name` listens: its host's address, or 127.0.0.1."""
        host = self.host(name)
        return host.address if host else "127.0.0.1"

    @property
    def kafka(self) -> Kafka:
        """One broker in kafka/, or the cluster's nodes in kafka-1/, kafka-2/, ... (see devstack.cluster)."""
        if self.brokers == 1:
            return Broker(self.home / "kafka", self.kafka_port, self.controller_port, host=self.address("kafka"))
        hosts = (
            tuple(self.address(f"kafka-{n}") for n in range(1, self.brokers + 1)) if self.network is not None else ()
        )
        return Cluster(self.home, self.kafka_port, self.controller_port, self.brokers, hosts=hosts)

    @property
    def orders_url(self) -> str:
        return f"http://{self.address('orders')}:{self.orders_port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


class Stack:
    def __init__(self, config: StackConfig, echo: bool = True, fresh: bool = False):
        """`fresh` starts from empty data (the test and bench stacks)."""
        self.config = config
        self.fresh = fresh
        self.kafka = config.kafka
        self.network = Network(config.network) if config.network is not None else None
        self.postgres = None
        if config.store == "postgres":
            clients = self.network.subnet if self.network else None
            self.postgres = Server(
                config.home / "postgres", config.postgres_port, listen=config.address("postgres"), clients=clients
            )
        self.zipkin = zipkin.Zipkin(config.zipkin_port) if config.traces else None
        self.prometheus = (
            prometheus.Prometheus(config.home / "prometheus", config.prometheus_port) if config.metrics else None
        )
        self.supervisor = Supervisor(config.log_dir, echo, pid_file=config.home / "pids.json")
        self.stopping = threading.Event()
        self._lock = None

    def start(self) -> None:
        """Raises SettingError or StartFailed (before anything runs when it can),
        Interrupted when `stopping` is set meanwhile. Call stop() in any case."""
        self.check_settings(Env())
        self._lock = claim.lock_folder(self.config.home)
        began = time.monotonic()
        left = claim.stop_leftovers(self.config.home / "pids.json")
        if self.fresh:
            self._wipe()
        if left is not None:
            self._report_leftovers(left, time.monotonic() - began)
        ports = {}
        for name, node in self.kafka.nodes.items():
            what = "Kafka" if name == "kafka" else f"Kafka's {name}"
            ports |= {node.port: what, node.controller_port: f"{what}'s controller"}
        ports |= {
            self.config.orders_port: "orders",
            **{port: f"{name}'s metrics" for name, port in self.metrics_ports().items()},
        }
        settings = "KAFKA_PORT=.. KAFKA_CONTROLLER_PORT=.. ORDERS_PORT=.. METRICS_PORT=.."
        if self.postgres:
            ports[self.postgres.port] = "PostgreSQL"
            settings += " POSTGRES_PORT=.."
        if self.zipkin:
            ports[self.zipkin.port] = "Zipkin"
            settings += " ZIPKIN_PORT=.."
        if self.prometheus:
            ports[self.prometheus.port] = "Prometheus"
            settings += " PROMETHEUS_PORT=.."
        claim.check_ports(ports, f"run this stack on other ports: {settings} make run")
        if self.network:
            self._step("hosts", self._create_hosts)
        self._step("fetch", self._fetch)
        if self.zipkin:  # it starts while Kafka does, and is waited for before the services
            self.supervisor.start("zipkin", self.zipkin.command(), orphan_signal=signal.SIGKILL)
        self._step("broker", self._start_broker)
        self._step("topics", self._create_topics)
        if self.postgres:
            self._step("postgres", self._start_postgres)
        if self.zipkin:
            self._step("traces", self._wait_for_zipkin)
        self._step("services", self._start_services)
        if self.prometheus:
            self._step("metrics", self._start_prometheus)

    def check_settings(self, env: Env) -> None:
        """Each service's settings, read as the service will read them; Prometheus there when asked for."""
        for service, name in self.processes():
            SERVICES[service](Env({**env.environ, **self.service_env(service, name)}))
        if self.prometheus:
            prometheus.binary()

    def service_env(self, service: str, name: str) -> dict[str, str]:
        settings = self.config.service_settings(service, name)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "DATA_DIR": str(settings.data_dir),
            "HTTP_PORT": str(self.config.orders_port),
            "CONSUMER_INSTANCE_ID": name,
        }
        if settings.database_url:
            env["DATABASE_URL"] = settings.database_url
        if self.network:
            env["HTTP_HOST"] = self.config.address(name)  # orders' own address, not its host's loopback
        env["METRICS_PORT"] = str(self.metrics_ports().get(name, ""))  # orders serves them on its HTTP port
        if self.zipkin:
            env |= {
                "OTEL_TRACES_EXPORTER": "zipkin",
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT": self.zipkin.spans_endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "500",  # ms: a trace shows up in Zipkin half a second after its spans end
                "TRACE_VIEW": self.zipkin.trace_view,
            }
        return env

    def metrics_ports(self) -> dict[str, int]:
        """The metrics port of each consumer process: billing's first, then one each."""
        consumers = [name for service, name in self.processes() if service != "orders"]
        return {name: self.config.metrics_port + number for number, name in enumerate(consumers)}

    def start_process(self, service: str, name: str, **env: str) -> None:
        """Start process `name` of `service`; `env` overrides its settings (another HTTP_PORT, say)."""
        command = [sys.executable, "-m", f"services.{service}"]
        self.supervisor.start(name, self._on_host(name, command), self.service_env(service, name) | env)

    def _on_host(self, name: str, command: list[str]) -> list[str]:
        """`command` run on process `name`'s host, when the stack has a network."""
        host = self.config.host(name)
        return host.command(command) if host else command

    def _create_hosts(self) -> str:
        """A host for each process on a fresh network (whatever a killed run left of it removed first)."""
        self.network.remove()
        self.network.create()
        names = [*self.kafka.nodes, *(["postgres"] if self.postgres else []), *(name for _, name in self.processes())]
        for name in names:
            self.config.host(name).create()
        return (
            f"{len(names)} hosts on bridge {self.network.bridge}, {self.network.subnet}"
            f" (the machine is {self.network.machine}): {', '.join(names)}"
        )

    def processes(self) -> list[tuple[str, str]]:
        """(service, process name) pairs: orders once, the consumers `replicas` times."""
        pairs = [("orders", "orders")]
        for service in ("billing", "notifications"):
            count = self.config.replicas
            pairs += [(service, service if count == 1 else f"{service}-{n}") for n in range(1, count + 1)]
        return pairs

    def stop(self) -> None:
        """Services first, all at once, then Kafka and PostgreSQL; each killed if it overruns its grace."""
        self.stopping.set()
        if self._lock is None:
            return
        began, running = time.monotonic(), bool(self.supervisor.children)
        services = [name for name in self.supervisor.children if name.split("-")[0] not in BACKING]
        self.supervisor.stop(services, SERVICE_GRACE)
        self.supervisor.stop(list(self.supervisor.children), BROKER_GRACE)
        if self.network:
            self.network.remove()
        if running:
            self.supervisor.say(f"stop: everything stopped ({time.monotonic() - began:.1f}s)")
        self.supervisor.close()
        self._lock.close()
        self._lock = None

    def _step(self, name: str, run: Callable[[], str]) -> None:
        """Run one start step and report it: `<step>: <what it did> (<seconds>s)`."""
        if self.stopping.is_set():
            raise Interrupted
        began = time.monotonic()
        what = run()
        self.supervisor.say(f"{name}: {what} ({time.monotonic() - began:.1f}s)")

    def _fetch(self) -> str:
        where = _shown(LIBS.parent)
        what = (
            f"Apache Kafka {VERSION} from Maven Central into {where}"
            if fetch()
            else f"Apache Kafka {VERSION} already in {where}"
        )
        if self.zipkin:
            where = _shown(zipkin.JAR.parent)
            what += f"; Zipkin {zipkin.VERSION} {'from Maven Central into' if zipkin.fetch() else 'already in'} {where}"
        return what

    def start_broker(self, name: str) -> None:
        """Start Kafka's process `name` (kafka, or a node of the cluster: kafka-2, say)."""
        self.supervisor.start(name, self._on_host(name, self.kafka.nodes[name].command()), orphan_signal=signal.SIGKILL)

    def _start_broker(self) -> str:
        self.kafka.prepare()
        for name in self.kafka.nodes:
            self.start_broker(name)
        if not self.kafka.wait_ready(self.stopping):
            raise Interrupted
        if self.kafka.size == 1:
            return f"Apache Kafka {VERSION} on {self.kafka.bootstrap_servers}"
        controllers = ", ".join(str(node.controller_port) for node in self.kafka.nodes.values())
        return (
            f"Apache Kafka {VERSION}, {self.kafka.size} brokers on {self.kafka.bootstrap_servers},"
            f" their controllers one quorum on {controllers}"
        )

    def _start_postgres(self) -> str:
        version = self.postgres.prepare(self.supervisor.say)
        self.supervisor.start(
            "postgres",
            self._on_host("postgres", self.postgres.command()),
            orphan_signal=signal.SIGINT,
            stop_signal=signal.SIGINT,
        )
        if not self.postgres.wait_ready(self.stopping):
            raise Interrupted
        created = self.postgres.create_databases()
        databases = f"created databases {', '.join(created)}" if created else "its databases already there"
        where = f"{self.postgres.listen}:{self.postgres.port}"
        return f"PostgreSQL {version} on {where}, data in {_shown(self.postgres.data)}; {databases}"

    def _wait_for_zipkin(self) -> str:
        if not self.zipkin.wait_ready(self.stopping):
            raise Interrupted
        return f"Zipkin {zipkin.VERSION} on {self.zipkin.url}, the services send it their spans"

    def _start_prometheus(self) -> str:
        binary = prometheus.binary()
        self.prometheus.write_config(self.scrape_targets())
        self.supervisor.start("prometheus", self.prometheus.command(binary))
        if not self.prometheus.wait_ready(self.stopping):
            raise Interrupted
        return (
            f"Prometheus {prometheus.version(binary)} on {self.prometheus.url}, scraping every process"
            f" every {prometheus.SCRAPE_EVERY_S}s, alerts from {_shown(prometheus.ALERTS)}"
        )

    def scrape_targets(self) -> dict[str, dict[str, str]]:
        """Where each process serves /metrics, by service: orders on its HTTP port, each consumer on its own."""
        ports = {"orders": self.config.orders_port} | self.metrics_ports()
        targets: dict[str, dict[str, str]] = {}
        for service, name in self.processes():
            targets.setdefault(service, {})[name] = f"127.0.0.1:{ports[name]}"
        return targets

    def _create_topics(self) -> str:
        topics = {"orders.events": self.config.partitions, "orders.events.dlq": 1, "orders.events.redrive": 1}
        created = self.kafka.ensure_topics(topics)
        if not created:
            return f"{' and '.join(topics)} already there"
        what = "created " + ", ".join(
            f"{name} ({topics[name]} partition{'s' * (topics[name] > 1)})" for name in created
        )
        if self.kafka.size > 1:
            what += f"; each on {self.kafka.size} brokers, a write acknowledged once {self.kafka.min_insync} have it"
        return what

    def _start_services(self) -> str:
        for service, name in self.processes():
            self.start_process(service, name)
        self._wait_for_orders()
        return f"{', '.join(name for _, name in self.processes())}; orders answers on {self.config.orders_url}"

    def _wait_for_orders(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.config.orders_url}/health", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"orders did not answer on {self.config.orders_url} within {timeout:.0f}s;"
                        f" see {self.config.log_dir / 'orders.log'}"
                    ) from None
                if self.stopping.wait(0.2):
                    raise Interrupted from None

    def _report_leftovers(self, left: list[str], seconds: float) -> None:
        home = self.config.home
        if left:
            what = f"stopped {', '.join(left)}, left running in {home} by a stack that was killed"
        else:
            what = f"the last stack in {home} was killed; none of its processes was left running"
        self.supervisor.say(f"cleanup: {what} ({seconds:.1f}s)")

    def _wipe(self) -> None:
        """Empty the data folder; a folder it links to (see devstack.postgres) is emptied where it lives."""
        for path in self.config.home.iterdir():
            if path.name in KEEP:
                continue
            if path.is_symlink():
                shutil.rmtree(path.resolve(), ignore_errors=True)
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(os.getcwd()))
    except ValueError:
        return str(path)
