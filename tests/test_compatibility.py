"""The compatibility gate's verdicts, pinned: each schema change either passes
or is refused with the break it must report."""

import copy
import json
import shutil

import pytest
from invented import field_not_in

from eventbus import versions
from tools import compatibility

BASE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://event-driven.example/contracts/order_created.json",
    "title": "OrderCreated",
    "type": "object",
    "properties": {
        "orderId": {"description": "The order.", "type": "integer", "minimum": 1},
        "qty": {"description": "How many.", "type": "integer", "minimum": 1, "maximum": 1000},
        "note": {"description": "A note.", "type": "string", "maxLength": 100},
        "currency": {"description": "The currency.", "enum": ["EUR", "UAH"]},
        "ts": {"description": "When.", "type": "string", "format": "date-time"},
    },
    "required": ["orderId", "qty", "ts"],
    "additionalProperties": False,
}


def edited(*edits):
    schema = copy.deepcopy(BASE)
    for path, value in edits:
        *parents, last = path.split(".")
        target = schema
        for part in parents:
            target = target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return schema


READERS_OF_V1_REFUSE = "readers of version 1 refuse values this version allows"
V1_EVENTS_MAY_BREAK = "events of version 1 may hold values this version refuses"

# (change, old, new, what the gate says for an event contract)
TABLE = [
    ("nothing", BASE, BASE, []),
    ("add an optional field", BASE, edited(("properties.coupon", {"type": "string"})), []),
    (
        "add a required field",
        BASE,
        edited(("properties.coupon", {"type": "string"}), ("required", ["orderId", "qty", "ts", "coupon"])),
        ["OrderCreated: field 'coupon' added as required; events of version 1 lack it"],
    ),
    (
        "remove a required field",
        BASE,
        edited(("properties.qty", None), ("required", ["orderId", "ts"])),
        ["OrderCreated: field 'qty' removed; readers of version 1 require it"],
    ),
    ("remove an optional field", BASE, edited(("properties.note", None)), []),
    (
        "rename a field",
        BASE,
        edited(
            ("properties.qty", None),
            ("properties.quantity", BASE["properties"]["qty"]),
            ("required", ["orderId", "quantity", "ts"]),
        ),
        [
            "OrderCreated: field 'quantity' added as required; events of version 1 lack it",
            "OrderCreated: field 'qty' removed; readers of version 1 require it",
        ],
    ),
    (
        "make a field optional",
        BASE,
        edited(("required", ["orderId", "ts"])),
        ["OrderCreated: field 'qty' now optional; readers of version 1 require it"],
    ),
    (
        "widen a type",
        BASE,
        edited(("properties.qty.type", "number")),
        [f"OrderCreated: field 'qty' type integer -> number; {READERS_OF_V1_REFUSE}"],
    ),
    (
        "narrow a type",
        edited(("properties.qty.type", ["integer", "string"])),
        BASE,
        [f'OrderCreated: field \'qty\' type ["integer", "string"] -> integer; {V1_EVENTS_MAY_BREAK}'],
    ),
    (
        "tighten a minimum",
        BASE,
        edited(("properties.qty.minimum", 2)),
        [f"OrderCreated: field 'qty' minimum 1 -> 2; {V1_EVENTS_MAY_BREAK}"],
    ),
    (
        "loosen a minimum",
        BASE,
        edited(("properties.qty.minimum", 0)),
        [f"OrderCreated: field 'qty' minimum 1 -> 0; {READERS_OF_V1_REFUSE}"],
    ),
    (
        "tighten a maximum",
        BASE,
        edited(("properties.qty.maximum", 10)),
        [f"OrderCreated: field 'qty' maximum 1000 -> 10; {V1_EVENTS_MAY_BREAK}"],
    ),
    (
        "loosen a maximum",
        BASE,
        edited(("properties.qty.maximum", 5000)),
        [f"OrderCreated: field 'qty' maximum 1000 -> 5000; {READERS_OF_V1_REFUSE}"],
    ),
    (
        "tighten a maxLength",
        BASE,
        edited(("properties.note.maxLength", 10)),
        [f"OrderCreated: field 'note' maxLength 100 -> 10; {V1_EVENTS_MAY_BREAK}"],
    ),
    (
        "loosen a maxLength",
        BASE,
        edited(("properties.note.maxLength", 500)),
        [f"OrderCreated: field 'note' maxLength 100 -> 500; {READERS_OF_V1_REFUSE}"],
    ),
    (
        "change a format",
        BASE,
        edited(("properties.ts.format", "date")),
        [
            f"OrderCreated: field 'ts' format date-time -> date; {V1_EVENTS_MAY_BREAK}",
            f"OrderCreated: field 'ts' format date-time -> date; {READERS_OF_V1_REFUSE}",
        ],
    ),
    (
        "add an enum value",
        BASE,
        edited(("properties.currency.enum", ["EUR", "UAH", "USD"])),
        [f"OrderCreated: field 'currency' enum adds 'USD'; {READERS_OF_V1_REFUSE}"],
    ),
    (
        "remove an enum value",
        BASE,
        edited(("properties.currency.enum", ["EUR"])),
        [f"OrderCreated: field 'currency' enum drops 'UAH'; {V1_EVENTS_MAY_BREAK}"],
    ),
    ("only describe a field better", BASE, edited(("properties.qty.description", "How many items.")), []),
]


