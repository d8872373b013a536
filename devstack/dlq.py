"""`make dlq`: the dead letters on orders.events.dlq, one line each: when, which
service set it aside and why, where it came from (topic, partition, offset),
its event type and order, and the first bytes of what it carried.

    python -m devstack.dlq [--service billing] [--reason contract] [--json]

It reads the dead-letter topic as a bystander (see devstack.topic) from its
start up to its end as of now, then stops: a listing, not a tail.
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaException

from devstack.topic import Seen, arrived, end_offsets, reader, seen
from eventbus.settings import Settings

PAYLOAD_SHOWN = 60  # characters of the payload a line shows
ANSWER_S = 10.0


@dataclass(frozen=True)
class DeadLetter:
    at: str  # when it reached the dead-letter topic, UTC
    service: str
    reason: str
    topic: str  # where it was read from
    partition: int
    offset: int
    type: str | None
    order: str | None
    payload: str  # its first PAYLOAD_SHOWN characters
    dlq_partition: int  # where it is on the dead-letter topic
    dlq_offset: int

    @classmethod
    def of(cls, message: Seen) -> "DeadLetter":
        headers = message.headers
        return cls(
            at=datetime.fromtimestamp(message.timestamp / 1000, UTC).isoformat(timespec="milliseconds"),
            service=headers.get("dlq_service", "?"),
            reason=headers.get("dlq_reason", "?"),
            topic=headers.get("dlq_topic", "?"),
            partition=int(headers.get("dlq_partition", -1)),
            offset=int(headers.get("dlq_offset", -1)),
            type=message.type,
            order=message.key,
            payload=message.value[:PAYLOAD_SHOWN],
            dlq_partition=message.partition,
            dlq_offset=message.offset,
        )


@dataclass(frozen=True)
class Filter:
    """Which dead letters to list: one service's, those whose reason says something, or all (None)."""

    service: str | None = None
    reason: str | None = None

    def wants(self, letter: DeadLetter) -> bool:
        return (self.service is None or letter.service == self.service) and (
            self.reason is None or self.reason.lower() in letter.reason.lower()
        )


def line(letter: DeadLetter) -> str:
    came_from = f"{letter.topic}[{letter.partition}]@{letter.offset}"
    return (
        f"{letter.at}  {letter.service:<13} {letter.type or '(no type)':<16} order {letter.order or '-':<6} "
        f"from {came_from}  reason: {letter.reason}  payload: {letter.payload!r}"
    )


def read_all(consumer: Consumer, ends: dict[tuple[str, int], int]) -> list[Seen]:
    """Every message up to `ends` (each partition's end offset as of the start)."""
    left = {partition: end for partition, end in ends.items() if end > 0}
    found: list[Seen] = []
    while left:
        batch = arrived(consumer, ANSWER_S)
        if not batch:
            raise KafkaException(f"the dead-letter topic stopped answering with {sum(left.values())} left to read")
        for message in map(seen, batch):
            found.append(message)
            if message.offset + 1 >= left.get((message.topic, message.partition), 0):
                left.pop((message.topic, message.partition), None)
    return sorted(found, key=lambda message: (message.timestamp, message.partition, message.offset))


def dead_letters(bootstrap_servers: str, topic: str) -> list[DeadLetter]:
    consumer = reader(bootstrap_servers, (topic,), from_beginning=True, timeout=ANSWER_S)
    try:
        return [DeadLetter.of(message) for message in read_all(consumer, end_offsets(consumer, consumer.assignment()))]
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    defaults = Settings.from_env("dlq")
    parser = argparse.ArgumentParser(prog="make dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers)
    parser.add_argument("--service", choices=["orders", "billing", "notifications"], help="set aside by this service")
    parser.add_argument("--reason", help="whose reason contains this text (any case)")
    parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    args = parser.parse_args(argv)
    try:
        letters = dead_letters(args.bootstrap_servers, defaults.dead_letter_topic)
    except KafkaException as error:
        print(f"dlq: cannot read {defaults.dead_letter_topic} on {args.bootstrap_servers}: {error}", file=sys.stderr)
        return 1
    wanted = [letter for letter in letters if Filter(args.service, args.reason).wants(letter)]
    if args.json:
        print(json.dumps([asdict(letter) for letter in wanted], indent=2))
        return 0
    for letter in wanted:
        print(line(letter))
    print(f"{len(wanted)} of {len(letters)} dead letters on {defaults.dead_letter_topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
