"""`python -m bench.soak` (`make soak`): hours, not minutes. The open loop at a
steady rate for a long time on a fresh local stack, sampling the size of
every store (SQLite files, or PostgreSQL databases), each process's RSS and
each consumer group's lag; at the end, growth
per hour of each, and every effect counted: an accepted order without its
charge or email is lost, a second charge or email (another ce_id) is doubled.
Both must be zero. Prints a table, writes .bench/soak-latest.json; exits 1
when an effect was lost or doubled."""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import threading
import time

from bench import chain, report
from bench.memory import rss_mb
from bench.progress import Progress, until_interrupted
from bench.target import SOAK, Target, open_target
from bench.watcher import STAGES, ChainWatcher
from devstack.stack import StackConfig
from eventbus.store import Store, StoreUnavailable, open_store

WORKERS = 64
WARMUP_SHARE = 0.1  # growth is fitted after the first tenth of the run (caches and pages filling)
RETENTION_S = 60  # the soak's outbox retention: short, so that the window fills within the run


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of load (default 900)")
    parser.add_argument("--rate", type=float, default=100.0, help="orders/s offered (default 100)")
    parser.add_argument("--sample", type=float, help="seconds between samples (default: duration / 30, 5 to 30)")
    parser.add_argument(
        "--retention",
        type=int,
        default=RETENTION_S,
        help=f"OUTBOX_RETENTION_S of the stack (default {RETENTION_S:g})",
    )
    args = parser.parse_args(argv)
    if args.sample is None:
        args.sample = min(max(args.duration / 30, 5.0), 30.0)
    return args


def soak(args: argparse.Namespace, progress: Progress) -> dict:
    os.environ["OUTBOX_RETENTION_S"] = str(args.retention)  # the services inherit it
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **report.environment(), "args": vars(args)}
    with open_target(progress.note, SOAK) as target:
        if not target.local:
            raise SystemExit("make soak runs its own local stack; unset ORDERS_URL")
        config = target.stack.config
        watcher = ChainWatcher(target.bootstrap_servers, target.partitions())
        try:
            figures: dict = {}
            load = threading.Thread(
                target=lambda: figures.update(
                    chain.latency(target.orders_url, watcher, args.rate, args.duration, WORKERS, progress)
                ),
                name="load",
                daemon=True,
            )
            started = time.monotonic()
            samples = []
            load.start()
            while load.is_alive():
                samples.append(_sample(target, config, started))
                load.join(args.sample)
            results["lag_after_settle"] = target.wait_settled()
            samples.append(_sample(target, config, started))
            results |= {key: figures.get(key) for key in ("achieved_rate", "p50_ms", "p99_ms", "http_p99_ms")}
            results["effects"] = _effects(config, watcher, figures.get("accepted_total", 0))
        finally:
            watcher.close()
    results["samples"] = samples
    results["growth_per_hour"] = _growth(samples, args.duration * WARMUP_SHARE)
    return results


def _sample(target: Target, config: StackConfig, started: float) -> dict:
    """Size of every store, outbox rows, RSS per process, lag per group."""
    return {
        "t": round(time.monotonic() - started, 1),
        "file_mb": _sizes_mb(config),
        "outbox_rows": {service: _count(config, service, "SELECT COUNT(*) AS n FROM outbox") for service in SERVICES},
        "rss_mb": {name: rss_mb(pid) for name, pid in target.pids().items()},
        "lag": target.lag_by_group(),
    }


def _effects(config: StackConfig, watcher: ChainWatcher, accepted: int) -> dict:
    """Each accepted order must have exactly one charge and one email."""
    charges = _count(config, "billing", 'SELECT COUNT(*) AS n FROM "charges"')
    emails = _count(config, "notifications", 'SELECT COUNT(*) AS n FROM "emails"', "mailbox")
    emailed = watcher.emailed()
    return {
        "accepted": accepted,
        "charges_in_ledger": charges,
        "emails_in_mailbox": emails,
        "email_sent_seen": emailed,
        "lost": max(accepted - min(charges or 0, emails or 0, emailed), 0),
        "doubled": {event_type.decode(): len(watcher.doubled[event_type]) for event_type in STAGES},
    }


