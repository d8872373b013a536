"""make redrive: which dead letters a selection chooses, which it refuses with
a message and nothing sent, and what goes back: the dead letter as it was, once,
in one transaction begun only after earlier runs are fenced. No broker."""

from dataclasses import replace

import pytest

from devstack import redrive
from devstack.dlq import DeadLetter
from devstack.redrive import Refused, Selection, places
from eventbus.settings import Settings


def letter(offset: int, service: str = "billing", reason: str = "item 9 has no price", **changes) -> DeadLetter:
    fields = dict(
        at="2026-12-06T10:00:00.000+00:00",
        service=service,
        reason=reason,
        topic="orders.events",
        partition=1,
        offset=40 + offset,
        type="OrderCreated",
        order="9",
        payload="{}",
        dlq_partition=0,
        dlq_offset=offset,
    )
    return DeadLetter(**fields | changes)


LETTERS = [letter(0), letter(1, "notifications", "not JSON"), letter(2, reason="breaks its contract: qty")]


@pytest.mark.parametrize(
    ("selection", "chosen"),
    [
        (Selection(everything=True), [0, 1, 2]),
        (Selection(service="billing"), [0, 2]),
        (Selection(reason="JSON"), [1]),
        (Selection(places=frozenset({"0@2", "0@1"})), [1, 2]),
        (Selection(service="billing", places=frozenset({"0@1", "0@2"})), [2]),
    ],
)
def test_a_selection_chooses_all_or_by_service_reason_and_place(selection, chosen):
    assert [each.dlq_offset for each in selection.chosen(LETTERS)] == chosen


@pytest.mark.parametrize(
    ("selection", "refusal"),
    [
        (Selection(), "say which dead letters to send back: ALL=1, or any of SERVICE=, REASON= and OFFSETS="),
        (Selection(everything=True, service="billing"), "ALL=1 sends back every dead letter: give it alone"),
        (Selection(places=frozenset({"0@7", "0@1"})), "no dead letter at 0@7; make dlq lists them"),
        (Selection(service="orders"), "no dead letter of orders; make dlq lists them"),
        (Selection(service="billing", reason="x"), "no dead letter of billing whose reason has 'x'"),
    ],
)
def test_a_selection_that_cannot_be_meant_is_refused_saying_why(selection, refusal):
    with pytest.raises(Refused, match=refusal.replace("?", r"\?")):
        selection.chosen(LETTERS)


def test_a_dead_letter_that_names_no_service_cannot_go_back():
    with pytest.raises(Refused, match="0@5 name no service of ours"):
        Selection(everything=True).chosen([letter(5, service="?")])


def test_places_are_read_as_make_dlq_lists_them_or_as_offsets_of_partition_0():
    assert places("0@3, 1@5,7") == {"0@3", "1@5", "0@7"}
    assert places("") == frozenset()
    with pytest.raises(Refused, match="such as 0@3,0@5; got 'x@3'"):
        places("x@3")


class TransactionalProducer:
    """Records the calls a transactional confluent-kafka Producer gets, in order."""

    def __init__(self, config: dict):
        self.config = config
        self.calls: list = []

    def init_transactions(self, timeout):
        self.calls.append("init")

    def begin_transaction(self):
        self.calls.append("begin")

    def produce(self, topic, key, value, headers):
        self.calls.append(("produce", topic, key, value, dict(headers)))

    def flush(self, timeout):
        return 0

    def commit_transaction(self, timeout):
        self.calls.append("commit")


@pytest.fixture
def sending(monkeypatch, kafka_record):
    """send_back over a recording producer and these dead letters (the record
    each one is carries its place in its key), reading the topics once fenced."""
    made = []

    def producer(config):
        made.append(TransactionalProducer(config))
        return made[-1]

    def send(letters: list[DeadLetter], selection: Selection) -> list:
        def read(settings):
            made[-1].calls.append("read")
            headers = {"ce_type": b"OrderCreated", "dlq_service": b"billing", "redrive_of": b"old"}
            return [
                (each, kafka_record(headers=headers, key=each.place.encode(), value=b"\x00raw")) for each in letters
            ]

        monkeypatch.setattr(redrive, "Producer", producer)
        monkeypatch.setattr(redrive, "dead_letters", read)
        said = []
        redrive.send_back(Settings(service="redrive"), selection, said.append)
        return made[-1].calls, said

    return send


def test_the_chosen_go_back_as_they_were_in_one_transaction_after_earlier_runs_are_fenced(sending):
    calls, said = sending(LETTERS, Selection(service="billing"))
    assert [call if isinstance(call, str) else call[0] for call in calls] == [
        "init",
        "read",
        "begin",
        "produce",
        "produce",
        "produce",
        "produce",
        "commit",
    ]
    (_, topic, key, value, headers) = calls[3]
    assert (topic, key, value) == ("orders.events", b"0@0", b"\x00raw")
    assert headers["dlq_service"] == b"billing" and headers["redrive_of"] == b"0@0"
    (_, topic, key, value, headers) = calls[4]
    assert (topic, key, headers) == ("orders.events.redrive", b"0@0", {"redrive_of": b"0@0", "dlq_service": b"billing"})
    assert said[-1].startswith("redrive: sent back 2 to billing")


def test_a_dead_letter_sent_back_before_is_not_sent_again(sending):
    calls, said = sending([replace(LETTERS[0], sent_back=True), LETTERS[2]], Selection(service="billing"))
    assert [call[2] for call in calls if call[0] == "produce"] == [b"0@2", b"0@2"]
    assert "1 of the 2 chosen were sent back before" in said[0]


def test_when_every_chosen_one_went_back_before_no_transaction_is_begun(sending):
    calls, said = sending([replace(LETTERS[0], sent_back=True)], Selection(everything=True))
    assert calls == ["init", "read"]


def test_a_selection_of_nothing_exits_2_naming_why_before_reading_anything(capsys):
    assert redrive.main(["--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.startswith("redrive: say which dead letters to send back: ALL=1")
