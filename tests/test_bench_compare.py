"""`make bench REF=`: each figure of the tree as a ratio to the ref's, the
median of each side's runs, a dash for what an older bench did not measure,
and a ref git does not know stopped in one line before anything runs."""

import subprocess
import sys

from bench import compare, ref


def run(chain: float | None = 100.0, p99: float | None = 40.0, **more) -> dict:
    return {"chain_orders_per_s": chain, "p99_ms": p99, "sweep_limit_ms": 1000, **more}


def row(rows: list[compare.Row], name: str) -> compare.Row:
    return next(found for found in rows if found.name == name)


def test_each_figure_is_the_tree_as_a_ratio_to_the_ref_with_the_better_direction():
    rows = compare.rows([run(chain=100.0, p99=40.0)], [run(chain=125.0, p99=30.0)])
    chain = row(rows, "Chain throughput (closed loop)")
    assert (chain.ref, chain.tree, chain.ratio, chain.better) == (100.0, 125.0, 1.25, compare.HIGHER)
    p99 = row(rows, "POST->EmailSent p99 @ rate")
    assert (p99.ratio, p99.better) == (0.75, compare.LOWER)


def test_each_side_is_the_median_of_its_runs():
    rows = compare.rows([run(chain=90.0), run(chain=110.0)], [run(chain=100.0), run(chain=300.0), run(chain=120.0)])
    chain = row(rows, "Chain throughput (closed loop)")
    assert (chain.ref, chain.tree) == (100.0, 120.0)
    assert chain.tree_runs == (100.0, 300.0, 120.0)


def test_a_figure_the_refs_bench_lacks_is_a_dash_not_an_error():
    old = {"chain_orders_per_s": 80.0}  # an old bench: no sweep, no CPU, no baselines
    rows = compare.rows([old], [run(sweep=[{"offered": 25, "p99_ms": 20.0}], relay_msgs_per_s=9000.0)])
    relay = row(rows, "Relay baseline (3 hops)")
    assert relay.ref is None and relay.ratio is None
    text = compare.table(rows, "old", "tree", "title")
    relay_line = next(line for line in text.splitlines() if line.startswith("Relay baseline"))
    assert relay_line.split()[4:] == [compare.DASH, "9,000", "msgs/s", compare.DASH, "higher"]


def test_a_run_from_before_the_sweep_limit_was_recorded_still_compares():
    sweep = [{"offered": 25, "p99_ms": 20.0}, {"offered": 50, "p99_ms": 2000.0}]
    rows = compare.rows([{"sweep": sweep}], [run(sweep=sweep)])
    assert row(rows, "Highest rate with p99 <= 1 s").ratio == 1.0


def test_two_rounds_run_ref_tree_tree_ref_so_a_drift_weighs_on_both_sides():
    assert ref.order(1) == [ref.REF, ref.TREE]
    assert ref.order(2) == [ref.REF, ref.TREE, ref.TREE, ref.REF]


def test_a_ref_git_does_not_know_stops_in_one_line_before_anything_runs():
    done = subprocess.run(
        [sys.executable, "-m", "bench.ref", "no-such-ref-0e1f"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "bench REF=no-such-ref-0e1f: no commit 'no-such-ref-0e1f' in this repository"
        " (not a branch, tag or revision git knows)"
    ]
