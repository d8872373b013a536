"""`python -m bench`: measure the relay baseline, the chain's throughput and
its latency, in one run on one broker; print a table, write .bench/latest.json.

Without ORDERS_URL it starts a fresh local stack of its own and stops it at
the end, Ctrl-C included."""

import argparse
import os
import signal
import sys
import time

from bench import chain, relay, report
from bench.cpu import CpuMeter
from bench.memory import RssSampler
from bench.progress import Progress
from bench.target import Target, open_target
from bench.watcher import ChainWatcher

FULL = {"orders": 20_000, "rate": 100.0, "duration": 20.0, "clients": 256}
SMOKE = {"orders": 300, "rate": 100.0, "duration": 4.0, "clients": 32}
RELAY_WARMUP_S = {False: 10.0, True: 1.0}  # a fresh broker's JIT needs about ten seconds
CHAIN_DEADLINE_S = {False: 1800, True: 60}  # the closed loop stops here, finished or not
LATENCY_WORKERS = 32  # enough threads that the open loop never waits for a free one


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--orders", type=int, help=f"orders measured in steady state (default {FULL['orders']:,})")
    parser.add_argument("--rate", type=float, help=f"offered orders/s of the latency phase (default {FULL['rate']:g})")
    parser.add_argument(
        "--duration", type=float, help=f"seconds of the relay and of the latency phase (default {FULL['duration']:g})"
    )
    parser.add_argument(
        "--clients", type=int, help=f"orders in the chain at once in the closed loop (default {FULL['clients']})"
    )
    parser.add_argument("--smoke", action="store_true", help="a short run that only checks the benchmark works")
    args = parser.parse_args(argv)
    for name, default in (SMOKE if args.smoke else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def measure(args: argparse.Namespace, progress: Progress) -> dict:
    results: dict = {"smoke": args.smoke, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **report.environment()}
    results["load_before"] = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    with open_target(progress.note) as target:
        results |= {"stack": "local" if target.local else "remote", "kafka_version": target.kafka_version()}
        partitions = target.partitions()
        layout = (len(partitions), target.replication_factor())
        warmup = RELAY_WARMUP_S[args.smoke]
        results |= relay.run(target.bootstrap_servers, *layout, args.duration, warmup, progress, target.pids)
        progress.done("relay", f"{results['relay_msgs_per_s']} msgs/s out of hop {relay.HOPS}")
        target.wait_settled()
        watcher = ChainWatcher(target.bootstrap_servers, partitions)
        try:
            with RssSampler(target.pids) as rss:
                results |= _throughput(target, watcher, args, progress)
                results |= _latency(target, watcher, args, progress)
            results["rss_mb"] = rss.summary() if target.local else None
        finally:
            watcher.close()
        results["broker_heap_mb"] = target.broker_heap_mb()
        if target.local:
            results["restarts"] = {name: child.restarts for name, child in target.stack.supervisor.children.items()}
    relay_rate, chain_rate = results.get("relay_msgs_per_s"), results.get("chain_orders_per_s")
    results["ratio"] = round(chain_rate / relay_rate, 4) if relay_rate and chain_rate else None
    results["ratio_cpu"] = _cpu_ratio(results)
    results["args"] = vars(args)
    return results


def _throughput(target: Target, watcher: ChainWatcher, args: argparse.Namespace, progress: Progress) -> dict:
    with CpuMeter(lambda: _ours(target)) as cpu:
        deadline = CHAIN_DEADLINE_S[args.smoke]
        results = chain.throughput(target.orders_url, watcher, args.orders, args.clients, progress, deadline)
    results["chain_cpu"] = cpu.summary(results["chain_orders_total"], "order")
    results["lag_after_chain"] = target.lag()  # a service that fell behind shows here
    progress.done("chain", f"{results['chain_orders_per_s']} orders/s, lag at the end {results['lag_after_chain']:,}")
    settling = time.monotonic()
    results["lag_after_settle"] = target.wait_settled()
    results["settle_s"] = round(time.monotonic() - settling, 1)
    return results


def _latency(target: Target, watcher: ChainWatcher, args: argparse.Namespace, progress: Progress) -> dict:
    with CpuMeter(lambda: _ours(target)) as cpu:
        results = chain.latency(target.orders_url, watcher, args.rate, args.duration, LATENCY_WORKERS, progress)
    results["latency_cpu"] = cpu.summary(results["latency_orders"], "order")
    progress.done("latency", f"p50 {results['p50_ms']} ms, p99 {results['p99_ms']} ms")
    return results


def _cpu_ratio(results: dict) -> float | None:
    """Chain ÷ relay from CPU per order and per message instead of rates: the
    same question, but other work on the machine barely moves the answer.
    Counts the broker and the relay's or the chain's processes, not the bench's."""
    per_message = (results.get("relay_cpu") or {}).get("cpu_ms_per_msg") or {}
    per_order = (results.get("chain_cpu") or {}).get("cpu_ms_per_order") or {}
    relay_ms = sum(ms for name, ms in per_message.items() if name.startswith("bench-") or name == "kafka")
    chain_ms = sum(ms for name, ms in per_order.items() if name != "bench")
    return round(relay_ms / chain_ms, 4) if relay_ms and chain_ms and "kafka" in per_order else None


def _ours(target: Target) -> dict[str, int]:
    return target.pids() | {"bench": os.getpid()}


def _interrupt(*_) -> None:
    """Ctrl-C or SIGTERM: unwind, so the stack is stopped on the way out. Set
    explicitly because a shell starts background jobs with SIGINT ignored."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    args = parse(argv)
    progress = Progress()
    started = time.monotonic()
    try:
        results = measure(args, progress)
    except KeyboardInterrupt:
        progress.note("interrupted; the stack is stopped and nothing was written")
        return 130
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    path = report.write(results)
    print(report.table(results))
    print(f"written to {path} in {results['elapsed_s']:.0f}s")
    if report.missing(results):
        progress.note(f"the run measured nothing for: {', '.join(report.missing(results))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
