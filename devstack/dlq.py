"""`make dlq`: the dead letters on orders.events.dlq, one line each: where it is
on that topic, when it got there, which service set it aside and why, where it
came from (topic, partition, offset), its event type and order, the first
bytes of what it carried, and whether `make redrive` has sent it back.

    python -m devstack.dlq [--service billing] [--reason contract] [--json]

It reads the topics as a bystander (see devstack.topic) from their start up to
their end as of now, then stops: a listing, not a tail.
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Message

from devstack.topic import Seen, read_to_end, reader, seen
from eventbus.consumer import REDRIVE_OF
from eventbus.outbox import Fence
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
    sent_back: bool = False  # by make redrive

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

    @property
    def place(self) -> str:
        """Where it is on the dead-letter topic, as `make redrive OFFSETS=` takes it: partition@offset."""
        return f"{self.dlq_partition}@{self.dlq_offset}"


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
        f"{letter.place:<6} {letter.at}  {letter.service:<13} {letter.type or '(no type)':<16} "
        f"order {letter.order or '-':<6} from {came_from}{'  (sent back)' * letter.sent_back}  "
        f"reason: {letter.reason}  payload: {letter.payload!r}"
    )


def read_from_start(bootstrap_servers: str, topic: str) -> list[Message]:
    """Every message on `topic` as of now, oldest first."""
    consumer = reader(bootstrap_servers, (topic,), from_beginning=True, timeout=ANSWER_S)
    try:
        found = read_to_end(consumer, ANSWER_S)
    finally:
        consumer.close()
    return sorted(found, key=lambda record: (record.timestamp()[1], record.partition(), record.offset()))


def sent_back(bootstrap_servers: str, redrive_topic: str) -> set[str]:
    """The places of the dead letters sent back (see DeadLetter.place), from their ledger (see devstack.redrive)."""
    return {seen(record).headers.get(REDRIVE_OF) for record in read_from_start(bootstrap_servers, redrive_topic)}


def dead_letters(settings: Settings) -> list[tuple[DeadLetter, Message]]:
    """Every dead letter as of now, oldest first, each with the message it is."""
    back = sent_back(settings.bootstrap_servers, settings.redrive_topic)
    letters, fence = [], Fence()
    for record in read_from_start(settings.bootstrap_servers, settings.dead_letter_topic):
        if fence.stale((record.topic(), record.partition()), dict(record.headers() or [])):
            continue  # a late copy from a relay that had lost its claim
        letter = DeadLetter.of(seen(record))
        letters.append((replace(letter, sent_back=letter.place in back), record))
    return letters


def main(argv: list[str] | None = None) -> int:
    defaults = Settings.from_env("dlq")
    parser = argparse.ArgumentParser(prog="make dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers)
    parser.add_argument("--service", choices=["orders", "billing", "notifications"], help="set aside by this service")
    parser.add_argument("--reason", help="whose reason contains this text (any case)")
    parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    args = parser.parse_args(argv)
    settings = replace(defaults, bootstrap_servers=args.bootstrap_servers)
    try:
        letters = [letter for letter, _ in dead_letters(settings)]
    except KafkaException as error:
        print(f"dlq: cannot read {settings.dead_letter_topic} on {args.bootstrap_servers}: {error}", file=sys.stderr)
        return 1
    wanted = [letter for letter in letters if Filter(args.service, args.reason).wants(letter)]
    if args.json:
        print(json.dumps([asdict(letter) for letter in wanted], indent=2))
        return 0
    for letter in wanted:
        print(line(letter))
    back = sum(letter.sent_back for letter in wanted)
    print(
        f"{len(wanted)} of {len(letters)} dead letters on {settings.dead_letter_topic}"
        f"{f', {back} of them sent back' if back else ''}; make redrive sends them back"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
