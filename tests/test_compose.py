"""Static checks of docker-compose.yml and the Dockerfiles, without Docker."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
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
    published = {name: service["ports"] for name, service in COMPOSE["services"].items() if "ports" in service}
    assert published == {"kafka": ["127.0.0.1:9092:9092"], "orders": ["127.0.0.1:5002:5002"]}


def test_every_long_running_service_has_a_healthcheck_and_restarts():
    for name, service in COMPOSE["services"].items():
        if name != "topics":
            assert "healthcheck" in service and service["restart"] == "unless-stopped", name


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_every_copy_source_exists(dockerfile):
    sources = [
        source
        for line in dockerfile.read_text().splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
        if not source.startswith("--")
    ]
    assert sources and all((ROOT / source).exists() for source in sources), sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_images_run_as_a_non_root_user_with_an_exec_form_command(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
    assert re.search(r'^CMD \["python", "-m", "services\.\w+"\]', text, re.MULTILINE)
