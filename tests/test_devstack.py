"""The local stack owns its processes: a folder lock, free ports, leftovers
stopped, children that die with the supervisor, services that stop in time.
Real processes and sockets on 127.0.0.1; no broker."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from devstack import StartFailed, claim, prometheus, zipkin
from devstack.stack import Stack, StackConfig
from devstack.supervisor import Supervisor
from eventbus.settings import Env

ROOT = Path(__file__).resolve().parent.parent


def until(condition, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_second_stack_on_a_folder_is_refused_naming_the_first(tmp_path):
    held = claim.lock_folder(tmp_path)
    with pytest.raises(StartFailed) as refused:
        claim.lock_folder(tmp_path)
    assert f"a stack already runs from {tmp_path}: pid {os.getpid()}" in str(refused.value)
    assert f"kill {os.getpid()}" in str(refused.value)
    held.close()
    claim.lock_folder(tmp_path).close()


def test_a_taken_port_is_refused_naming_the_pid_that_holds_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StartFailed) as refused:
            claim.check_ports({port: "orders"}, "use other ports")
    assert str(refused.value).startswith(f"port {port} (orders) is taken by pid {os.getpid()} (")
    assert f"kill {os.getpid()}, or use other ports" in str(refused.value)
    claim.check_ports({port: "orders"}, "use other ports")


def test_what_a_killed_stack_left_is_stopped_and_named_even_when_frozen(tmp_path):
    left, other = sleeper(), sleeper()
    os.kill(left.pid, signal.SIGSTOP)
    pid_file = tmp_path / "pids.json"
    pid_file.write_text(
        json.dumps(
            {
                "orders": [left.pid, psutil.Process(left.pid).create_time()],
                "billing": [other.pid, 12345.0],  # the pid now belongs to another process: left alone
            }
        )
    )
    assert claim.stop_leftovers(pid_file) == [f"orders (pid {left.pid})"]
    assert left.wait(5) is not None and other.poll() is None
    assert not pid_file.exists()
    assert claim.stop_leftovers(pid_file) is None
    other.kill()
    other.wait()


def test_a_zombie_left_by_a_killed_stack_is_not_a_leftover(tmp_path):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(exited.pid).create_time()
    deadline = time.monotonic() + 10
    while psutil.Process(exited.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.05)
    pid_file = tmp_path / "pids.json"
    pid_file.write_text(json.dumps({"billing": [exited.pid, started]}))
    assert claim.stop_leftovers(pid_file) == []
    exited.wait()


def test_a_child_that_exits_for_a_bad_setting_is_not_restarted(tmp_path):
    supervisor = Supervisor(tmp_path, echo=False, pid_file=tmp_path / "pids.json")
    supervisor.start("bad", [sys.executable, "-c", "raise SystemExit(78)"])
    supervisor.start("dies", [sys.executable, "-c", "raise SystemExit(3)"])
    until(lambda: "bad" not in supervisor.children and supervisor.children["dies"].restarts >= 1)
    supervisor.stop(list(supervisor.children))
    supervisor.close()
    log = (tmp_path / "devstack.log").read_text()
    assert "bad exited: a setting is wrong (its line above says which); not restarting it" in log
    assert "dies exited with code 3; restarting it" in log


def test_children_stop_with_the_supervisor_and_are_listed_in_its_pid_file(tmp_path):
    supervisor = Supervisor(tmp_path, echo=False, pid_file=tmp_path / "pids.json")
    supervisor.start("a", [sys.executable, "-c", "import time; time.sleep(60)"])
    ignores_sigterm = "import signal, time; signal.signal(15, signal.SIG_IGN); print('ready'); time.sleep(60)"
    supervisor.start("b", [sys.executable, "-c", ignores_sigterm])
    until(lambda: (tmp_path / "b.log").exists() and "ready" in (tmp_path / "b.log").read_text())
    pids = {name: pid for name, (pid, _) in json.loads((tmp_path / "pids.json").read_text()).items()}
    assert set(pids) == {"a", "b"}
    began = time.monotonic()
    supervisor.stop(["a", "b"], grace=1.0)
    supervisor.close()
    assert time.monotonic() - began < 5
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids.values())
    assert "b did not stop within 1s of SIGTERM; killing it" in (tmp_path / "devstack.log").read_text()
    assert not (tmp_path / "pids.json").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_children_die_when_the_supervisor_is_killed(tmp_path):
    program = textwrap.dedent(
        f"""
        import signal, sys, time
        from pathlib import Path
        from devstack.supervisor import Supervisor
        supervisor = Supervisor(Path({str(tmp_path)!r}), echo=False)
        for name, orphan_signal in (("service", signal.SIGTERM), ("kafka", signal.SIGKILL)):
            supervisor.start(name, [sys.executable, "-c", "import time; time.sleep(60)"], orphan_signal=orphan_signal)
        print(*(child.process.pid for child in supervisor.children.values()), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    children = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
    parent.kill()
    parent.wait()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


@pytest.mark.parametrize("service", ["orders", "billing"])
def test_a_service_stops_within_5_seconds_of_sigterm_with_the_broker_hung(service, tmp_path):
    """The broker accepts connections and never answers, as a frozen one does."""
    with socket.socket() as hung_broker:
        hung_broker.bind(("127.0.0.1", 0))
        hung_broker.listen(64)
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            http_port = spare.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env={
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{hung_broker.getsockname()[1]}",
                "DATA_DIR": str(tmp_path),
                "HTTP_PORT": str(http_port),
                "PYTHONUNBUFFERED": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert f"{service} started" in process.stdout.readline()
        time.sleep(1)  # let its consumer and relay get stuck on the broker
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert time.monotonic() - began < 5, process.stdout.read()


def test_with_traces_the_services_send_their_spans_to_the_stacks_zipkin_and_each_consumer_has_a_metrics_port(tmp_path):
    stack = Stack(StackConfig(home=tmp_path, replicas=2, traces=True, zipkin_port=9511, metrics_port=9201))
    envs = {name: stack.service_env(service, name) for service, name in stack.processes()}
    assert {name: env["METRICS_PORT"] for name, env in envs.items()} == {
        "orders": "",
        "billing-1": "9201",
        "billing-2": "9202",
        "notifications-1": "9203",
        "notifications-2": "9204",
    }
    assert envs["billing-1"]["OTEL_TRACES_EXPORTER"] == "zipkin"
    assert envs["billing-1"]["OTEL_EXPORTER_ZIPKIN_ENDPOINT"] == "http://127.0.0.1:9511/api/v2/spans"
    assert envs["orders"]["TRACE_VIEW"] == "http://127.0.0.1:9511/zipkin/traces/{traceId}"


def test_without_traces_no_zipkin_runs_and_no_exporter_is_set(tmp_path):
    stack = Stack(StackConfig(home=tmp_path))
    assert stack.zipkin is None
    assert "OTEL_TRACES_EXPORTER" not in stack.service_env("billing", "billing")


def test_zipkin_listens_on_the_loopback_interface_only():
    command = zipkin.Zipkin(port=9511).command()
    assert "--armeria.ports[0].ip=127.0.0.1" in command
    assert "--armeria.ports[0].port=9511" in command


def test_with_metrics_prometheus_scrapes_every_process_of_the_stack_and_evaluates_the_alert_rules(tmp_path):
    stack = Stack(StackConfig(home=tmp_path, orders_port=5102, replicas=2, metrics=True, metrics_port=9201))
    stack.prometheus.write_config(stack.scrape_targets())
    config = json.loads(stack.prometheus.config.read_text().split("\n", 1)[1])  # after its comment line
    scraped = {
        job["job_name"]: {target["labels"]["process"]: target["targets"] for target in job["static_configs"]}
        for job in config["scrape_configs"]
    }
    assert scraped == {
        "orders": {"orders": ["127.0.0.1:5102"]},
        "billing": {"billing-1": ["127.0.0.1:9201"], "billing-2": ["127.0.0.1:9202"]},
        "notifications": {"notifications-1": ["127.0.0.1:9203"], "notifications-2": ["127.0.0.1:9204"]},
    }
    assert config["rule_files"] == [str(ROOT / "monitoring" / "alerts.yml")]
    assert config["global"]["scrape_interval"] == "5s"


def test_prometheus_listens_on_the_loopback_interface_only_and_keeps_its_data_in_the_stacks_folder(tmp_path):
    command = prometheus.Prometheus(tmp_path / "prometheus", port=9190).command("prometheus")
    assert "--web.listen-address=127.0.0.1:9190" in command
    assert f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}" in command


def test_without_prometheus_on_path_a_stack_with_metrics_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StartFailed, match="make prometheus installs Debian's prometheus package"):
        Stack(StackConfig(home=tmp_path, metrics=True)).check_settings(Env({}))
