"""The JSON Schemas in contracts/ as validators compiled once, the event
types they define (the dataclasses generated from them), and their versions.

Writers are strict: a payload they produce must match the current contract
exactly. Readers are tolerant: they check the fields they know and ignore the
others, so events of a newer, compatible version still reach them."""

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from eventbus.versions import CONTRACTS_DIR, current_version, reader_schema, schema_uri
from generated.create_order_request import CreateOrderRequest
from generated.email_sent import EmailSent
from generated.order_cancelled import OrderCancelled
from generated.order_created import OrderCreated
from generated.payment_captured import PaymentCaptured
from generated.payment_declined import PaymentDeclined
from generated.payment_refunded import PaymentRefunded

Event = OrderCreated | PaymentCaptured | EmailSent | PaymentDeclined | OrderCancelled | PaymentRefunded
EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (OrderCreated, PaymentCaptured, EmailSent, PaymentDeclined, OrderCancelled, PaymentRefunded)
}


class ContractViolation(ValueError):
    """A payload that does not match its contract; `problems` names each one."""

    def __init__(self, contract: str, problems: list[dict[str, str]]):
        self.problems = problems
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        super().__init__(f"{contract} violates its contract: {listed}")


def file_name(contract: str) -> str:
    """`OrderCreated` lives in `order_created.json`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", contract).lower() + ".json"


@cache
def schema(contract: str) -> dict[str, Any]:
    return json.loads((CONTRACTS_DIR / file_name(contract)).read_text())


@cache
def _validator(contract: str):
    return Draft202012Validator(schema(contract), format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def _reader_validator(contract: str):
    return Draft202012Validator(reader_schema(schema(contract)), format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(contract: str, payload: Any, reading: bool = False) -> list[dict[str, str]]:
    """Every way `payload` breaks `contract` (as a reader sees it, when
    `reading`), each naming the field at fault."""
    found = []
    for error in (_reader_validator if reading else _validator)(contract).iter_errors(payload):
        field = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            field = re.match(r"'(.*)' is a required property", error.message).group(1)
        elif error.validator == "additionalProperties":
            field = ", ".join(sorted(set(payload) - set(error.schema["properties"])))
        found.append({"field": field or "(body)", "message": error.message})
    return sorted(found, key=lambda p: (p["field"], p["message"]))


@cache
def _compiled(contract: str):
    return jsonschema_rs.validator_for(schema(contract), validate_formats=True)


@cache
def _compiled_reader(contract: str):
    return jsonschema_rs.validator_for(reader_schema(schema(contract)), validate_formats=True)


def check(contract: str, payload: Any, reading: bool = False) -> None:
    """Raise ContractViolation unless `payload` keeps `contract`.

    Every event is checked twice on its way (produced, consumed), so the common
    case must be cheap: a compiled validator (jsonschema-rs, about 1 µs instead
    of 60) passes a good payload; jsonschema, the reference, judges and explains
    any payload the compiled one does not pass."""
    if (_compiled_reader if reading else _compiled)(contract).is_valid(payload):
        return
    found = problems(contract, payload, reading)
    if found:
        raise ContractViolation(contract, found)


def to_payload(event: Event) -> dict[str, Any]:
    """The event as its contract's JSON object, checked before it leaves. An
    optional field left unset (None) is left out, as its contract expects."""
    payload = {name: value for name, value in asdict(event).items() if value is not None}
    check(type(event).__name__, payload)
    return payload


def from_payload(contract: str, payload: Any, reading: bool = False):
    """The dataclass of `contract` from a JSON object, checked as it arrives:
    strictly (a request), or tolerantly (an event being read): then fields the
    contract does not know are dropped and never reach the dataclass.

    JSON Schema counts 2.0 as an integer; the dataclass gets the int 2."""
    check(contract, payload, reading)
    fields = schema(contract)["properties"]
    values = {
        name: int(value) if fields[name].get("type") == "integer" else value
        for name, value in payload.items()
        if name in fields
    }
    classes = {**EVENT_TYPES, "CreateOrderRequest": CreateOrderRequest}
    return classes[contract](**values)


@cache
def dataschema(contract: str) -> str:
    """The CloudEvents `dataschema` of events written with the current contract."""
    return schema_uri(schema(contract), current_version(CONTRACTS_DIR / file_name(contract)))


def timestamp() -> str:
    """Now, as the contracts' RFC 3339 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
