"""Hooks for the acceptance run.

By default the whole local stack (a real Kafka broker and the three services)
is started once for the run, on ports of its own with fresh data, and stopped
at the end. To run against a stack that is already up (make run, compose),
name it: ORDERS_URL, KAFKA_BOOTSTRAP_SERVERS and SERVICE_LOGS (a folder of
<service>.log files, or a command with {service} in it), and ZIPKIN_URL when
its services send their spans to a Zipkin.
"""

import itertools
import os
import shutil
from pathlib import Path

from behave import fixture, use_fixture
from behave.model_core import Status

from devstack.stack import Stack, StackConfig, read_brokers, read_network, read_store
from eventbus.settings import checked, env_int
from features.browser import SCREENSHOTS, chromium
from features.driver import Driver, Logs
from features.evidence import events_table
from features.faults import Faults
from features.lifecycle import Place, kill_all
from features.netfaults import table
from features.observability import Metrics, Prometheus, Zipkin

LIFECYCLE_PLACES = itertools.count(1)  # each @lifecycle scenario gets a folder and ports of its own

# -- FIXTURES --


@fixture
def local_stack(context):
    offset = env_int("PORT_OFFSET", 0)  # lets several checkouts test side by side
    # NETWORK=<n> (make netfaults): each process on a host of its own. Zipkin and Prometheus
    # would listen on the machine's loopback, which no host reaches: neither runs then.
    network = checked(read_network)
    config = StackConfig(
        home=Path(".run/test"),
        kafka_port=19092 + offset,
        controller_port=19093 + offset,
        orders_port=15002 + offset,
        replicas=2,
        brokers=checked(read_brokers),  # BROKERS=3 (make cluster): three Kafka brokers, for @brokers3
        store=checked(read_store),  # STORE=postgres: the services keep their state on a PostgreSQL of the stack's
        postgres_port=15432 + offset,
        traces=network is None,  # the services send their spans to a Zipkin of the test stack's own
        zipkin_port=19411 + offset,
        metrics_port=19101 + offset,
        metrics=network is None,  # and a Prometheus of its own scrapes them, evaluating monitoring/alerts.yml
        prometheus_port=19090 + offset,
        network=network,
    )
    os.environ.setdefault(
        "MAILER_FAILURE_RATE", "0.2"
    )  # the services inherit it: one send in five fails, and is retried
    stack = Stack(config, echo=False, fresh=True)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@fixture
def lifecycle_place(context, number: int):
    """A data folder and ports for one @lifecycle scenario; whatever it started is
    killed afterwards, should the scenario have failed before it stopped it."""
    context.place = Place.number(number, env_int("PORT_OFFSET", 0))
    shutil.rmtree(context.place.home, ignore_errors=True)
    context.terminals, context.processes, context.cleanups, context.orders = [], [], [], []
    yield context.place
    for terminal in context.terminals:
        context.processes += terminal.processes()
    kill_all(context.processes + list(context.place.children().values()))
    for cleanup in context.cleanups:
        cleanup()


@fixture
def driver(context, orders_url: str, bootstrap_servers: str, logs: str):
    context.driver = Driver(orders_url, bootstrap_servers, Logs(logs))
    context.driver.topic.caught_up()  # what was on the topics before the run is no scenario's doing
    yield context.driver
    context.driver.close()


@fixture
def browser(context):
    context.browser = chromium()
    yield context.browser
    context.browser.quit()


# -- HOOKS --


def before_all(context):
    context.spec = next((f for f in context._runner.formatters if f.name == "html-pretty"), None)
    if os.environ.get("ORDERS_URL"):
        use_fixture(
            driver,
            context,
            os.environ["ORDERS_URL"],
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            os.environ.get("SERVICE_LOGS", ".run/logs"),
        )
        if os.environ.get("ZIPKIN_URL"):
            context.zipkin = Zipkin(os.environ["ZIPKIN_URL"])
        return
    stack = use_fixture(local_stack, context)
    use_fixture(driver, context, stack.config.orders_url, stack.kafka.bootstrap_servers, str(stack.config.log_dir))
    context.faults = Faults(stack, context.driver)
    if stack.network:
        return
    context.zipkin = Zipkin(stack.zipkin.url)
    context.prometheus = Prometheus(stack.prometheus.url)
    context.metrics = Metrics(
        {
            "orders": [f"{stack.config.orders_url}/metrics"],
            **{
                service: [
                    f"http://127.0.0.1:{port}/metrics"
                    for name, port in stack.metrics_ports().items()
                    if name.startswith(service)
                ]
                for service in ("billing", "notifications")
            },
        }
    )


def before_tag(context, tag):
    if tag == "browser":
        use_fixture(browser, context)


def before_scenario(context, scenario):
    context.events_before = context.driver.topic.count()
    if "traces" in scenario.effective_tags and not hasattr(context, "zipkin"):
        scenario.skip("traces are read from a Zipkin: the local stack's, or ZIPKIN_URL's")
        return
    if "metrics" in scenario.effective_tags and not hasattr(context, "metrics"):
        scenario.skip("metrics are read from the local stack, which this run did not start")
        return
    if "faults" in scenario.effective_tags:
        if not hasattr(context, "faults"):
            scenario.skip("fault injection needs the local stack, which this run did not start")
            return
        context.faults.kills = {}
    if "local_stack" in scenario.effective_tags and not hasattr(context, "faults"):
        scenario.skip("it restarts services and reads their stores: the local stack's, which this run did not start")
        return
    if "multihost" in scenario.effective_tags:
        if not hasattr(context, "faults") or context.faults.stack.config.store != "postgres":
            scenario.skip("hosts sharing only a database need the local stack on PostgreSQL (make multihost)")
            return
        context.faults.kills = {}
    if "brokers3" in scenario.effective_tags:
        if not hasattr(context, "faults") or context.faults.stack.config.brokers != 3:
            scenario.skip("a broker of three is killed on the local stack with three brokers (make cluster)")
            return
        context.faults.kills = {}
    if "netfaults" in scenario.effective_tags:
        if not hasattr(context, "faults") or context.faults.stack.network is None:
            scenario.skip("hosts of their own need the local stack on a network, as root (make netfaults)")
            return
        context.faults.kills = {}
    if "lifecycle" in scenario.effective_tags:
        if os.environ.get("ORDERS_URL"):
            scenario.skip("the lifecycle of make run is shown on local stacks, not on the one named by ORDERS_URL")
            return
        use_fixture(lifecycle_place, context, next(LIFECYCLE_PLACES))


def after_step(context, step):
    if step.status == Status.failed and hasattr(context, "browser"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"failed-{context.scenario.name[:60].replace(' ', '-')}.png"
        context.browser.save_screenshot(str(path))
        print(f"screenshot of the failure: {path}")


def after_all(context):
    """On a network, the figures of each fault: make netfaults prints them."""
    if hasattr(context, "faults") and context.faults.stack.network:
        print(table(context.faults.stack.config.home / "fault-figures.jsonl"), flush=True)


def after_scenario(context, scenario):
    """Attach to the spec report the events the scenario caused on the topics."""
    if context.spec is None:
        return
    events = context.driver.topic.since(context.events_before)
    caption = f"Events this scenario caused on the topics: {len(events)}"
    context.spec.embed("text/html", events_table(events) if events else "none", caption)
