"""`make redrive`: send chosen dead letters back to the service that set each
one aside, once what made it fail is fixed.

    python -m devstack.redrive (--all | [--service S] [--reason TEXT] [--offsets 0@3,0@5])

A dead letter goes back as a copy onto orders.events, where only the service
named in its `dlq_service` header acts on it (see eventbus.consumer). Each goes
back at most once, whatever is run twice, at once, or killed halfway: its copy
and a line in the ledger of what was sent back (orders.events.redrive) are
written in one Kafka transaction, whose id is the same for every run. A run
first fences any earlier one: the broker aborts what that one had not
committed, so a run killed halfway sent back nothing (readers see committed
records only). Then it reads the ledger and skips what is in it.

The service reads the copy as it reads any event: its own ledger skips an
effect it already had (an OrderCreated that was charged meanwhile), and a copy
that fails again goes to the dead letters once more, with its new reason, and
back only when asked: nothing loops.
"""

import argparse
import sys
from dataclasses import dataclass, replace

from confluent_kafka import KafkaException, Message, Producer

from devstack.dlq import DeadLetter, Filter, dead_letters
from devstack.kafka import client
from eventbus.consumer import REDRIVE_OF
from eventbus.outbox import EPOCH_HEADER
from eventbus.settings import Settings

SERVICES = ("orders", "billing", "notifications")
TRANSACTIONAL_ID = "make-redrive"  # one for every run: a new run fences the one before
ANSWER_S = 30.0


class Refused(Exception):
    """A selection that cannot be meant as it is: nothing is sent back."""


@dataclass(frozen=True)
class Selection:
    """Which dead letters to send back: all of them, or those of a service,
    whose reason says something, at given places (see DeadLetter.place), or
    that meet several of these."""

    everything: bool = False
    service: str | None = None
    reason: str | None = None
    places: frozenset[str] = frozenset()

    def check(self) -> None:
        """Refused when nothing or too much is asked: before any dead letter is read."""
        choosing = self.service is not None or self.reason is not None or bool(self.places)
        if not self.everything and not choosing:
            raise Refused(
                "say which dead letters to send back: ALL=1, or any of SERVICE=, REASON= and OFFSETS="
                " (partition@offset, as make dlq lists them)"
            )
        if self.everything and choosing:
            raise Refused(
                "ALL=1 sends back every dead letter: give it alone, or choose with SERVICE=, REASON=, OFFSETS="
            )

    def chosen(self, letters: list[DeadLetter]) -> list[DeadLetter]:
        """The dead letters selected, those sent back before included. Raises
        Refused (see check) and when a place holds no dead letter or nothing matches."""
        self.check()
        missing = sorted(self.places - {letter.place for letter in letters})
        if missing:
            raise Refused(f"no dead letter at {', '.join(missing)}; make dlq lists them")
        wanted = Filter(self.service, self.reason)
        chosen = [
            letter for letter in letters if wanted.wants(letter) and (not self.places or letter.place in self.places)
        ]
        if not chosen:
            raise Refused(f"no dead letter {self.described()}; make dlq lists them")
        unknown = [letter.place for letter in chosen if letter.service not in SERVICES]
        if unknown:
            raise Refused(f"{', '.join(unknown)} name no service of ours to go back to (dlq_service)")
        return chosen

    def described(self) -> str:
        parts = [f"of {self.service}" * bool(self.service), f"whose reason has {self.reason!r}" * bool(self.reason)]
        parts.append(f"at {', '.join(sorted(self.places))}" * bool(self.places))
        return " ".join(part for part in parts if part) or "at all"


def places(text: str) -> frozenset[str]:
    """`0@3,0@5` (or `3,5`, on partition 0) as {"0@3", "0@5"}."""
    found = set()
    for part in filter(None, text.replace(" ", "").split(",")):
        partition, _, offset = part.rpartition("@")
        if not offset.isdigit() or not (partition or "0").isdigit():
            raise Refused(f"OFFSETS takes places as make dlq lists them, such as 0@3,0@5; got {part!r}")
        found.add(f"{int(partition or 0)}@{int(offset)}")
    return frozenset(found)


def copy(record: Message, letter: DeadLetter) -> dict:
    """What goes back onto the events topic: the dead letter as it is (its headers
    name the service it goes back to, and why it failed), and which one it is."""
    headers = [(name, value) for name, value in record.headers() or [] if name not in (REDRIVE_OF, EPOCH_HEADER)]
    return {"key": record.key(), "value": record.value(), "headers": [*headers, (REDRIVE_OF, letter.place.encode())]}


def entry(letter: DeadLetter) -> dict:
    """The ledger's line for a dead letter sent back."""
    headers = [(REDRIVE_OF, letter.place.encode()), ("dlq_service", letter.service.encode())]
    return {"key": letter.place.encode(), "value": b"", "headers": headers}


def send_back(settings: Settings, selection: Selection, say=print) -> int:
    """Fence any earlier run, then send back what the selection chooses and was
    not sent back before, in one transaction. Returns how many went back."""
    producer = Producer(client(settings.bootstrap_servers) | {"transactional.id": TRANSACTIONAL_ID})
    producer.init_transactions(ANSWER_S)  # before reading the ledger: an earlier run's open transaction is aborted
    letters = dead_letters(settings)  # each says whether it was sent back: the redrive topic is the ledger
    chosen = selection.chosen([letter for letter, _ in letters])
    records = {letter.place: record for letter, record in letters}
    going = [letter for letter in chosen if not letter.sent_back]
    before = len(chosen) - len(going)
    if before:
        say(f"redrive: {before} of the {len(chosen)} chosen were sent back before; they are not sent again")
    if not going:
        return 0
    producer.begin_transaction()
    for number, letter in enumerate(going, 1):
        producer.produce(settings.topic, **copy(records[letter.place], letter))
        producer.produce(settings.redrive_topic, **entry(letter))
        producer.flush(ANSWER_S)
        say(
            f"redrive: {number} of {len(going)} on its way to {letter.service}: {letter.type or '(no type)'}"
            f" of order {letter.order or '-'} (dead letter {letter.place})"
        )
    producer.commit_transaction(ANSWER_S)
    say(
        f"redrive: sent back {len(going)} to {', '.join(sorted({letter.service for letter in going}))}"
        f" on {settings.topic}; one that fails again is a new dead letter (make dlq)"
    )
    return len(going)


def main(argv: list[str] | None = None) -> int:
    defaults = Settings.from_env("redrive")
    parser = argparse.ArgumentParser(prog="make redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=defaults.bootstrap_servers)
    parser.add_argument("--all", action="store_true", help="every dead letter not sent back yet")
    parser.add_argument("--service", choices=SERVICES, help="those this service set aside")
    parser.add_argument("--reason", help="those whose reason contains this text (any case)")
    parser.add_argument("--offsets", default="", help="those at these places, such as 0@3,0@5 (as make dlq lists)")
    args = parser.parse_args(argv)
    settings = replace(defaults, bootstrap_servers=args.bootstrap_servers)
    try:
        selection = Selection(args.all, args.service, args.reason, places(args.offsets))
        selection.check()
        send_back(settings, selection, say=lambda text: print(text, flush=True))
    except Refused as refusal:
        print(f"redrive: {refusal}; nothing was sent back", file=sys.stderr)
        return 2
    except KafkaException as error:
        print(
            f"redrive: Kafka at {settings.bootstrap_servers} failed ({error}); this run sent nothing back",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
