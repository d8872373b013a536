"""Static checks of docker-compose.yml and the Dockerfile, without Docker."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from devstack.cluster import Cluster
from devstack.postgres import VANISHED_CLIENTS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BUILT = {name: service["build"] for name, service in COMPOSE["services"].items() if "build" in service}
COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.9.1"


def compose_spec_schema() -> dict:
    """The Compose Specification's JSON Schema, as shipped in compose-go (from the Go module proxy)."""
    if shutil.which("go") is None:
        pytest.skip("needs Go to fetch the Compose Specification schema")
    found = subprocess.run(["go", "mod", "download", "-json", COMPOSE_GO], capture_output=True, text=True, check=True)
    return json.loads((Path(json.loads(found.stdout)["Dir"]) / "schema" / "compose-spec.json").read_text())


def test_the_compose_file_follows_the_compose_specification():
    errors = [error.message for error in Draft7Validator(compose_spec_schema()).iter_errors(COMPOSE)]
    assert errors == []


def test_kafka_runs_the_same_version_as_make_run():
    version = (ROOT / "kafka" / "VERSION").read_text().strip()
    images = {service["image"] for service in COMPOSE["services"].values() if "kafka" in service.get("image", "")}
    assert images == {f"apache/kafka:{version}"}


def test_containers_are_named_as_the_brief_expects():
    assert COMPOSE["name"] == "event-driven"
    assert {"orders", "billing", "notifications", "kafka", "topics"} <= set(COMPOSE["services"])


def test_only_loopback_ports_are_published():
    published = [port for service in COMPOSE["services"].values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published


def test_every_long_running_service_has_a_healthcheck_and_restarts():
    for name, service in COMPOSE["services"].items():
        if name != "topics":
            assert "healthcheck" in service and service["restart"] == "unless-stopped", name


def test_every_service_is_built_from_the_one_dockerfile_with_its_name_as_build_argument():
    assert BUILT == {
        name: {"context": ".", "args": {"SERVICE": name}} for name in ("orders", "billing", "notifications")
    }
    assert sorted(path.parent.name for path in ROOT.glob("services/*/__main__.py")) == sorted(BUILT)
    assert not list(ROOT.glob("services/**/Dockerfile"))


@pytest.mark.parametrize("service", sorted(BUILT))
def test_every_copy_source_exists(service):
    sources = [
        source.replace("${SERVICE}", service)
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
        if not source.startswith("--")
    ]
    assert sources and all((ROOT / source).exists() for source in sources), sources


def test_the_dependency_layer_comes_before_the_service_argument_so_the_images_share_it():
    assert DOCKERFILE.index("pip install") < DOCKERFILE.index("ARG SERVICE")


def test_images_run_as_a_non_root_user_with_python_replacing_the_shell():
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.MULTILINE)
    (command,) = [json.loads(line.removeprefix("CMD ")) for line in DOCKERFILE.splitlines() if line.startswith("CMD ")]
    # SIGTERM from `docker stop` must reach python itself, not a shell that would not pass it on
    assert command[:2] != ["sh", "-c"] or command[2].startswith("exec python "), command


SERVICES = ("orders", "billing", "notifications")
POSTGRES = COMPOSE["services"]["postgres"]


