"""seal() and open_message(): CloudEvents 1.0 in Kafka binary mode, the value
exactly the contract's payload, and anything unusable named as poison."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from invented import field_not_in

from eventbus import contracts, tracing
from eventbus.contracts import ContractViolation
from eventbus.envelope import PoisonMessage, open_message, seal
from generated.order_created import OrderCreated

PAYLOAD = {"orderId": 7, "userId": 1, "itemId": 2, "qty": 3, "ts": "2026-11-27T10:00:00.000Z"}
ORDER = OrderCreated(**PAYLOAD)


def test_sealed_message_carries_cloudevents_headers():
    headers = seal(ORDER, "orders").headers
    assert headers["ce_specversion"] == b"1.0"
    assert uuid.UUID(headers["ce_id"].decode())
    assert headers["ce_source"] == b"orders"
    assert headers["ce_type"] == b"OrderCreated"
    assert headers["ce_subject"] == b"7"
    assert headers["content-type"] == b"application/json"


def test_sealed_message_names_the_contract_version_that_wrote_it():
    dataschema = seal(ORDER, "orders").headers["ce_dataschema"].decode()
    assert re.fullmatch(r"https://event-driven\.example/contracts/order_created/v\d+\.json", dataschema)
    assert dataschema == contracts.dataschema("OrderCreated")


def test_sealing_reads_the_released_versions_once_per_process_not_per_event(monkeypatch):
    seal(ORDER, "orders")
    monkeypatch.setattr(contracts, "current_version", lambda contract_file: pytest.fail("versions read again"))
    seal(ORDER, "orders")


def test_sealed_message_is_timed_now_in_utc():
    time = seal(ORDER, "orders").headers["ce_time"].decode()
    assert time.endswith("Z")
    assert abs(datetime.now(UTC) - datetime.fromisoformat(time.replace("Z", "+00:00"))) < timedelta(minutes=1)


def test_every_seal_gets_its_own_id():
    assert seal(ORDER, "orders").headers["ce_id"] != seal(ORDER, "orders").headers["ce_id"]


def test_sealed_message_is_keyed_by_order_id_and_holds_exactly_the_payload():
    message = seal(ORDER, "orders")
    assert message.key == b"7"
    assert json.loads(message.value) == PAYLOAD


def test_sealed_message_carries_the_current_span_as_its_only_traceparent():
    with tracing.span("placing the order") as span:
        headers = seal(ORDER, "orders").headers
    context = span.get_span_context()
    assert (
        headers["traceparent"].decode()
        == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert [name for name in headers if "trace" in name] == ["traceparent"]


def test_a_trace_id_is_read_from_a_traceparent_and_none_from_anything_else():
    assert tracing.trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert tracing.trace_id("00-0af7651916cd43dd-b7ad6b7169203331-01") is None
    assert tracing.trace_id(None) is None


def test_seal_refuses_an_event_that_breaks_its_contract():
    with pytest.raises(ContractViolation, match="qty"):
        seal(OrderCreated(orderId=7, userId=1, itemId=2, qty=0, ts=ORDER.ts), "orders")


def test_open_message_gives_back_the_sealed_event():
    message = seal(ORDER, "orders")
    envelope = open_message(message.headers, message.key, message.value)
    assert envelope.event == ORDER
    assert envelope.id == message.headers["ce_id"].decode()
    assert (envelope.type, envelope.source) == ("OrderCreated", "orders")


def test_open_message_skips_an_unknown_event_type():
    message = seal(ORDER, "orders")
    assert open_message(message.headers | {"ce_type": b"OrderShipped"}, message.key, message.value) is None


def poison_reason(headers=None, value=None) -> str:
    message = seal(ORDER, "orders")
    headers = message.headers if headers is None else headers
    with pytest.raises(PoisonMessage) as raised:
        open_message(headers, message.key, message.value if value is None else value)
    return str(raised.value)


def test_a_message_without_a_type_is_poison():
    headers = {name: value for name, value in seal(ORDER, "orders").headers.items() if name != "ce_type"}
    assert "ce_type" in poison_reason(headers=headers)


@pytest.mark.parametrize("value", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"42"])
def test_a_value_that_is_not_a_json_object_is_poison(value):
    assert "JSON object" in poison_reason(value=value)


def test_a_payload_that_breaks_its_contract_is_poison_naming_the_field():
    reason = poison_reason(value=json.dumps(PAYLOAD | {"qty": "3"}).encode())
    assert "OrderCreated" in reason
    assert "qty" in reason


def test_a_message_missing_required_cloudevents_headers_is_poison():
    assert "CloudEvent" in poison_reason(headers={"ce_type": b"OrderCreated"})


def test_a_reader_ignores_fields_a_newer_version_added():
    message = seal(ORDER, "orders")
    newer = message.headers | {"ce_dataschema": b"https://event-driven.example/contracts/order_created/v2.json"}
    added = {field_not_in("OrderCreated"): "SPRING", field_not_in("OrderCreated", "giftWrap"): True}
    value = json.dumps(PAYLOAD | added).encode()
    assert open_message(newer, message.key, value).event == ORDER


def test_a_reader_still_checks_every_field_it_needs():
    value = json.dumps({k: v for k, v in PAYLOAD.items() if k != "qty"} | {"quantity": 3}).encode()
    assert "qty" in poison_reason(value=value)


def test_a_refused_event_is_named_with_the_version_it_claims():
    headers = seal(ORDER, "orders").headers | {
        "ce_dataschema": b"https://event-driven.example/contracts/order_created/v3.json"
    }
    reason = poison_reason(headers=headers, value=json.dumps(PAYLOAD | {"qty": "many"}).encode())
    assert reason.startswith("OrderCreated version 3 (https://event-driven.example/contracts/order_created/v3.json)")
    assert f"{contracts.dataschema('OrderCreated')}: qty: 'many' is not of type 'integer'" in reason


def test_a_refused_event_without_a_dataschema_says_so():
    headers = {name: value for name, value in seal(ORDER, "orders").headers.items() if name != "ce_dataschema"}
    reason = poison_reason(headers=headers, value=json.dumps(PAYLOAD | {"qty": 0}).encode())
    assert reason.startswith("OrderCreated of unknown version (no dataschema)")


def test_a_new_major_version_is_skipped_like_an_unknown_type():
    message = seal(ORDER, "orders")
    headers = message.headers | {
        "ce_type": b"OrderCreatedV2",
        "ce_dataschema": b"https://event-driven.example/contracts/order_created_v2/v1.json",
    }
    assert open_message(headers, message.key, b'{"order": {"id": 7}}') is None
