"""The contracts in contracts/ are well-formed and the validators built from
them name every problem by its field."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from invented import field_not_in
from jsonschema import Draft202012Validator

from eventbus import contracts, versions
from generated.order_created import OrderCreated

CONTRACT_FILES = sorted(contracts.CONTRACTS_DIR.glob("*.json"))
ORDER = {"orderId": 1, "userId": 1, "itemId": 2, "qty": 1, "ts": "2026-11-27T10:00:00.000Z"}
COUPON = field_not_in("OrderCreated")  # a field OrderCreated does not know


def load(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda path: path.name)
def test_each_contract_is_a_valid_2020_12_schema(path):
    schema = load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda path: path.name)
def test_each_contract_is_titled_by_the_type_its_file_is_named_after(path):
    assert contracts.file_name(load(path)["title"]) == path.name


def test_every_event_type_has_a_contract():
    titles = {load(path)["title"] for path in CONTRACT_FILES}
    assert set(contracts.EVENT_TYPES) <= titles


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda path: path.name)
def test_each_contract_is_closed_and_describes_every_field(path):
    schema = load(path)
    assert schema["additionalProperties"] is False
    assert schema["description"]
    undescribed = [name for name, field in schema["properties"].items() if not field.get("description")]
    assert undescribed == []


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda path: path.name)
def test_each_contracts_examples_are_valid(path):
    schema = load(path)
    assert schema["examples"]
    for example in schema["examples"]:
        assert contracts.problems(schema["title"], example) == []


def fields_at_fault(payload) -> list[str]:
    return [problem["field"] for problem in contracts.problems("OrderCreated", payload)]


def test_a_missing_field_is_named():
    assert fields_at_fault({k: v for k, v in ORDER.items() if k != "qty"}) == ["qty"]


def test_an_unexpected_field_is_named():
    assert fields_at_fault(ORDER | {COUPON: "FREE"}) == [COUPON]


@pytest.mark.parametrize("qty", ["1", 1.5, None, [1]])
def test_a_wrongly_typed_field_is_named(qty):
    assert fields_at_fault(ORDER | {"qty": qty}) == ["qty"]


def test_booleans_are_not_integers():
    assert fields_at_fault(ORDER | {"qty": True}) == ["qty"]


def test_a_whole_float_is_an_integer_and_arrives_as_an_int():
    order = contracts.from_payload("OrderCreated", ORDER | {"qty": 2.0})
    assert order.qty == 2 and type(order.qty) is int


def test_a_reader_lets_unknown_fields_through_but_they_never_reach_the_dataclass():
    assert contracts.problems("OrderCreated", ORDER | {COUPON: "FREE"}, reading=True) == []
    assert contracts.from_payload("OrderCreated", ORDER | {COUPON: "FREE"}, reading=True) == OrderCreated(**ORDER)


def test_a_request_is_read_strictly():
    extra = field_not_in("CreateOrderRequest")
    with pytest.raises(contracts.ContractViolation, match=extra):
        contracts.from_payload("CreateOrderRequest", {"userId": 1, "itemId": 2, "qty": 1, extra: "FREE"})


def test_the_current_version_is_the_latest_release_or_the_next_one(tmp_path):
    current = tmp_path / "order_created.json"
    current.write_text(json.dumps(contracts.schema("OrderCreated")))
    assert versions.current_version(current) == 1
    (tmp_path / "order_created").mkdir()
    (tmp_path / "order_created" / "v1.json").write_text(current.read_text())
    assert versions.current_version(current) == 1
    current.write_text(json.dumps(contracts.schema("OrderCreated") | {"description": "Changed."}))
    assert versions.current_version(current) == 2


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("https://event-driven.example/contracts/order_created/v12.json", "version 12"),
        ("https://elsewhere.example/order.json", "of unknown version"),
        (None, "of unknown version"),
    ],
)
def test_the_version_an_event_claims(uri, said):
    assert versions.claimed_version(uri) == said


def test_a_timestamp_that_is_not_rfc_3339_is_named():
    assert set(fields_at_fault(ORDER | {"ts": "27/11/2026 10:00"})) == {"ts"}


def test_every_problem_is_listed_in_field_order():
    payload = {"orderId": 0, "userId": "1", "itemId": 2, "qty": 1, "x": 1}
    assert fields_at_fault(payload) == ["orderId", "ts", "userId", "x"]


def test_a_body_that_is_not_an_object_is_named_as_the_body():
    assert fields_at_fault([ORDER]) == ["(body)"]


def test_check_raises_a_violation_that_lists_the_problems():
    with pytest.raises(contracts.ContractViolation, match="qty") as raised:
        contracts.check("OrderCreated", ORDER | {"qty": 0})
    assert [problem["field"] for problem in raised.value.problems] == ["qty"]


def test_a_timestamp_with_an_offset_is_not_utc():
    assert fields_at_fault(ORDER | {"ts": "2026-11-27T12:00:00.000+02:00"}) == ["ts"]


def test_timestamp_is_rfc_3339_utc_with_a_z():
    now = contracts.timestamp()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    parsed = datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)
    assert contracts.problems("PaymentCaptured", {"orderId": 1, "amount": 100, "ts": now}) == []


def test_from_payload_builds_the_generated_dataclass():
    order = contracts.from_payload("OrderCreated", ORDER)
    assert type(order).__name__ == "OrderCreated"
    assert contracts.to_payload(order) == ORDER


def test_the_compiled_validator_and_jsonschema_agree():
    """check() trusts the compiled validator to pass good payloads: it must
    pass exactly what jsonschema, the reference, passes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.one_of(
        st.integers(-3, 2**63),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
        st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:00+02:00", "user1@test.com", "x", ""]),
    )
    fields = st.sampled_from(["orderId", "userId", "itemId", "qty", "ts", "amount", "to", "extra"])

    @settings(max_examples=500, deadline=None)
    @given(
        contract=st.sampled_from(sorted(contracts.EVENT_TYPES) + ["CreateOrderRequest"]),
        changes=st.dictionaries(fields, values, max_size=2),
    )
    def agree(contract, changes):
        payload = contracts.schema(contract)["examples"][0] | changes
        assert contracts._compiled(contract).is_valid(payload) == (contracts.problems(contract, payload) == [])

    agree()