@pytest.mark.parametrize(("change", "old", "new", "said"), TABLE, ids=[row[0] for row in TABLE])
def test_an_event_contract_must_stay_compatible_both_ways(change, old, new, said):
    assert compatibility.breaks("OrderCreated", old, new, 1) == said


# The POST body only needs backward compatibility (the API accepts every body it
# accepted), but the API reads strictly: a field it drops is a field it now refuses.
REQUEST_TABLE = {
    "add an optional field": [],
    "remove an optional field": [
        "CreateOrderRequest: field 'note' removed; requests of version 1 may carry it, "
        "and this version refuses unknown fields"
    ],
    "add a required field": ["CreateOrderRequest: field 'coupon' added as required; requests of version 1 lack it"],
    "widen a type": [],
    "loosen a maximum": [],
    "tighten a maximum": [
        "CreateOrderRequest: field 'qty' maximum 1000 -> 10; requests of version 1 may hold values this version refuses"
    ],
    "add an enum value": [],
    "remove an enum value": [
        "CreateOrderRequest: field 'currency' enum drops 'UAH'; "
        "requests of version 1 may hold values this version refuses"
    ],
}


@pytest.mark.parametrize("change", REQUEST_TABLE)
def test_the_request_contract_must_stay_backward_compatible(change):
    _, old, new, _ = next(row for row in TABLE if row[0] == change)
    assert compatibility.breaks("CreateOrderRequest", old, new, 1) == REQUEST_TABLE[change]


def test_every_version_released_is_checked_not_only_the_latest():
    v1 = BASE
    v2 = edited(("properties.qty.maximum", 5000), ("properties.qty.minimum", 0))
    assert compatibility.breaks("OrderCreated", v2, v2, 2) == []
    assert compatibility.breaks("OrderCreated", v1, v2, 1) != []


@pytest.fixture
def scratch(tmp_path):
    """A copy of contracts/ to edit."""
    shutil.copytree(versions.CONTRACTS_DIR, tmp_path / "contracts")
    return tmp_path / "contracts"


def write(path, schema):
    path.write_text(json.dumps(schema, indent=2))


def test_the_contracts_in_the_repository_pass_the_gate():
    problems, pairs = compatibility.check(versions.CONTRACTS_DIR)
    assert problems == [] and pairs >= 4


def test_a_breaking_edit_fails_the_gate_with_a_message_naming_the_field(scratch, capsys):
    schema = json.loads((scratch / "order_created.json").read_text())
    del schema["properties"]["qty"]
    schema["required"].remove("qty")
    write(scratch / "order_created.json", schema)

    assert compatibility.main(["check", "--contracts", str(scratch)]) == 1
    assert "OrderCreated: field 'qty' removed; readers of version 1 require it" in capsys.readouterr().err


def test_release_freezes_a_changed_contract_as_its_next_version(scratch):
    schema = json.loads((scratch / "order_created.json").read_text())
    schema["properties"][field_not_in("OrderCreated")] = {"description": "A coupon code.", "type": "string"}
    write(scratch / "order_created.json", schema)
    assert versions.current_version(scratch / "order_created.json") == 2

    assert compatibility.main(["release", "--contracts", str(scratch)]) == 0

    assert json.loads((scratch / "order_created" / "v2.json").read_text()) == schema
    assert versions.current_version(scratch / "order_created.json") == 2
    assert compatibility.check(scratch)[0] == []


def test_a_released_version_is_frozen(scratch):
    frozen = scratch / "order_created" / "v1.json"
    frozen.write_text(frozen.read_text().replace("How many of the item", "How many items"))
    assert compatibility.check(scratch)[0] == ["order_created/v1.json: released versions are frozen, but it was edited"]


def test_release_refuses_a_breaking_change(scratch):
    schema = json.loads((scratch / "payment_captured.json").read_text())
    schema["properties"]["amount"]["type"] = "number"
    write(scratch / "payment_captured.json", schema)

    assert compatibility.main(["release", "--contracts", str(scratch)]) == 1
    assert not (scratch / "payment_captured" / "v2.json").exists()
