"""A user may add an optional field of any type to any event contract and
`make test` stays green (docs/contracts.md, "Changing a contract", step 1). Here each event
contract gains one optional field of each JSON type, with the dataclass `make
generate` would make for it (the field defaults to None); then every operation
of the orders API must still answer as its OpenAPI description says, and every
event must come back whole from the envelope, its new fields set or unset."""

import dataclasses
import json

import pytest
import yaml
from invented import field_not_in
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from eventbus import contracts, service
from eventbus.envelope import open_message, seal
from eventbus.settings import Settings
from services.orders import decisions, placing
from services.orders import service as orders

SAMPLES = {
    "string": "a note",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "array": [1, "two"],
    "object": {"any": "thing"},
    "null": None,
}
API_FILE = contracts.CONTRACTS_DIR / "orders_api.yaml"
API_URI = "https://event-driven.example/contracts/orders_api.yaml"  # beside the contracts' $ids
CACHED = ("_validator", "_reader_validator", "_compiled", "_compiled_reader", "dataschema")


def grown(contract: str) -> dict:
    """`contract` with one more optional field of each JSON type."""
    schema = json.loads(json.dumps(contracts.schema(contract)))
    for json_type in SAMPLES:
        name = field_not_in(contract, f"added{json_type.title()}")
        schema["properties"][name] = {"type": json_type, "description": f"A {json_type} a user added."}
    return schema


def regenerated(cls: type, schema: dict) -> type:
    """What `make generate` makes of the grown contract: each new field optional, None by default."""
    known = {each.name for each in dataclasses.fields(cls)}
    added = [(name, object, dataclasses.field(default=None)) for name in schema["properties"] if name not in known]
    return dataclasses.make_dataclass(cls.__name__, added, bases=(cls,), frozen=True)


def _clear_caches() -> None:
    for name in CACHED:
        getattr(contracts, name).cache_clear()


@pytest.fixture
def grown_contracts(monkeypatch):
    """Every event contract grown, in place of the real ones, for this test only."""
    schemas = {name: grown(name) for name in contracts.EVENT_TYPES}
    original = contracts.schema
    monkeypatch.setattr(contracts, "schema", lambda contract: schemas.get(contract) or original(contract))
    for name, cls in list(contracts.EVENT_TYPES.items()):
        monkeypatch.setitem(contracts.EVENT_TYPES, name, regenerated(cls, schemas[name]))
    for module in (decisions, placing):
        monkeypatch.setattr(module, "OrderCreated", contracts.EVENT_TYPES["OrderCreated"])
    _clear_caches()
    yield schemas
    _clear_caches()


def added_values(contract: str, schema: dict) -> dict:
    original = json.loads((contracts.CONTRACTS_DIR / contracts.file_name(contract)).read_text())["properties"]
    return {name: SAMPLES[field["type"]] for name, field in schema["properties"].items() if name not in original}


@pytest.mark.parametrize("contract", sorted(contracts.EVENT_TYPES))
@pytest.mark.parametrize("set_them", [False, True], ids=["new fields unset", "new fields set"])
def test_every_event_comes_back_whole_from_the_envelope(grown_contracts, contract, set_them):
    example = contracts.schema(contract)["examples"][0]
    extra = added_values(contract, grown_contracts[contract]) if set_them else {}
    event = contracts.EVENT_TYPES[contract](**example, **extra)
    message = seal(event, "test")
    assert open_message(dict(message.headers), message.key, message.value).event == event


# --- the orders API against its description -------------------------------------


def api_validator(path: str, method: str, status: int, media: str = "application/json") -> Draft202012Validator:
    """The schema the OpenAPI document gives the answer, its $refs to the (grown) contracts resolved."""
    api = yaml.safe_load(API_FILE.read_text())
    resources = [(API_URI, Resource(api, DRAFT202012))]
    for contract_file in contracts.CONTRACTS_DIR.glob("*.json"):
        schema = contracts.schema(json.loads(contract_file.read_text())["title"])
        resources.append((schema["$id"], Resource.from_contents(schema)))
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in ["paths", path, method])
    ref = f"{API_URI}#/{pointer}/responses/{status}/content/{media.replace('/', '~1')}/schema"
    return Draft202012Validator(
        {"$ref": ref}, registry=Registry().with_resources(resources), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def documented_operations() -> set[tuple[str, str]]:
    api = yaml.safe_load(API_FILE.read_text())
    return {(path, method) for path, item in api["paths"].items() for method in item if method != "parameters"}


BODY = {"userId": 1, "itemId": 2, "qty": 1}

# (path as documented, method, the request made, its body, the status expected)
REQUESTS = [
    ("/orders", "post", "/orders", BODY, 201),
    ("/orders", "post", "/orders", BODY | {"orderId": 1}, 200),
    ("/orders", "post", "/orders", BODY | {"orderId": 1, "qty": 2}, 409),
    ("/orders", "post", "/orders", {"qty": 0}, 400),
    ("/orders", "get", "/orders", None, 200),
    ("/orders/{orderId}", "get", "/orders/1", None, 200),
    ("/orders/{orderId}", "get", "/orders/404", None, 404),
    ("/orders/{orderId}/cancel", "post", "/orders/1/cancel", None, 202),
    ("/orders/{orderId}/cancel", "post", "/orders/1/cancel", None, 200),
    ("/orders/{orderId}/cancel", "post", "/orders/404/cancel", None, 404),
    ("/orders/{orderId}", "get", "/orders/1", None, 200),
    ("/health", "get", "/health", None, 200),
    ("/metrics", "get", "/metrics", None, 200),
]


def test_every_documented_operation_is_checked_below():
    assert documented_operations() == {(path, method) for path, method, *_ in REQUESTS}


@pytest.fixture
def orders_app(tmp_path, monkeypatch):
    """The orders API over a real store, connected to nothing."""
    monkeypatch.setattr(service.tracing, "configure_logging", lambda level: None)
    svc = service.Service(Settings(service="orders", data_dir=tmp_path), orders.HANDLERS, placing.create_tables)
    return orders.make_orders_app(svc, max_body_bytes=16384)


def test_every_answer_of_the_api_matches_its_description(grown_contracts, call, orders_app):
    for path, method, url, body, status in REQUESTS:
        raw = json.dumps(body).encode() if body is not None else b""
        response = call(orders_app, method.upper(), url, body=raw)
        assert response.status == status, (method, url, response.text)
        media = response.headers["Content-Type"].split(";")[0]
        answer = response.json if media == "application/json" else response.text
        errors = [error.message for error in api_validator(path, method, status, media).iter_errors(answer)]
        assert not errors, (method, url, answer, errors)