def _growth(samples: list[dict], after_s: float) -> dict:
    """Least-squares slope of every sampled series, per hour, after the warm-up."""
    used = [sample for sample in samples if sample["t"] >= after_s] or samples
    growth: dict = {}
    for kind in ("file_mb", "outbox_rows", "rss_mb", "lag"):
        names = sorted({name for sample in used for name in sample[kind]})
        for name in names:
            points = [(s["t"], s[kind][name]) for s in used if s[kind].get(name) is not None]
            if len(points) < 2 or points[-1][0] == points[0][0]:
                continue
            slope = statistics.linear_regression([t for t, _ in points], [v for _, v in points]).slope
            growth.setdefault(kind, {})[name] = {
                "first": round(points[0][1], 2),
                "last": round(points[-1][1], 2),
                "per_hour": round(slope * 3600, 2),
            }
    return growth


SERVICES = ("orders", "billing", "notifications")


def _sizes_mb(config: StackConfig) -> dict[str, float]:
    """Every SQLite file of the stack, or each service's PostgreSQL database."""
    if config.store == "sqlite":
        return {path.name: path.stat().st_size / 2**20 for path in sorted((config.home / "data").glob("*.db*"))}
    query = "SELECT pg_database_size(current_database()) AS n"
    return {service: (_count(config, service, query) or 0) / 2**20 for service in SERVICES}


def _count(config: StackConfig, service: str, query: str, name: str | None = None) -> int | None:
    """One number from a service's store (`name`: another SQLite file of it); None while it cannot be read."""
    try:
        store: Store = open_store(config.service_settings(service), name)
    except StoreUnavailable:
        return None
    try:
        return store.query(query)[0]["n"]
    except (StoreUnavailable, sqlite3.Error):
        return None
    finally:
        store.close()


def table(r: dict) -> str:
    effects = r["effects"]
    doubled = sum(effects["doubled"].values())
    units = {"file_mb": "MB", "outbox_rows": "rows", "rss_mb": "MB", "lag": "messages"}
    lines = [
        f"soak: {r['args']['duration']:g} s at {r['args']['rate']:g} orders/s offered ({r['achieved_rate']}/s"
        f" achieved), outbox retention {r['args']['retention']:g} s",
        f"latency over the soak: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, POST p99 {r['http_p99_ms']} ms;"
        f" lag after settling {r['lag_after_settle']}",
        f"effects: {effects['accepted']:,} orders accepted, {effects['charges_in_ledger']} charges in billing's"
        f" ledger, {effects['emails_in_mailbox']} emails in the mailbox, {effects['email_sent_seen']} EmailSent seen",
        f"lost effects: {effects['lost']} (target 0)   doubled effects: {doubled} (target 0) {effects['doubled']}",
        f"growth per hour, fitted after the first {WARMUP_SHARE:.0%} of the run:",
        f"  {'what':<34} {'first':>10} {'last':>10} {'per hour':>12}",
    ]
    for kind, series in r["growth_per_hour"].items():
        for name, g in series.items():
            label = f"{kind.split('_')[0]} {name} ({units[kind]})"
            lines.append(f"  {label:<34} {g['first']:>10,.2f} {g['last']:>10,.2f} {g['per_hour']:>+12,.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    progress = Progress()
    results = until_interrupted(lambda: soak(args, progress), progress)
    if results is None:
        return 130
    report.OUT_DIR.mkdir(exist_ok=True)
    path = report.OUT_DIR / "soak-latest.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(f"written to {path}")
    effects = results["effects"]
    return 1 if effects["lost"] or sum(effects["doubled"].values()) or not effects["accepted"] else 0


if __name__ == "__main__":
    sys.exit(main())
