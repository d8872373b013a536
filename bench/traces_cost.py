"""What turning traces on costs: the open loop at the target rate twice on the
same broker, the services restarted before each run, first with traces off (as
the rest of `make bench` measures them), then sending every span to a Zipkin
started for this. Reported as ratios, on over off, of the CPU the services and
the broker spend per order and of POST->EmailSent p99. Zipkin's own CPU is not
counted: it stands for a collector elsewhere."""

import signal
import time
import urllib.request

from bench import chain, report
from bench.cpu import CpuMeter
from bench.target import Target
from bench.watcher import ChainWatcher
from devstack import zipkin
from devstack.stack import SERVICE_GRACE

WARMUP_S = 5.0  # fresh services: let their first fetches and connections happen off the clock


def measure(target: Target, partitions, rate: float, seconds: float, workers: int, progress) -> dict:
    if not target.local:
        return {}  # the services of a stack this run did not start cannot be restarted
    stack = target.stack
    off = _run(target, partitions, rate, seconds, workers, progress)
    progress.done("traces off", f"{off['stack_cpu_ms_per_order']} ms CPU/order, p99 {off['p99_ms']} ms")
    zipkin.fetch()
    stack.zipkin = zipkin.Zipkin(stack.config.zipkin_port)  # from now on the services are started sending it spans
    stack.supervisor.start("zipkin", stack.zipkin.command(), orphan_signal=signal.SIGKILL)
    stack.zipkin.wait_ready(stack.stopping)
    on = _run(target, partitions, rate, seconds, workers, progress)
    progress.done("traces on", f"{on['stack_cpu_ms_per_order']} ms CPU/order, p99 {on['p99_ms']} ms")
    return {
        "traces_off": off,
        "traces_on": on,
        "traces_cpu_ratio": _ratio(on["stack_cpu_ms_per_order"], off["stack_cpu_ms_per_order"]),
        "traces_p99_ratio": _ratio(on["p99_ms"], off["p99_ms"]),
    }


def _run(target: Target, partitions, rate: float, seconds: float, workers: int, progress) -> dict:
    _restart_services(target)
    target.wait_settled()
    watcher = ChainWatcher(target.bootstrap_servers, partitions)
    try:
        chain.latency(target.orders_url, watcher, rate, WARMUP_S, workers, progress)
        target.wait_settled()

        def without_zipkin() -> dict[str, int]:
            return {name: pid for name, pid in target.pids().items() if name != "zipkin"}

        with CpuMeter(without_zipkin) as cpu:
            figures = chain.latency(target.orders_url, watcher, rate, seconds, workers, progress)
    finally:
        watcher.close()
    per_order = cpu.summary(figures["latency_orders"], "order").get("cpu_ms_per_order") or {}
    return {"p99_ms": figures["p99_ms"], "stack_cpu_ms_per_order": report.stack_total(per_order)}


def _restart_services(target: Target) -> None:
    stack = target.stack
    stack.supervisor.stop([name for _, name in stack.processes()], SERVICE_GRACE)
    for service, name in stack.processes():
        stack.start_process(service, name)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{target.orders_url}/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _ratio(on: float | None, off: float | None) -> float | None:
    return round(on / off, 2) if on and off else None
