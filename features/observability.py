"""What the tests read from the stack's trace viewer (Zipkin's API), from
each service's Prometheus metrics, and from the stack's Prometheus."""

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from features.driver import publish


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str | None
    id: str
    parent: str | None
    tags: dict[str, str]


class Zipkin:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def trace(self, trace_id: str) -> list[Span]:
        """The spans Zipkin holds for the trace so far (none while it has not seen it)."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/trace/{trace_id}", timeout=10) as response:
                spans = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        return [
            Span(
                span["localEndpoint"]["serviceName"],
                span.get("name", ""),
                span.get("kind"),
                span["id"],
                span.get("parentId"),
                span.get("tags", {}),
            )
            for span in spans
        ]


class Metrics:
    """Each service's metrics pages, one per process (replicas are summed)."""

    def __init__(self, pages: dict[str, list[str]]):
        self.pages = pages

    def value(self, service: str, name: str, **labels: str) -> float:
        """The sum over the service's processes of the samples named `name` whose labels include `labels`."""
        return sum(
            sample.value
            for page in self.pages[service]
            for sample in _samples(page)
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def samples(self, service: str, name: str) -> list:
        return [sample for page in self.pages[service] for sample in _samples(page) if sample.name == name]


class Prometheus:
    """The stack's Prometheus: its API, and its graph page (the classic one: Debian's package has no other)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def targets(self) -> dict[str, str]:
        """Each scraped process and the health of its last scrape (up, down, unknown)."""
        return {t["labels"]["process"]: t["health"] for t in self._get("targets")["activeTargets"]}

    def alerts(self) -> list[dict]:
        """The alerts pending or firing now."""
        return self._get("alerts")["alerts"]

    def query(self, expression: str) -> list[dict]:
        """An instant query's result: a sample per series, {'metric': labels, 'value': [time, text]}."""
        return self._get(f"query?{urllib.parse.urlencode({'query': expression})}")["result"]

    def graph(self, *expressions: str, over: str = "2m") -> str:
        """The URL of a graph page with one graph per expression."""
        panels = {}
        for n, expression in enumerate(expressions):
            panels |= {f"g{n}.expr": expression, f"g{n}.tab": "0", f"g{n}.range_input": over}
        return f"{self.url}/classic/graph?{urllib.parse.urlencode(panels)}"

    def _get(self, path: str):
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=10) as response:
            return json.loads(response.read())["data"]


def _samples(page: str) -> list:
    with urllib.request.urlopen(page, timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def publish_unreadable(bootstrap_servers: str) -> str:
    """Publish an OrderCreated whose value is not JSON, in a trace of its own; returns the trace id."""
    trace_id = secrets.token_hex(16)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"unreadable-{trace_id}".encode()),
        ("ce_source", b"tests"),
        ("ce_type", b"OrderCreated"),
        ("content-type", b"application/json"),
        ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode()),
    ]
    publish(bootstrap_servers, "orders.events", [(b"unreadable", b"\x00\xffnot json", headers)])
    return trace_id


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {span.id: span for span in spans}


def services(spans: list[Span]) -> set[str]:
    return {span.service for span in spans}


def consumers_by_service(spans: list[Span]) -> dict[str, list[Span]]:
    found = defaultdict(list)
    for span in spans:
        if span.kind == "CONSUMER":
            found[span.service].append(span)
    return found
