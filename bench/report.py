"""The results: a table for people and `.bench/latest.json` for comparisons
between runs (each run is also kept under its own timestamp). The targets come
from the issue; they are reported, never asserted."""

import json
import os
import platform
import sqlite3
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

OUT_DIR = Path(".bench")
LIBRARIES = (
    "kafka-python",
    "bottle",
    "waitress",
    "jsonschema",
    "jsonschema-rs",
    "cloudevents",
    "sqlite-utils",
    "crc32c",
)
REQUIRED = (
    "relay_msgs_per_s",
    "chain_orders_per_s",
    "ratio",
    "offered_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "http_p99_ms",
    "kafka_version",
    "libraries",
    "cores",
)
RSS_TARGET_MB = 80
HEAP_TARGET_MB = 512


def environment() -> dict:
    """What the figures depend on besides the code: versions and the machine."""
    libraries = {}
    for name in LIBRARIES:
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = None
    return {
        "libraries": libraries,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()} {platform.release()}",
    }


def missing(results: dict) -> list[str]:
    """The figures a run must produce whatever the speed; any missing means the benchmark is broken."""
    return [name for name in REQUIRED if results.get(name) is None]


def write(results: dict) -> Path:
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=2, sort_keys=True) + "\n"
    (OUT_DIR / f"{stamp}.json").write_text(text)
    latest = OUT_DIR / "latest.json"
    latest.write_text(text)
    return latest


def table(results: dict) -> str:
    r = results
    rows = [
        ("Relay baseline (3 hops)", _num(r.get("relay_msgs_per_s"), " msgs/s"), "", ""),
        ("Chain throughput", _num(r.get("chain_orders_per_s"), " orders/s"), "", ""),
        ("Chain / relay", _pct(r.get("ratio")), ">= 60%", _check(r.get("ratio"), 0.60, above=True)),
        ("Chain / relay by CPU per unit", _pct(r.get("ratio_cpu")), "", ""),
        (
            f"POST->EmailSent p50 @ {r.get('offered_rate'):g}/s",
            _num(r.get("p50_ms"), " ms"),
            "<= 15 ms",
            _check(r.get("p50_ms"), 15),
        ),
        ("POST->EmailSent p95", _num(r.get("p95_ms"), " ms"), "", ""),
        ("POST->EmailSent p99", _num(r.get("p99_ms"), " ms"), "<= 50 ms", _check(r.get("p99_ms"), 50)),
        ("POST response p99", _num(r.get("http_p99_ms"), " ms"), "<= 10 ms", _check(r.get("http_p99_ms"), 10)),
    ]
    rss = r.get("rss_mb") or {}
    for name in sorted(name for name in rss if name != "kafka") or ["services"]:
        peak = rss.get(name, {}).get("peak_mb")
        rows.append((f"RSS {name} (peak)", _num(peak, " MB"), f"<= {RSS_TARGET_MB} MB", _check(peak, RSS_TARGET_MB)))
    heap = r.get("broker_heap_mb")
    rows.append(("Broker heap cap (-Xmx)", _num(heap, " MB"), f"<= {HEAP_TARGET_MB} MB", _check(heap, HEAP_TARGET_MB)))
    rows.append(("Broker RSS (peak)", _num(rss.get("kafka", {}).get("peak_mb"), " MB"), "", ""))
    width = max(len(row[0]) for row in rows)
    lines = [
        _title(r),
        f"{'Measure':<{width}}  {'Value':>16}  {'Target':<9} Met",
        "-" * (width + 34),
    ]
    lines += [f"{name:<{width}}  {value:>16}  {target:<9} {met}" for name, value, target, met in rows]
    return "\n".join(lines + _notes(r))


def _title(r: dict) -> str:
    libraries = r.get("libraries", {})
    return (
        f"event-driven benchmark ({'smoke, ' if r.get('smoke') else ''}{r.get('stack')} stack): "
        f"Kafka {r.get('kafka_version')}, kafka-python {libraries.get('kafka-python')}, "
        f"Python {r.get('python')}, {r.get('cores')} cores"
    )


def _notes(r: dict) -> list[str]:
    """What the table rests on, and the figures that say where to look next."""
    notes = [
        f"chain: {r.get('chain_orders', 0):,} orders in steady state, {r.get('chain_clients')} at a time"
        f" ({r.get('chain_http_errors', 0)} HTTP errors, {r.get('chain_lost', 0)} without EmailSent);"
        f" latency: {r.get('latency_orders', 0):,} orders at {r.get('offered_rate'):g}/s offered,"
        f" {r.get('achieved_rate')}/s achieved ({r.get('latency_lost', 0)} without EmailSent)"
    ]
    stages = r.get("latency_stages_ms") or {}
    if stages:
        by_stage = ", ".join(f"{name} {_num(value['p50'], ' ms')}" for name, value in stages.items())
        notes.append(f"latency p50 by stage (from each event's produce time): {by_stage}")
    per_order = (r.get("chain_cpu") or {}).get("cpu_ms_per_order") or {}
    if per_order:
        notes.append("CPU per order in the closed loop: " + ", ".join(f"{n} {v:.2f} ms" for n, v in per_order.items()))
    per_message = (r.get("relay_cpu") or {}).get("cpu_ms_per_msg") or {}
    if per_message:
        notes.append("CPU per relayed message: " + ", ".join(f"{n} {v * 1000:.0f} us" for n, v in per_message.items()))
    phases = [r.get(phase) or {} for phase in ("relay_cpu", "chain_cpu", "latency_cpu")]
    busy = " / ".join(f"{p.get('machine_cores_busy', 0):.1f} ({p.get('other_cores_busy', 0):.1f})" for p in phases)
    notes.append(
        f"cores busy in relay / chain / latency (by other work): {busy} of {r.get('cores')};"
        f" load average before the run {r.get('load_before')}"
    )
    return notes


def _num(value, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _check(value, limit: float, above: bool = False) -> str:
    if value is None:
        return ""
    return "yes" if (value >= limit if above else value <= limit) else "NO"
