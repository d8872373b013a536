"""The evidence under each scenario in the spec report: the events that reached
the topics while it ran, as a table (built with dominate, which the report's
formatter uses too)."""

import json

from dominate.tags import code, table, tbody, td, th, thead, tr

from devstack.topic import Seen

MAX_ROWS = 100  # a fault scenario places hundreds of orders: its dead letters and first events tell the story
COLUMNS = ("type", "key", "ce_id", "trace id", "payload")
STOPPED = {"PaymentDeclined", "OrderCancelled", "PaymentRefunded"}  # where a chain stopped: red, as on the page


def events_table(messages: list[Seen]) -> str:
    with table(style="border-collapse: collapse; font-size: 0.85em") as events:
        with thead():
            with tr():
                for name in COLUMNS:
                    th(name, style="text-align: left; padding: 2px 8px")
        with tbody():
            for message in shown(messages):
                _row(message)
            if len(messages) > MAX_ROWS:
                with tr():
                    td(f"... and {len(messages) - MAX_ROWS} more", colspan=len(COLUMNS))
    return events.render(pretty=False)


def shown(messages: list[Seen]) -> list[Seen]:
    """At most MAX_ROWS of the messages, in the order they came: every dead letter
    (up to the limit), then the first of the others."""
    if len(messages) <= MAX_ROWS:
        return messages
    dead = [message for message in messages if message.reason is not None][:MAX_ROWS]
    others = [message for message in messages if message.reason is None][: MAX_ROWS - len(dead)]
    kept = {id(message) for message in dead + others}
    return [message for message in messages if id(message) in kept]


def _row(message: Seen) -> None:
    dead = message.reason is not None
    red = dead or message.type in STOPPED
    cell = "padding: 2px 8px; vertical-align: top" + ("; color: #cf222e" if red else "")
    with tr():
        td(f"dead letter ({message.type or 'no type'})" if dead else message.type or "(no type)", style=cell)
        td(message.key or "-", style=cell)
        td(code(message.id or "-"), style=cell)
        td(code(message.trace_id or "-"), style=cell)
        payload = json.dumps(message.payload) if message.payload is not None else repr(message.value)
        td(code(payload), f" reason: {message.reason}" if dead else "", style=cell)
