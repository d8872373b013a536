"""The AsyncAPI 3.0 document of the topics, written from the contracts by
`make generate`: each message's payload is a reference to its contract, never a
copy, and its headers are the envelope's CloudEvents headers.

    python -m tools.asyncapi generate generated/asyncapi.yaml
    python -m tools.asyncapi html build/docs-src/asyncapi.html   # the official renderer's page, for the site
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from eventbus.contracts import CONTRACTS_DIR, EVENT_TYPES, dataschema, file_name, schema
from eventbus.settings import Settings

ROOT = CONTRACTS_DIR.parent
DOCUMENT = ROOT / "generated" / "asyncapi.yaml"
RENDERER = ROOT / "node_modules" / "@asyncapi" / "react-component"

CLOUDEVENTS_HEADERS = {
    "ce_specversion": ("The CloudEvents version.", {"const": "1.0"}),
    "ce_id": ("Unique per event; a re-published copy keeps it (consumers deduplicate on it).", {}),
    "ce_source": ("The producing service.", {"enum": ["orders", "billing", "notifications"]}),
    "ce_type": ("The event type, the title of its contract.", {}),
    "ce_dataschema": ("The contract version that wrote the event: `contracts/<name>/v<N>.json`.", {"format": "uri"}),
    "ce_time": ("When the event was produced, RFC 3339.", {"format": "date-time"}),
    "ce_subject": ("The orderId.", {}),
    "content-type": ("The payload's media type.", {"const": "application/json"}),
    "traceparent": ("W3C trace context, started at the HTTP request that caused the event.", {}),
}
DEAD_LETTER_HEADERS = {
    "dlq_reason": "Why the message could not be processed, naming the contract and the version the event claims.",
    "dlq_topic": "The topic the message was read from.",
    "dlq_partition": "Its partition there.",
    "dlq_offset": "Its offset there.",
    "dlq_service": "The service that gave up on it.",
}


def _headers(fields: dict[str, tuple[str, dict]], required: list[str]) -> dict[str, Any]:
    properties = {name: {"type": "string", "description": text, **rule} for name, (text, rule) in fields.items()}
    return {"type": "object", "properties": properties, "required": required}


def _message(event_type: str) -> dict[str, Any]:
    contract = schema(event_type)
    fields = CLOUDEVENTS_HEADERS | {
        "ce_type": (CLOUDEVENTS_HEADERS["ce_type"][0], {"const": event_type}),
        "ce_dataschema": (
            CLOUDEVENTS_HEADERS["ce_dataschema"][0],
            {"format": "uri", "examples": [dataschema(event_type)]},
        ),
    }
    return {
        "name": event_type,
        "title": event_type,
        "summary": contract["description"],
        "contentType": "application/json",
        "headers": _headers(fields, [name for name in fields if name != "traceparent"]),
        "payload": {"$ref": f"../contracts/{file_name(event_type)}"},
        "bindings": {
            "kafka": {"key": {"type": "string", "description": "The orderId, so one order's events stay in order."}}
        },
        "examples": [{"name": f"{event_type} example", "payload": example} for example in contract["examples"]],
    }


def document() -> dict[str, Any]:
    """The AsyncAPI document, as a plain dict."""
    topics = Settings(service="asyncapi")
    dead_letter = {
        "name": "DeadLetter",
        "title": "A message no consumer could process",
        "summary": "The original message, value and headers unchanged, with the reason and its origin added.",
        "headers": _headers(
            {name: (text, {}) for name, text in DEAD_LETTER_HEADERS.items()}, list(DEAD_LETTER_HEADERS)
        ),
        "payload": {"description": "The original value, byte for byte (it may not be JSON)."},
        "bindings": {"kafka": {"key": {"type": "string", "description": "The original key."}}},
    }
    messages = {event_type: _message(event_type) for event_type in EVENT_TYPES} | {"DeadLetter": dead_letter}
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "event-driven",
            "version": "1.0.0",
            "description": (
                "Orders, payments and emails on Apache Kafka. Every event is CloudEvents 1.0 in Kafka binary mode: "
                "the metadata in ce_* headers, the value exactly the payload of its contract. Each contract keeps "
                "every released version compatible both ways (`contracts/<name>/v<N>.json`); readers ignore fields "
                "they do not know. A message no consumer can process goes to the dead-letter topic."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": topics.bootstrap_servers, "protocol": "kafka", "description": "make run, make up"}
        },
        "channels": {
            "events": {
                "address": topics.topic,
                "description": "All events, 3 partitions, keyed by orderId.",
                "messages": {name: refs[name] for name in EVENT_TYPES},
            },
            "deadLetters": {
                "address": topics.dead_letter_topic,
                "description": "Messages a consumer could not process, with the reason.",
                "messages": {"DeadLetter": refs["DeadLetter"]},
            },
        },
        "operations": {
            **{
                f"{action}{name}": {
                    "action": action,
                    "channel": {"$ref": "#/channels/events"},
                    "summary": schema(name)["description"],
                    "messages": [{"$ref": f"#/channels/events/messages/{name}"}],
                }
                for name in EVENT_TYPES
                for action in ("send", "receive")
            },
            "sendDeadLetter": {
                "action": "send",
                "channel": {"$ref": "#/channels/deadLetters"},
                "summary": "A consumer copies a message it cannot process here, and moves on.",
                "messages": [{"$ref": "#/channels/deadLetters/messages/DeadLetter"}],
            },
        },
        "components": {"messages": messages},
    }


def bundled(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with each contract reference replaced by the contract itself."""
    if isinstance(doc, dict):
        target = doc.get("$ref", "")
        if target.startswith("../contracts/"):
            return json.loads((ROOT / "generated" / target).resolve().read_text())
        return {key: bundled(value) for key, value in doc.items()}
    if isinstance(doc, list):
        return [bundled(value) for value in doc]
    return doc


def html(doc: dict[str, Any]) -> str:
    """A page that renders `doc` with the official AsyncAPI React component, every
    script and style inlined, so it opens offline."""
    script = (RENDERER / "browser" / "standalone" / "index.js").read_text()
    style = (RENDERER / "styles" / "default.min.css").read_text()
    config = {"schema": json.dumps(bundled(doc)), "config": {"show": {"sidebar": True}}}
    props = json.dumps(config).replace("</", "<\\/")  # nothing in the data may end the script
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>event-driven: AsyncAPI</title>\n'
        f'<style>{style}</style></head>\n<body><div id="asyncapi"></div>\n'
        f"<script>{script}</script>\n"
        f"<script>AsyncApiStandalone.render({props}, "
        'document.getElementById("asyncapi"));</script>\n</body></html>\n'
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("generate", "html"):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    if argv[0] == "generate":
        header = "# Generated from contracts/ by `make generate`; never edit by hand.\n"
        out.write_text(header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100))
    else:
        out.write_text(html(yaml.safe_load(DOCUMENT.read_text())))
        print(f"AsyncAPI page: {out.resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
