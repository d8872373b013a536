"""`make tail`: the events on orders.events and its dead-letter topic as they
arrive, one line each, coloured by type; dead letters in red with their reason.

    python -m devstack.tail [--order 42] [--type PaymentCaptured] [--from beginning]

It reads as a bystander (see devstack.topic), so it can watch any stack:
make run, make up, or whatever KAFKA_BOOTSTRAP_SERVERS names.
"""

import argparse
import signal
import threading
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import KafkaException
from rich.console import Console
from rich.text import Text

from devstack.topic import Seen, arrived, reader, seen
from eventbus.contracts import EVENT_TYPES
from eventbus.settings import Settings

COLOURS = {
    "OrderCreated": "cyan",
    "PaymentCaptured": "green",
    "EmailSent": "magenta",
    "PaymentDeclined": "red",  # the saga: where an order stopped, in red as on the order page
    "OrderCancelled": "bright_red",
    "PaymentRefunded": "bright_blue",
}
UNKNOWN_COLOUR = "yellow"
DEAD_LETTER = "bold red"
ANSWER_S = 1.0  # how long to wait for the broker to answer, so that Ctrl-C is not kept waiting


@dataclass(frozen=True)
class Filter:
    """Which events to show: one order's, one type's, or all (None)."""

    order: int | None = None
    event_type: str | None = None

    def wants(self, message: Seen) -> bool:
        return (self.order is None or message.key == str(self.order)) and (
            self.event_type is None or message.type == self.event_type
        )


def line(message: Seen) -> Text:
    """One event as one line: time, type, order, short ce_id, trace id, payload fields."""
    time = datetime.fromtimestamp(message.timestamp / 1000).strftime("%H:%M:%S.%f")[:-3]
    dead = message.reason is not None
    colour = DEAD_LETTER if dead else COLOURS.get(message.type or "", UNKNOWN_COLOUR)
    text = Text(f"{time}  ", style="dim")
    if dead:
        text.append("DEAD LETTER ", style=DEAD_LETTER)
    text.append(f"{message.type or '(no type)':<16}", style=f"bold {colour}")
    text.append(f" order {message.key or '-':<6}")
    text.append(f" ce {(message.id or '-')[:8]:<8}", style="dim")
    text.append(f" trace {message.trace_id or '-'} ", style="dim")
    if dead:
        text.append(f"reason: {message.reason} ", style=DEAD_LETTER)
    text.append(fields(message), style=DEAD_LETTER if dead else "")
    return text


def fields(message: Seen) -> str:
    """The payload's fields as name=value, the orderId left out (the line shows it);
    a value that is not a JSON object, as it came."""
    if message.payload is None:
        return repr(message.value)
    return " ".join(f"{name}={value}" for name, value in message.payload.items() if name != "orderId")


def main(argv: list[str] | None = None) -> None:
    defaults = Settings.from_env("tail")
    parser = argparse.ArgumentParser(prog="make tail", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers)
    parser.add_argument("--order", type=int, help="only this orderId")
    parser.add_argument("--type", choices=sorted(EVENT_TYPES), help="only this event type")
    parser.add_argument("--from", dest="start", choices=["end", "beginning"], default="end")
    args = parser.parse_args(argv)
    wanted = Filter(args.order, args.type)
    topics = (defaults.topic, defaults.dead_letter_topic)
    console = Console(highlight=False, soft_wrap=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends the loop below, not some call inside Kafka's client
        signal.signal(signum, lambda *_: stop.set())
    consumer = _open(args.bootstrap_servers, topics, args.start == "beginning", stop, console)
    if consumer is None:
        return
    where = "from the beginning" if args.start == "beginning" else "from now on"
    console.print(f"Watching {' and '.join(topics)} on {args.bootstrap_servers}, {where}. Ctrl-C stops.")
    try:
        while not stop.is_set():
            for message in map(seen, arrived(consumer, 0.2)):
                if wanted.wants(message):
                    console.print(line(message))
    finally:
        consumer.close()
    console.print("Stopped.", style="dim")


def _open(bootstrap_servers: str, topics: tuple[str, ...], from_beginning: bool, stop, console: Console):
    """A reader on every partition of `topics`, once the broker answers and the topics
    exist; None when stopped before."""
    waiting = False
    while not stop.is_set():
        try:
            consumer = reader(bootstrap_servers, topics, from_beginning, timeout=ANSWER_S)
            if {partition.topic for partition in consumer.assignment()} == set(topics):
                return consumer
            consumer.close()
        except KafkaException:
            pass  # no broker there yet
        if not waiting:
            console.print(f"Waiting for the topics {', '.join(topics)} on {bootstrap_servers}...", style="dim")
            waiting = True
        stop.wait(1.0)
    return None


if __name__ == "__main__":
    main()
