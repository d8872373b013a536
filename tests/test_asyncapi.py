"""generated/asyncapi.yaml is a valid AsyncAPI 3.0 document (checked against
the official specification's JSON Schema), its payloads are the contracts
themselves, its headers are the ones on the wire, and its page opens offline."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from eventbus import contracts, tracing
from eventbus.consumer import ConsumerLoop, Handler
from eventbus.envelope import seal
from eventbus.settings import Settings
from generated.order_created import OrderCreated
from tools import asyncapi

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
DOCUMENT = yaml.safe_load(asyncapi.DOCUMENT.read_text())
ORDER = OrderCreated(orderId=7, userId=1, itemId=2, qty=3, ts="2026-11-27T10:00:00.000Z")


def spec_problems(document) -> list[str]:
    validator = Draft7Validator(json.loads(SPEC.read_text()))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


@pytest.mark.parametrize("form", ["as generated", "with the contracts inlined"])
def test_the_document_is_valid_asyncapi_3(form):
    document = DOCUMENT if form == "as generated" else asyncapi.bundled(DOCUMENT)
    assert document["asyncapi"] == "3.0.0"
    assert spec_problems(document) == []


def test_the_spec_check_can_fail():
    broken = DOCUMENT | {"channels": {"events": {"address": 3}}}
    assert spec_problems(broken) != []


def test_each_event_is_a_message_whose_payload_is_its_contract():
    messages = DOCUMENT["components"]["messages"]
    for event_type in contracts.EVENT_TYPES:
        payload = messages[event_type]["payload"]
        assert payload == {"$ref": f"../contracts/{contracts.file_name(event_type)}"}
        assert json.loads((asyncapi.DOCUMENT.parent / payload["$ref"]).resolve().read_text())["title"] == event_type


def test_both_topics_are_channels():
    addresses = {channel["address"] for channel in DOCUMENT["channels"].values()}
    assert addresses == {"orders.events", "orders.events.dlq"}


def test_the_documented_headers_are_the_ones_a_sealed_event_carries():
    headers = DOCUMENT["components"]["messages"]["OrderCreated"]["headers"]["properties"]
    with tracing.span("placing the order"):
        sealed = seal(ORDER, "orders")
    assert set(headers) == set(sealed.headers)
    assert headers["ce_type"]["const"] == "OrderCreated"


def test_the_documented_dead_letter_headers_are_the_ones_the_consumer_writes(
    fake_consumer, kafka_record, store, stop, outbox_rows
):
    consumer = fake_consumer([kafka_record(headers={"ce_source": b"tests"}, key=b"1", value=b"{}")])
    ConsumerLoop(
        consumer, store, Settings(service="test"), {OrderCreated: Handler(lambda e, tx: [])}, lambda: None
    ).run(stop)
    [row] = outbox_rows()
    written = {name for name in row["headers"] if name.startswith("dlq_")}
    assert written == set(DOCUMENT["components"]["messages"]["DeadLetter"]["headers"]["properties"])


def test_the_page_inlines_its_script_and_style():
    page = asyncapi.html(DOCUMENT)
    markup = re.sub(r"<(script|style)>.*?</\1>", "", page, flags=re.DOTALL)
    assert not re.search(r"(src|href)=", markup)
    assert '"title": "OrderCreated"' in page.replace('\\"', '"')  # the contract itself, inlined


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium to open the page")
def test_the_page_renders_the_document_with_the_network_cut_off(tmp_path):
    page = tmp_path / "asyncapi.html"
    page.write_text(asyncapi.html(DOCUMENT))
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # any name lookup fails: nothing can come from a CDN
    shown = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            offline,
            "--virtual-time-budget=5000",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rendered = re.sub(r"<script>.*?</script>", "", shown, flags=re.DOTALL)
    for text in (
        "orders.events.dlq",
        "sendOrderCreated",
        "dlq_reason",
        "https://event-driven.example/contracts/order_created.json",
    ):
        assert text in rendered, text
