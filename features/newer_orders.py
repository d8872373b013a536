"""Events as a newer orders writes them, published straight onto the topic: its
contract has moved on (a field added, a version or two later) while the running
billing and notifications still read with the contract they were built with."""

import json

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack.kafka import client
from eventbus.contracts import timestamp, to_payload
from eventbus.envelope import seal
from eventbus.versions import schema_uri
from features.driver import publish
from generated.order_created import OrderCreated

TOPIC = "orders.events"


def announce(bootstrap_servers: str, order_id: int, changes: dict, version: int, event_type: str = "OrderCreated"):
    """Publish an OrderCreated for `order_id`, its payload changed by `changes`, as
    written by version `version` of the contract of `event_type`; returns where it
    landed. The headers are the real envelope's."""
    order = OrderCreated(orderId=order_id, userId=5, itemId=3, qty=2, ts=timestamp())
    message = seal(order, "orders")
    contract = {"$id": f"https://event-driven.example/contracts/{_snake(event_type)}.json"}
    headers = message.headers | {
        "ce_type": event_type.encode(),
        "ce_dataschema": schema_uri(contract, version).encode(),
    }
    value = json.dumps(to_payload(order) | changes).encode()
    [(partition, offset)] = publish(bootstrap_servers, TOPIC, [(message.key, value, list(headers.items()))])
    return TopicPartition(TOPIC, partition), offset


def read_past(bootstrap_servers: str, group: str, partition: TopicPartition, offset: int) -> bool:
    """Whether consumer group `group` has committed past `offset`: it is done with that message."""
    admin = AdminClient(client(bootstrap_servers))
    asked = ConsumerGroupTopicPartitions(group, [partition])
    (committed,) = admin.list_consumer_group_offsets([asked])[group].result(timeout=30).topic_partitions
    return committed.offset > offset


def _snake(event_type: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in event_type).lstrip("_")
