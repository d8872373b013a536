"""Two commits' figures side by side (`make bench REF=`, bench/ref.py): each
figure of the ref's runs and of this tree's, and this tree's as a ratio to the
ref's. On a shared machine a rate moves from run to run; two runs made one
after the other on the same ports move together, so their ratio is what says
whether a change made the chain faster.

Every figure is read from a run's `.bench/latest.json` by this module, for both
sides alike (a ref's own verdicts are not used), and a figure a ref's bench
did not measure yet is None: shown as a dash, never an error."""

from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

from bench import report

HIGHER, LOWER = "higher", "lower"
DASH = "—"
SWEEP_LIMIT_MS = 1000  # what runs from before `sweep_limit_ms` was recorded used


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    better: str | None  # HIGHER, LOWER, or None: context for reading the others
    read: Callable[[dict, dict], float | None]  # (a run's results, its targets) -> value


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    better: str | None
    ref: float | None
    tree: float | None
    ratio: float | None  # tree ÷ ref
    ref_runs: tuple[float | None, ...]  # each run's, in order: how far apart a side's runs were
    tree_runs: tuple[float | None, ...]


def _key(name: str) -> Callable[[dict, dict], float | None]:
    return lambda results, _: results.get(name)


def _target(name: str) -> Callable[[dict, dict], float | None]:
    return lambda _, targets: targets[name]["value"]


def _stack(
    phase: str, field: str, only: Callable[[str], bool] = lambda _: True
) -> Callable[[dict, dict], float | None]:
    """The broker's and the services' `field` (cores, cpu_ms_per_order) in `phase`,
    summed over the processes `only` keeps."""

    def read(results: dict, _) -> float | None:
        per_process = (results.get(phase) or {}).get(field)
        return report.stack_total({n: v for n, v in per_process.items() if only(n)}) if per_process else None

    return read


def _broker(name: str) -> bool:
    return name == "kafka"


def _services(name: str) -> bool:
    return name != "kafka"  # and PostgreSQL, with STORE=postgres: the services' own work


def _rss(process: str) -> Callable[[dict, dict], float | None]:
    return lambda results, _: ((results.get("rss_mb") or {}).get(process) or {}).get("peak_mb")


def _other_work(results: dict, _) -> float | None:
    return (results.get("latency_cpu") or {}).get("other_cores_busy")


FIGURES = (
    Figure("Relay baseline (3 hops)", " msgs/s", HIGHER, _key("relay_msgs_per_s")),
    Figure("Fan-out baseline (chain-shaped)", " orders/s", HIGHER, _key("fanout_orders_per_s")),
    Figure("Chain throughput (closed loop)", " orders/s", HIGHER, _key("chain_orders_per_s")),
    Figure("Chain / fan-out, orders/s", "%", HIGHER, _target("chain_vs_fanout")),
    Figure("Stack CPU/order, closed loop", " ms", LOWER, _stack("chain_cpu", "cpu_ms_per_order")),
    Figure("Broker CPU/order, closed loop", " ms", LOWER, _stack("chain_cpu", "cpu_ms_per_order", _broker)),
    Figure("Services CPU/order, closed loop", " ms", LOWER, _stack("chain_cpu", "cpu_ms_per_order", _services)),
    Figure("Chain / fan-out, by CPU/order", "%", HIGHER, _target("chain_vs_fanout_by_cpu")),
    Figure("POST->EmailSent p50 @ rate", " ms", LOWER, _key("p50_ms")),
    Figure("POST->EmailSent p95 @ rate", " ms", LOWER, _key("p95_ms")),
    Figure("POST->EmailSent p99 @ rate", " ms", LOWER, _key("p99_ms")),
    Figure("POST response p99 @ rate", " ms", LOWER, _key("http_p99_ms")),
    Figure(f"POST->EmailSent p99 @ {report.LOW_RATE}/s", " ms", LOWER, _target("p99_at_25_ms")),
    Figure("Stack CPU/order @ rate", " ms", LOWER, _stack("latency_cpu", "cpu_ms_per_order")),
    Figure("Broker CPU/order @ rate", " ms", LOWER, _stack("latency_cpu", "cpu_ms_per_order", _broker)),
    Figure("Services CPU/order @ rate", " ms", LOWER, _stack("latency_cpu", "cpu_ms_per_order", _services)),
    Figure("Stack cores busy @ rate", " cores", LOWER, _stack("latency_cpu", "cores")),
    Figure("Highest rate with p99 <= 1 s", " orders/s", HIGHER, _target("highest_rate_p99_under_1s")),
    Figure("Stack at rest", "% core", LOWER, _key("idle_pct_of_core")),
    Figure("Traces on / off, CPU/order", "x", LOWER, _key("traces_cpu_ratio")),
    Figure("Traces on / off, p99", "x", LOWER, _key("traces_p99_ratio")),
    *(Figure(f"RSS {name} (peak)", " MB", LOWER, _rss(name)) for name in ("orders", "billing", "notifications")),
    Figure("Broker RSS (peak)", " MB", LOWER, _rss("kafka")),
    Figure("Other work @ rate", " cores", None, _other_work),
    Figure("Load average before the run", "", None, _key("load_before")),
    Figure("Run took", " s", None, _key("elapsed_s")),
)


def figures(results: dict) -> dict[str, float | None]:
    """One run's figures by name."""
    targets = report.targets({"sweep_limit_ms": SWEEP_LIMIT_MS} | results)
    return {figure.name: figure.read(results, targets) for figure in FIGURES}


def rows(ref_runs: list[dict], tree_runs: list[dict]) -> list[Row]:
    """Each figure: the median of the ref's runs, of the tree's, and tree ÷ ref."""
    ref = [figures(results) for results in ref_runs]
    tree = [figures(results) for results in tree_runs]
    found = []
    for figure in FIGURES:
        refs, trees = tuple(run[figure.name] for run in ref), tuple(run[figure.name] for run in tree)
        before, after = _median(refs), _median(trees)
        ratio = round(after / before, 3) if before and after is not None else None
        found.append(Row(figure.name, figure.unit, figure.better, before, after, ratio, refs, trees))
    return found


def _median(values) -> float | None:
    present = [value for value in values if value is not None]
    return round(median(present), 3) if present else None


def table(found: list[Row], ref_label: str, tree_label: str, title: str) -> str:
    width = max(len(row.name) for row in found)
    ref_label, tree_label = ref_label[:16], tree_label[:16]
    lines = [
        title,
        f"{'Figure':<{width}}  {ref_label:>16}  {tree_label:>16}  {'tree / ref':>10}  Better",
        "-" * (width + 58),
    ]
    for row in found:
        ratio = DASH if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"{row.name:<{width}}  {show(row.ref, row.unit):>16}  {show(row.tree, row.unit):>16}"
            f"  {ratio:>10}  {row.better or ''}"
        )
    return "\n".join(lines)


def show(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    if unit == "%":
        return f"{value:.1%}"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}{unit}"
