"""Contracts that evolve: events from a newer writer, and the compatibility check."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from behave import given, then, when

from eventbus.versions import CONTRACTS_DIR
from features.driver import wait_until
from features.newer_orders import announce, read_past

READERS = ("billing", "notifications")


def _announce(context, changes: dict, version: int, event_type: str = "OrderCreated") -> None:
    context.order_id = context.driver.new_order_id()
    context.announced = announce(context.driver.bootstrap_servers, context.order_id, changes, version, event_type)


@when("a newer orders announces an order of 2 of item 3 by customer 5, with a gift note its contract version 2 added")
def step_newer_order(context):
    _announce(context, {"giftNote": "Happy birthday!"}, version=2)


@when('a newer orders announces an order whose quantity is "many", claiming version 3 of its contract')
def step_broken_order(context):
    _announce(context, {"qty": "many"}, version=3)


@when("a newer orders announces an order only as a new major version of OrderCreated")
def step_major_version(context):
    _announce(context, {"quantity": 2}, version=1, event_type="OrderCreatedV2")


def _set_aside(context) -> list:
    return [seen for seen in context.driver.topic.all("orders.events.dlq") if seen.key == str(context.order_id)]


@then("nothing about the order is set aside as unreadable")
def step_nothing_set_aside(context):
    partition, offset = context.announced
    for group in READERS:
        wait_until(
            lambda group=group: read_past(context.driver.bootstrap_servers, group, partition, offset),
            f"{group} has read past the order",
        )
    context.driver.settle()
    assert _set_aside(context) == [], _set_aside(context)


@then(
    "billing sets the order aside as unreadable, saying it claims OrderCreated version 3 and that its quantity is wrong"
)
def step_set_aside(context):
    letters = wait_until(
        lambda: [seen for seen in _set_aside(context) if seen.headers.get("dlq_service") == "billing"],
        "billing sets the order aside",
    )
    reason = letters[0].headers["dlq_reason"]
    assert reason.startswith("OrderCreated version 3 ("), reason
    assert "qty: 'many' is not of type 'integer'" in reason, reason


@then("no payment is captured for the order")
def step_no_payment(context):
    partition, offset = context.announced
    wait_until(
        lambda: read_past(context.driver.bootstrap_servers, "billing", partition, offset),
        "billing has read past the order",
    )
    context.driver.settle()
    assert context.driver.events(context.order_id, "PaymentCaptured") == []


@given("a scratch copy of the contracts")
def step_scratch_copy(context):
    scratch = Path(tempfile.mkdtemp(prefix="contracts-"))
    context.add_cleanup(shutil.rmtree, scratch, ignore_errors=True)
    context.scratch = scratch / "contracts"
    shutil.copytree(CONTRACTS_DIR, context.scratch)


def _edit(context, contract: str, change) -> None:
    path = context.scratch / contract
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def _remove_qty(schema):
    del schema["properties"]["qty"]
    schema["required"].remove("qty")


def _rename_qty(schema):
    schema["properties"]["quantity"] = schema["properties"].pop("qty")
    schema["required"] = [name.replace("qty", "quantity") for name in schema["required"]]


CHANGES = {
    "the quantity is removed from OrderCreated": ("order_created.json", _remove_qty),
    'the quantity of OrderCreated is renamed to "quantity"': ("order_created.json", _rename_qty),
    "the largest quantity of OrderCreated becomes 10": (
        "order_created.json",
        lambda schema: schema["properties"]["qty"].update(maximum=10),
    ),
    "the amount of PaymentCaptured becomes a number": (
        "payment_captured.json",
        lambda schema: schema["properties"]["amount"].update(type="number"),
    ),
    "an optional gift note is added to OrderCreated": (
        "order_created.json",
        lambda schema: schema["properties"].update(giftNote={"description": "A note.", "type": "string"}),
    ),
}


@when("{change} in the scratch copy")
def step_change(context, change):
    _edit(context, *CHANGES[change])
    context.checked = subprocess.run(
        [sys.executable, "-m", "tools.compatibility", "check", "--contracts", str(context.scratch)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@then('the compatibility check refuses it, saying "{message}"')
def step_refused(context, message):
    assert context.checked.returncode == 1, context.checked
    assert message in context.checked.stderr.splitlines(), context.checked.stderr


@then("the compatibility check passes")
def step_passes(context):
    assert context.checked.returncode == 0, context.checked
