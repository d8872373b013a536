"""make dlq, run as a process against the stack."""

import json
import subprocess
import sys

from behave import then, when

from features.driver import wait_until
from features.poison import publish_poison

SERVICES = {"orders", "billing", "notifications"}
REASONS = {"not JSON": "", "breaks its contract": "contract", "no type header": "ce_type"}  # in each reason
LISTED_WITHIN_S = 60.0


def listing(context, *options: str) -> list[dict]:
    """`make dlq --json`'s dead letters of this scenario's poison messages."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.dlq",
            "--json",
            "--bootstrap-servers",
            context.driver.bootstrap_servers,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ours = {(p.partition, p.offset): p.kind for p in context.poison}
    return [
        letter | {"kind": ours[key]}
        for letter in json.loads(done.stdout)
        if (key := (letter["partition"], letter["offset"])) in ours and letter["topic"] == "orders.events"
    ]


@when("a poison message of each kind is published")
def step_publish_poison(context):
    context.poison = publish_poison(context.driver.bootstrap_servers, per_kind=1)


@then("the dead-letter listing shows each of them once for each service, with its reason")
def step_listed(context):
    expected = {(kind, service) for kind in REASONS for service in SERVICES}
    wait_until(
        lambda: {(letter["kind"], letter["service"]) for letter in listing(context)} >= expected,
        "every poison message is listed for each service",
        LISTED_WITHIN_S,
    )
    letters = listing(context)
    assert sorted((letter["kind"], letter["service"]) for letter in letters) == sorted(expected), letters
    for letter in letters:
        assert REASONS[letter["kind"]].lower() in letter["reason"].lower(), letter


@then("the listing of billing's dead letters shows billing's alone")
def step_listed_by_service(context):
    letters = listing(context, "--service", "billing")
    assert {letter["service"] for letter in letters} == {"billing"} and len(letters) == len(REASONS), letters


@then("the listing of dead letters that broke their contract shows those alone")
def step_listed_by_reason(context):
    letters = listing(context, "--reason", "contract")
    assert {letter["kind"] for letter in letters} == {"breaks its contract"} and len(letters) == 3, letters
