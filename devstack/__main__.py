"""`python -m devstack run` runs the stack in the foreground until Ctrl-C or
SIGTERM; `python -m devstack fetch` only downloads Kafka."""

import argparse
import signal
import threading

from devstack.kafka import fetch
from devstack.stack import Stack, StackConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="devstack")
    parser.add_argument("command", choices=["run", "fetch"])
    if parser.parse_args().command == "fetch":
        fetch()
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = Stack(StackConfig.from_env())
    try:
        stack.start()
        while not stop.wait(1.0):
            pass
    finally:
        stack.stop()


main()
