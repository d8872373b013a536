"""The few numbers the phases need: percentiles, and rates over the steady part
of a run (the ramp-up while clients connect and the drain at the end would make
any throughput look worse than the system really is)."""

import math


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest-rank: a value that really occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate_between(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """Events per second between `start` and `end`, from (time, running count) samples."""
    inside = [(t, count) for t, count in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0)


def rate_of_middle(times: list[float], skip: int, count: int) -> tuple[float | None, int]:
    """Completions per second over `count` completions after the first `skip` ones.

    Returns the rate and how many completions it really covers (fewer when the
    run ended early)."""
    ordered = sorted(times)[skip : skip + count]
    if len(ordered) < 2 or ordered[-1] <= ordered[0]:
        return None, len(ordered)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0]), len(ordered)
