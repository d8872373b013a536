"""The table of events under each scenario in the spec report."""

from devstack.topic import Seen
from features.evidence import COLUMNS, MAX_ROWS, events_table, shown


def event(n: int, reason: str | None = None) -> Seen:
    headers = {"ce_type": "OrderCreated", "ce_id": f"id-{n}"} | ({"dlq_reason": reason} if reason else {})
    return Seen("orders.events", 0, n, 0, str(n), headers, {"orderId": n}, "")


def test_a_short_list_is_shown_whole():
    messages = [event(n) for n in range(3)]
    assert shown(messages) == messages


def test_a_long_list_keeps_every_dead_letter_and_the_first_events_in_order():
    messages = [event(n) for n in range(MAX_ROWS + 50)] + [event(999, "not JSON")]
    kept = shown(messages)
    assert len(kept) == MAX_ROWS
    assert kept[-1].reason == "not JSON"
    assert [m.offset for m in kept[:-1]] == list(range(MAX_ROWS - 1))


def test_the_table_shows_each_field_and_a_dead_letters_reason():
    html = events_table([event(1), event(2, "missing ce_type header")])
    for text in (
        "OrderCreated",
        "id-1",
        "{&quot;orderId&quot;: 1}",
        "dead letter (OrderCreated)",
        "missing ce_type header",
    ):
        assert text in html


def test_the_table_says_how_many_more_there_were():
    assert "and 50 more" in events_table([event(n) for n in range(MAX_ROWS + 50)])


def test_where_a_chain_stopped_is_red_like_a_dead_letter():
    stopped = Seen("orders.events", 0, 1, 0, "1", {"ce_type": "OrderCancelled", "ce_id": "id-1"}, {"orderId": 1}, "")
    assert events_table([event(2)]).count("#cf222e") == 0
    assert events_table([stopped]).count("#cf222e") == len(COLUMNS)