def test_postgres_runs_from_the_official_image_with_a_pinned_tag_a_volume_and_a_healthcheck():
    assert re.fullmatch(r"postgres:\d+\.\d+", POSTGRES["image"])
    assert POSTGRES["healthcheck"]["test"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
    assert "postgres-data:/var/lib/postgresql/data" in POSTGRES["volumes"]
    assert "ports" not in POSTGRES  # only the compose network reaches it


def test_each_service_has_its_own_database_created_once_by_the_init_script():
    init = next(volume for volume in POSTGRES["volumes"] if "/docker-entrypoint-initdb.d/" in volume)
    script = (ROOT / init.split(":")[0]).read_text()
    for name in SERVICES:
        url = COMPOSE["services"][name]["environment"]["DATABASE_URL"]
        assert url == f"postgresql://postgres@postgres:5432/{name}"
        assert f"CREATE DATABASE {name};" in script


def test_postgres_ends_a_vanished_clients_session_as_the_local_one_does():
    command = POSTGRES["command"]
    assert command[0] == "postgres"
    settings = dict(option.split("=", 1) for option in command[2::2])
    assert command[1::2] == ["-c"] * len(settings)
    assert settings == VANISHED_CLIENTS


def test_services_wait_for_a_healthy_postgres_and_keep_no_state_in_volumes():
    for name in SERVICES:
        service = COMPOSE["services"][name]
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert "volumes" not in service, name
    assert set(COMPOSE["volumes"]) == {"kafka-data", "postgres-data", "prometheus-data"}
    assert not re.search(r"^VOLUME", DOCKERFILE, re.MULTILINE)


@pytest.mark.parametrize("service", ["billing", "notifications"])
def test_consumers_can_be_scaled(service):
    """`--scale billing=2` needs no fixed name or host port, and no instance id two replicas would share."""
    definition = COMPOSE["services"][service]
    assert not {"container_name", "ports"} & set(definition)
    assert "CONSUMER_INSTANCE_ID" not in definition["environment"]


def test_the_services_export_traces_to_the_zipkin_of_the_traces_profile_and_wait_for_it():
    """Without the profile there is no `zipkin` host, and the services turn
    their exporter off themselves (tests/test_tracing.py)."""
    assert COMPOSE["services"]["zipkin"]["profiles"] == ["traces"]
    assert COMPOSE["services"]["zipkin"]["image"].startswith("openzipkin/zipkin:")
    for name in BUILT:
        environment = COMPOSE["services"][name]["environment"]
        assert environment["OTEL_TRACES_EXPORTER"] == "zipkin", name
        assert environment["OTEL_EXPORTER_ZIPKIN_ENDPOINT"].startswith("http://zipkin:9411/"), name
        assert COMPOSE["services"][name]["depends_on"]["zipkin"] == {"condition": "service_healthy", "required": False}


def test_the_prometheus_of_the_metrics_profile_scrapes_each_service_where_it_serves_metrics_and_loads_the_alerts():
    prometheus = COMPOSE["services"]["prometheus"]
    assert prometheus["profiles"] == ["metrics"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./monitoring/alerts.yml"] == "/etc/prometheus/alerts.yml"
    assert mounts["./monitoring/compose-prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "monitoring" / "compose-prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config file in the container
    scraped = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    served = {
        "orders": COMPOSE["services"]["orders"]["environment"]["HTTP_PORT"],
        "billing": COMPOSE["services"]["billing"]["environment"]["METRICS_PORT"],
        "notifications": COMPOSE["services"]["notifications"]["environment"]["METRICS_PORT"],
    }
    assert {job: (found["names"], found["port"]) for job, found in scraped.items()} == {
        service: ([service], port) for service, port in served.items()
    }


BROKERS3 = yaml.safe_load((ROOT / "docker-compose.brokers3.yml").read_text())
NODES = {"kafka": 1, "kafka-2": 2, "kafka-3": 3}
NAMES_AND_PORTS = {
    "node.id",
    "controller.quorum.bootstrap.servers",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "log.dirs",
}


def test_the_three_broker_override_follows_the_compose_specification():
    errors = [error.message for error in Draft7Validator(compose_spec_schema()).iter_errors(BROKERS3)]
    assert errors == []


def test_the_three_brokers_run_the_same_version_and_publish_loopback_ports_only():
    version = (ROOT / "kafka" / "VERSION").read_text().strip()
    assert {BROKERS3["services"][name]["image"] for name in NODES} == {f"apache/kafka:{version}"}
    published = {name: service["ports"] for name, service in BROKERS3["services"].items() if "ports" in service}
    assert published == {"kafka-2": ["127.0.0.1:9094:9094"], "kafka-3": ["127.0.0.1:9096:9096"]}


def test_the_three_brokers_are_the_cluster_make_run_starts():
    """Each node's KAFKA_* settings agree with what devstack.cluster writes, but for
    names and ports; the initial controllers name each node's controller once."""
    local = Cluster(ROOT / ".run").nodes["kafka-2"].properties().splitlines()
    local = dict(line.split("=", 1) for line in local if line and not line.startswith("#"))
    for name, node_id in NODES.items():
        environment = BROKERS3["services"][name]["environment"]
        settings = {key[6:].lower().replace("_", "."): str(value) for key, value in environment.items()}
        assert settings["node.id"] == str(node_id)
        assert f"CONTROLLER://{name}:9093" in settings["advertised.listeners"]
        shared = (set(local) & set(settings)) - NAMES_AND_PORTS
        assert {key: settings[key] for key in shared} == {key: local[key] for key in shared}, name
        assert {
            key: settings[key]
            for key in ("default.replication.factor", "min.insync.replicas", "transaction.state.log.min.isr")
        } == {"default.replication.factor": "3", "min.insync.replicas": "2", "transaction.state.log.min.isr": "2"}
        assert settings["controller.quorum.bootstrap.servers"] == "kafka:9093,kafka-2:9093,kafka-3:9093"
        voters = [entry.rsplit(":", 1)[0] for entry in environment["INITIAL_CONTROLLERS"].split(",")]
        assert voters == ["1@kafka:9093", "2@kafka-2:9093", "3@kafka-3:9093"]


def test_with_three_brokers_every_service_knows_all_three_and_the_topics_wait_for_them():
    for name in SERVICES:
        servers = BROKERS3["services"][name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
        assert servers == "kafka:19092,kafka-2:19092,kafka-3:19092", name
    topics = BROKERS3["services"]["topics"]
    assert set(topics["depends_on"]) == {"kafka-2", "kafka-3"}  # and kafka, as docker-compose.yml says
    assert "--replication-factor 3 --config min.insync.replicas=2" in topics["command"][0]
