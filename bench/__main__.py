"""`python -m bench`: measure the two baselines, the chain's throughput, its
latency against offered load and the stack at rest, in one run on one broker;
print a table with the targets, write .bench/latest.json and .bench/latest.png,
and (but for --smoke) the documentation's page of the latest figures with that
picture: docs/performance-latest.md and docs/bench-latest.png.

Without ORDERS_URL it starts a fresh local stack of its own and stops it at
the end, Ctrl-C included."""

import argparse
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from bench import baselines, chain, plot, report, traces_cost
from bench.busy import busy_core
from bench.cpu import CpuMeter
from bench.memory import RssSampler
from bench.progress import Progress, until_interrupted
from bench.target import LOCAL, Target, open_target
from bench.watcher import ChainWatcher

FULL = {"orders": 10_000, "rate": 100.0, "duration": 20.0, "clients": 256, "step": 8.0, "idle": 20.0}
SMOKE = {"orders": 300, "rate": 100.0, "duration": 3.0, "clients": 32, "step": 1.5, "idle": 2.0}
BASELINE_S = {False: 15.0, True: 2.0}
WARMUP_S = {False: 10.0, True: 1.0}  # a fresh broker's JIT needs about ten seconds; the relay runs first
CHAIN_DEADLINE_S = {False: 1800, True: 60}  # the closed loop stops here, finished or not
LATENCY_WORKERS = 64  # enough threads that the open loop never waits for a free one
SWEEP = (25, 50, 100, 150, 225, 340, 500, 750, 1100, 1700)  # orders/s offered, until p99 passes the limit
SMOKE_SWEEP = (25, 50, 100)
SWEEP_LIMIT_MS = 1000
BUSY_CORE_LIMIT_S = 3600  # the busy loop of --busy-core ends by itself after this, whatever happens
SETTLE_BEFORE_IDLE_S = 3.0  # consumers go back to slow fetches after their first empty poll


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--orders", type=int, help=f"orders measured in steady state (default {FULL['orders']:,})")
    parser.add_argument("--rate", type=float, help=f"orders/s of the latency targets (default {FULL['rate']:g})")
    parser.add_argument("--duration", type=float, help=f"seconds at --rate (default {FULL['duration']:g})")
    parser.add_argument("--step", type=float, help=f"seconds at each other rate swept (default {FULL['step']:g})")
    parser.add_argument("--sweep-to", type=float, help="the highest rate swept (default: until p99 passes 1 s)")
    parser.add_argument("--idle", type=float, help=f"seconds the stack is measured at rest (default {FULL['idle']:g})")
    parser.add_argument(
        "--clients", type=int, help=f"orders in the chain at once in the closed loop (default {FULL['clients']})"
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip both baselines (to compare two commits)")
    parser.add_argument("--smoke", action="store_true", help="a short run that only checks the benchmark works")
    parser.add_argument(
        "--busy-core", action="store_true", help="keep one core busy with a loop for the whole run (other work)"
    )
    args = parser.parse_args(argv)
    for name, default in (SMOKE if args.smoke else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def measure(args: argparse.Namespace, progress: Progress) -> dict:
    results: dict = {"smoke": args.smoke, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **report.environment()}
    results["load_before"] = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    results["busy_core"] = args.busy_core
    other_work = busy_core(BUSY_CORE_LIMIT_S) if args.busy_core else nullcontext()
    with open_target(progress.note) as target, other_work:
        results |= {"stack": "local" if target.local else "remote", "kafka_version": target.kafka_version()}
        results["store"] = LOCAL.store if target.local else None  # a remote stack's is not known here
        partitions = target.partitions()
        layout = (target.bootstrap_servers, len(partitions), target.replication_factor())
        seconds = BASELINE_S[args.smoke]
        shapes = [] if args.no_baselines else [(baselines.RELAY, WARMUP_S[args.smoke]), (baselines.FANOUT, 1.0)]
        for shape, warmup in shapes:
            results |= baselines.run(shape, *layout, seconds, warmup, progress, target.pids)
            rate = results[f"{shape.name}_{shape.unit}s_per_s"]
            progress.done(shape.name, f"{rate} {shape.unit}s/s out of {len(shape.hops)} consumer groups")
        target.wait_settled()
        watcher = ChainWatcher(target.bootstrap_servers, partitions)
        try:
            with RssSampler(target.pids) as rss:
                results |= _throughput(target, watcher, args, progress)
                results |= _sweep(target, watcher, args, progress)
            results["rss_mb"] = rss.summary() if target.pids() else None
        finally:
            watcher.close()
        results |= _idle(target, args, progress)
        if not args.smoke:  # last: it restarts the services, with traces on the second time
            results |= traces_cost.measure(target, partitions, args.rate, args.duration, LATENCY_WORKERS, progress)
        results["broker_heap_mb"] = target.broker_heap_mb()
        if target.local:
            results["restarts"] = {name: child.restarts for name, child in target.stack.supervisor.children.items()}
    results["args"] = vars(args)
    results["targets"] = report.targets(results)
    return results


def _throughput(target: Target, watcher: ChainWatcher, args: argparse.Namespace, progress: Progress) -> dict:
    with CpuMeter(lambda: _ours(target, watcher)) as cpu:
        deadline = CHAIN_DEADLINE_S[args.smoke]
        results = chain.throughput(target.orders_url, watcher, args.orders, args.clients, progress, deadline)
    results["chain_cpu"] = cpu.summary(results["chain_orders_total"], "order")
    results["lag_after_chain"] = target.lag()  # a service that fell behind shows here
    progress.done("chain", f"{results['chain_orders_per_s']} orders/s, lag at the end {results['lag_after_chain']:,}")
    settling = time.monotonic()
    results["lag_after_settle"] = target.wait_settled()
    results["settle_s"] = round(time.monotonic() - settling, 1)
    return results


def _sweep(target: Target, watcher: ChainWatcher, args: argparse.Namespace, progress: Progress) -> dict:
    """The open loop at rising rates until p99 passes SWEEP_LIMIT_MS; the step
    at --rate runs for --duration and gives the latency targets."""
    rates = sorted(set(SMOKE_SWEEP if args.smoke else SWEEP) | {args.rate})
    rates = [rate for rate in rates if args.sweep_to is None or rate <= max(args.sweep_to, args.rate)]
    steps, results = [], {}
    for rate in rates:
        seconds = args.duration if rate == args.rate else args.step
        with CpuMeter(lambda: _ours(target, watcher)) as cpu:
            figures = chain.latency(target.orders_url, watcher, rate, seconds, LATENCY_WORKERS, progress)
        figures["latency_cpu"] = cpu.summary(figures["latency_orders"], "order")
        steps.append(_step(figures))
        progress.done(f"{rate:g}/s", f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
        if rate == args.rate:
            results |= figures
        target.wait_settled()
        if rate >= args.rate and (figures["p99_ms"] is None or figures["p99_ms"] > SWEEP_LIMIT_MS):
            break
    results["sweep"] = steps
    results["sweep_limit_ms"] = SWEEP_LIMIT_MS
    results["picture"] = str(plot.draw(steps, SWEEP_LIMIT_MS, report.OUT_DIR / "latest.png"))
    return results


def _step(figures: dict) -> dict:
    """One point of the picture."""
    cpu = figures["latency_cpu"]
    return {
        "offered": figures["offered_rate"],
        "achieved": figures["achieved_rate"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "http_p99_ms": figures["http_p99_ms"],
        "lost": figures["latency_lost"],
        "stack_cores": report.stack_total(cpu["cores"]),
        "bench_cores": report.bench_total(cpu["cores"]),
        "machine_cores": cpu["machine_cores_busy"],
        "stack_cpu_ms_per_order": report.stack_total(cpu.get("cpu_ms_per_order") or {}),
    }


def _idle(target: Target, args: argparse.Namespace, progress: Progress) -> dict:
    """The stack at rest after the load (no watcher, no clients): what it costs
    a laptop to keep it running."""
    target.wait_settled()
    time.sleep(SETTLE_BEFORE_IDLE_S)
    with CpuMeter(target.pids) as cpu:
        time.sleep(args.idle)
    summary = cpu.summary(0, "order")
    idle_pct = round(100 * sum(summary["cores"].values()), 1)
    idle = {"idle_cpu": summary, "idle_s": args.idle, "idle_pct_of_core": idle_pct}
    progress.done("idle", f"{idle['idle_pct_of_core']}% of one core for the whole stack at rest")
    return idle


def _ours(target: Target, watcher: ChainWatcher | None = None) -> dict[str, int | str]:
    """The stack's processes, this one, and the watcher's threads within it."""
    return target.pids() | {"bench": os.getpid()} | (watcher.threads() if watcher else {})


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    progress = Progress()
    started = time.monotonic()
    results = until_interrupted(lambda: measure(args, progress), progress)
    if results is None:
        return 130
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    path = report.write(results)
    print(report.table(results))
    print(f"written to {path} and {results['picture']} in {results['elapsed_s']:.0f}s")
    if not args.smoke:
        print(f"and for the documentation: {report.publish(results, Path(results['picture']))}")
    if report.missing(results):
        progress.note(f"the run measured nothing for: {', '.join(report.missing(results))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
