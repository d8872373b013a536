"""`make run BROKERS=3`: each node's configuration, the one identity every
node's storage is formatted with, and the ports the stack claims. No Java:
formatting is replaced by a fake that writes what Kafka's own format would."""

import signal
import sys

import pytest

from devstack import StartFailed
from devstack.cluster import IDENTITY, Cluster
from devstack.kafka import Broker
from devstack.stack import Stack, StackConfig
from devstack.supervisor import Supervisor
from eventbus.settings import Env, SettingError


def properties(node: Broker) -> dict[str, str]:
    return dict(line.split("=", 1) for line in node.properties().splitlines() if line and not line.startswith("#"))


@pytest.fixture
def formats(monkeypatch) -> list[tuple[int, tuple[str, ...]]]:
    """(node id, format arguments) of each format, which leaves the node formatted."""
    done = []

    def format(node: Broker, *arguments: str) -> None:
        done.append((node.node_id, arguments))
        (node.home / "data").mkdir(parents=True, exist_ok=True)
        (node.home / "data" / "meta.properties").write_text(f"node.id={node.node_id}\n")

    monkeypatch.setattr(Broker, "format", format)
    return done


def test_each_node_is_broker_and_controller_on_ports_of_its_own_with_a_folder_of_its_own(tmp_path):
    nodes = Cluster(tmp_path, port=15092, controller_port=15093).nodes
    assert list(nodes) == ["kafka-1", "kafka-2", "kafka-3"]
    seen = {name: properties(node) for name, node in nodes.items()}
    assert {name: each["node.id"] for name, each in seen.items()} == {"kafka-1": "1", "kafka-2": "2", "kafka-3": "3"}
    assert seen["kafka-2"]["listeners"] == "PLAINTEXT://127.0.0.1:15094,CONTROLLER://127.0.0.1:15095"
    assert seen["kafka-3"]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:15096"
    assert seen["kafka-3"]["log.dirs"] == str(tmp_path / "kafka-3" / "data")
    for each in seen.values():
        assert each["process.roles"] == "broker,controller"
        assert each["controller.quorum.bootstrap.servers"] == "127.0.0.1:15093,127.0.0.1:15095,127.0.0.1:15097"
        assert "controller.quorum.voters" not in each  # a dynamic quorum: formatted with its initial controllers


def test_every_topic_is_kept_on_three_brokers_and_a_write_needs_two_of_them(tmp_path):
    cluster = Cluster(tmp_path)
    for node in cluster.nodes.values():
        each = properties(node)
        assert {
            key: each[key]
            for key in (
                "default.replication.factor",
                "min.insync.replicas",
                "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr",
                "unclean.leader.election.enable",
                "log.retention.ms",
                "auto.create.topics.enable",
            )
        } == {
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "unclean.leader.election.enable": "false",
            "log.retention.ms": "-1",
            "auto.create.topics.enable": "false",
        }
        assert "-Xmx320m" in node.command()
    assert (cluster.size, cluster.min_insync) == (3, 2)
    assert cluster.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"


def test_the_single_broker_is_its_own_quorum_and_keeps_one_copy(tmp_path):
    broker = Broker(tmp_path / "kafka")
    each = properties(broker)
    assert each["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert "controller.quorum.bootstrap.servers" not in each
    assert (each["offsets.topic.replication.factor"], each["min.insync.replicas"]) == ("1", "1")
    assert list(broker.nodes) == ["kafka"]


def test_the_initial_controllers_name_each_node_its_controller_and_its_directory(tmp_path):
    cluster = Cluster(tmp_path, port=15092, controller_port=15093)
    assert cluster.initial_controllers(["dirA", "dirB", "-dirC"]) == (
        "1@127.0.0.1:15093:dirA,2@127.0.0.1:15095:dirB,3@127.0.0.1:15097:-dirC"
    )


def test_every_node_is_formatted_with_the_same_cluster_id_and_initial_controllers(tmp_path, formats):
    Cluster(tmp_path).prepare()
    assert [node for node, _ in formats] == [1, 2, 3]
    assert len({arguments for _, arguments in formats}) == 1
    cluster_id, controllers = formats[0][1]
    identity = (tmp_path / IDENTITY).read_text()
    assert f"cluster.id={cluster_id}\n" in identity
    assert f"initial.controllers={controllers.removeprefix('--initial-controllers=')}\n" in identity
    directories = [entry.rsplit(":", 1)[1] for entry in controllers.split(",")]
    assert len(set(directories)) == 3 and all(len(directory) == 22 for directory in directories)  # Kafka's uuids


def test_a_node_whose_format_was_cut_short_is_formatted_as_the_others_were(tmp_path, formats):
    cluster = Cluster(tmp_path)
    cluster.prepare()
    (tmp_path / "kafka-2" / "data" / "meta.properties").unlink()
    cluster.prepare()
    assert [node for node, _ in formats] == [1, 2, 3, 2]
    assert formats[3][1] == formats[1][1]


def test_a_cluster_started_on_other_controller_ports_than_it_was_made_with_is_refused(tmp_path, formats):
    Cluster(tmp_path).prepare()
    with pytest.raises(StartFailed) as refused:
        Cluster(tmp_path, port=19092, controller_port=19093).prepare()
    assert "has its controllers at 1@127.0.0.1:9093, 2@127.0.0.1:9095, 3@127.0.0.1:9097" in str(refused.value)
    assert "make clean" in str(refused.value)


def test_brokers_3_gives_the_services_all_three_and_the_stack_claims_every_port(tmp_path):
    config = StackConfig.from_env(Env({"BROKERS": "3", "STACK_DIR": str(tmp_path), "KAFKA_PORT": "15092"}))
    stack = Stack(config)
    assert stack.service_env("billing", "billing")["KAFKA_BOOTSTRAP_SERVERS"] == (
        "127.0.0.1:15092,127.0.0.1:15094,127.0.0.1:15096"
    )
    assert {node.controller_port for node in stack.kafka.nodes.values()} == {9093, 9095, 9097}
    stack.supervisor.close()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BROKERS": "2"}, "BROKERS must be 1 (one Kafka broker) or 3 (a cluster of three), got '2'"),
        (
            {"BROKERS": "3", "KAFKA_CONTROLLER_PORT": "9094"},
            "KAFKA_CONTROLLER_PORT must be a port of its own (with BROKERS=3, node n takes KAFKA_PORT+2(n-1)"
            " and KAFKA_CONTROLLER_PORT+2(n-1)), got '9094'",
        ),
        (
            {"BROKERS": "3", "ORDERS_PORT": "9096"},
            "ORDERS_PORT must be a port other than KAFKA_PORT's (with BROKERS=3, node n takes KAFKA_PORT+2(n-1)"
            " and KAFKA_CONTROLLER_PORT+2(n-1)), got '9096'",
        ),
        ({"BROKERS": "3", "KAFKA_PORT": "65534"}, "KAFKA_PORT must be at most 65531 with BROKERS=3, got '65534'"),
    ],
)
def test_ports_the_cluster_cannot_have_are_refused(environ, message):
    with pytest.raises(SettingError) as refused:
        StackConfig.from_env(Env(environ))
    assert str(refused.value) == message


def test_a_killed_child_stays_down(tmp_path):
    supervisor = Supervisor(tmp_path, echo=False, pid_file=tmp_path / "pids.json")
    child = supervisor.start("kafka-2", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.kill("kafka-2")
    assert child.process.returncode == -signal.SIGKILL
    assert "kafka-2" not in supervisor.children and (tmp_path / "pids.json").read_text() == "{}"
    supervisor.close()
