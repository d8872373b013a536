"""The envelope: CloudEvents 1.0 in Kafka binary mode. Headers carry the
metadata (ce_id, ce_type, ...), the value is exactly the contract's payload."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from eventbus import contracts, tracing, versions

_FORMAT = JSONFormat()


class PoisonMessage(ValueError):
    """A message that can never be processed: it goes to the dead-letter topic."""


@dataclass(frozen=True)
class Envelope:
    """An incoming event with the metadata a handler may need."""

    id: str
    type: str
    source: str
    event: contracts.Event


def seal(event: contracts.Event, source: str) -> KafkaMessage:
    """The Kafka message for `event`, keyed by its orderId, with the current span as its `traceparent`."""
    event_type = type(event).__name__
    attributes = {
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "dataschema": contracts.dataschema(event_type),
        "time": datetime.now(UTC),
        "subject": str(event.orderId),
        "datacontenttype": "application/json",
    }
    cloud_event = CloudEvent(attributes=attributes, data=contracts.to_payload(event))
    message = to_binary(cloud_event, _FORMAT, key_mapper=lambda _: str(event.orderId).encode())
    headers = tracing.inject(dict(message.headers))
    return KafkaMessage(headers=headers, key=message.key, value=message.value)


def open_message(headers: dict[str, bytes], key: bytes | None, value: bytes) -> Envelope | None:
    """The event inside a message; None for an event type this system does not know
    (a new major version of an event is a new type: readers that do not know it skip it).

    The payload is read tolerantly: fields this reader's contract does not know are
    ignored, so a newer compatible version of the contract gets through. Raises
    PoisonMessage for anything that cannot be an event of ours.
    """
    event_type = headers.get("ce_type")
    if not event_type:
        raise PoisonMessage("missing ce_type header")
    try:
        cloud_event = from_binary(KafkaMessage(headers=headers, key=key, value=value), _FORMAT)
    except Exception as error:
        raise PoisonMessage(f"not a CloudEvent: {error}") from error
    if cloud_event.get_type() not in contracts.EVENT_TYPES:
        return None
    payload = cloud_event.get_data()
    if not isinstance(payload, dict):
        raise PoisonMessage("value is not a JSON object")
    try:
        event = contracts.from_payload(cloud_event.get_type(), payload, reading=True)
    except contracts.ContractViolation as violation:
        raise PoisonMessage(_refusal(cloud_event, violation)) from violation
    return Envelope(
        id=cloud_event.get_id(),
        type=cloud_event.get_type(),
        source=cloud_event.get_source(),
        event=event,
    )


def _refusal(cloud_event: CloudEvent, violation: contracts.ContractViolation) -> str:
    """Why a reader refused an event: its type, the version it claims, each field at fault."""
    event_type, claimed = cloud_event.get_type(), cloud_event.get_dataschema()
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in violation.problems)
    return (
        f"{event_type} {versions.claimed_version(claimed)} ({claimed or 'no dataschema'}) is refused by this "
        f"reader's {event_type} contract, {contracts.dataschema(event_type)}: {listed}"
    )
