"""Messages no service can process, published straight onto the topic."""

import json
from dataclasses import dataclass

from features.driver import publish

POISON_KINDS = ("not JSON", "breaks its contract", "no type header", "unknown type")


@dataclass(frozen=True)
class Poison:
    kind: str
    partition: int
    offset: int


def _message(kind: str, n: int) -> tuple[list[tuple[str, bytes]], bytes]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"poison-{kind}-{n}".encode()),
        ("ce_source", b"tests"),
        ("content-type", b"application/json"),
    ]
    good = {"orderId": 1, "userId": 1, "itemId": 1, "qty": 1, "ts": "2026-11-27T10:00:00Z"}
    if kind == "not JSON":
        return headers + [("ce_type", b"OrderCreated")], b"\x00\xffnot json"
    if kind == "breaks its contract":
        return headers + [("ce_type", b"OrderCreated")], json.dumps({**good, "qty": -3}).encode()
    if kind == "no type header":
        return headers, json.dumps(good).encode()
    return headers + [("ce_type", b"OrderShipped")], json.dumps(good).encode()


def publish_poison(bootstrap_servers: str, per_kind: int) -> list[Poison]:
    sent = [(kind, n) for kind in POISON_KINDS for n in range(per_kind)]
    messages = [(f"poison-{n}".encode(), value, headers) for kind, n in sent for headers, value in [_message(kind, n)]]
    landed = publish(bootstrap_servers, "orders.events", messages)
    return [Poison(kind, partition, offset) for (kind, _), (partition, offset) in zip(sent, landed, strict=True)]
