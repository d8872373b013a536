"""`python -m devstack run` runs the stack in the foreground until Ctrl-C,
SIGTERM or SIGHUP (the terminal closed), then stops it in order; it stops it
too when its parent (`make`) dies. `python -m devstack fetch` only downloads
Kafka. `python -m devstack rebuild` rebuilds the order page's read model of
the stack that runs (see services.orders.rebuild).

A bad setting ends it with one line and exit code 78, a stack or port in the
way with one line and exit code 1, before anything has started."""

import argparse
import signal
import sys
import time
from dataclasses import replace

from confluent_kafka import KafkaException

from devstack import StartFailed
from devstack.kafka import VERSION, fetch
from devstack.stack import Interrupted, Stack, StackConfig
from devstack.supervisor import die_with_parent
from eventbus.service import stop_on_signals
from eventbus.settings import EX_CONFIG, SettingError, checked
from eventbus.store import StoreUnavailable
from services.orders.rebuild import rebuild

EXAMPLE = """curl -X POST {url}/orders -H 'Content-Type: application/json' -d '{{"userId":1,"itemId":2,"qty":1}}'"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="devstack")
    parser.add_argument("command", choices=["run", "fetch", "rebuild"])
    command = parser.parse_args().command
    if command == "fetch":
        return _fetch()
    if command == "rebuild":
        return _rebuild()
    stack = Stack(checked(StackConfig.from_env))
    stop_on_signals(stack.stopping, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    die_with_parent()  # `make` killed: SIGTERM, and the stack stops in order
    try:
        stack.start()
        stack.supervisor.say(f"ready: {EXAMPLE.format(url=stack.config.orders_url)}  (Ctrl-C stops everything)")
        while not stack.stopping.wait(1.0):
            pass
    except SettingError as error:
        return _fail(error, EX_CONFIG)
    except StartFailed as error:
        return _fail(error, 1)
    except Interrupted:
        pass
    finally:
        stack.stop()
    return 0


def _fetch() -> int:
    began = time.monotonic()
    try:
        what = "fetched from Maven Central" if fetch() else "already fetched"
    except StartFailed as error:
        return _fail(error, 1)
    print(f"fetch: Apache Kafka {VERSION} {what} ({time.monotonic() - began:.1f}s)", flush=True)
    return 0


def _rebuild() -> int:
    """Orders' read model, where the stack `make run` starts keeps it."""
    config = checked(StackConfig.from_env)
    settings = replace(config.service_settings("orders"), bootstrap_servers=config.kafka.bootstrap_servers)
    try:
        rebuild(settings, lambda text: print(text, flush=True))
    except (KafkaException, StoreUnavailable) as error:
        return _fail(f"rebuild: {error}; the live read model is as it was", 1)
    return 0


def _fail(error: Exception, code: int) -> int:
    print(error, file=sys.stderr, flush=True)
    return code


sys.exit(main())
