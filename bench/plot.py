"""The sweep as a picture: latency and cores busy against offered load."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none wanted

import matplotlib.pyplot as plt  # noqa: E402


def draw(steps: list[dict], limit_ms: float, path: Path) -> Path:
    """p50 and p99 POST -> EmailSent (log scale) and cores busy, by offered orders/s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offered = [step["offered"] for step in steps]
    figure, (latency, cores) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, height_ratios=(3, 2))
    for key, label, style in (("p50_ms", "p50", "o-"), ("p99_ms", "p99", "s-")):
        latency.plot(offered, [step[key] for step in steps], style, label=f"{label} POST → EmailSent")
    latency.plot(offered, [step["http_p99_ms"] for step in steps], "^:", label="p99 POST response")
    latency.axhline(limit_ms, color="grey", linewidth=0.8, linestyle="--")
    latency.set_yscale("log")
    latency.set_ylabel("ms (log scale)")
    latency.legend(loc="upper left", fontsize="small")
    latency.grid(True, which="both", alpha=0.3)
    latency.set_title("event-driven: latency and CPU against offered load")
    cores.plot(offered, [step["stack_cores"] for step in steps], "o-", label="stack (broker + services)")
    cores.plot(offered, [step["bench_cores"] for step in steps], "x:", label="the bench itself")
    cores.plot(offered, [step["machine_cores"] for step in steps], "d--", label="whole machine")
    cores.set_ylabel("cores busy")
    cores.set_xlabel("offered orders/s (open loop)")
    cores.legend(loc="upper left", fontsize="small")
    cores.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
