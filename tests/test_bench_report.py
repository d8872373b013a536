"""The bench's verdicts: a target is judged only from its kind of run (quiet or
one core busy) and never from a noisy one; a missed target says where to look."""

from bench import report

STAGES = {name: {"p50": 5.0, "p99": 9.0} for name in ("orders", "billing", "notifications", "observed")}


def run(busy_core: bool = False, other_cores: float = 0.0, p99_ms: float = 40.0) -> dict:
    phase = {"other_cores_busy": other_cores, "cores": {"kafka": 0.2, "orders": 0.2}, "cpu_ms_per_order": {}}
    return {
        "busy_core": busy_core,
        "offered_rate": 100.0,
        "achieved_rate": 99.5,
        "latency_lost": 0,
        "p50_ms": 12.0,
        "p99_ms": p99_ms,
        "sweep_limit_ms": 1000,
        "latency_stages_ms": STAGES,
        "latency_cpu": phase,
        "chain_cpu": phase,
        "idle_cpu": phase,
    }


def test_a_quiet_run_judges_the_quiet_targets_and_leaves_the_loaded_ones():
    verdicts = report.targets(run())
    assert verdicts["p50_ms"]["met"] is True and verdicts["p99_ms"]["met"] is True
    assert verdicts["loaded_p99_ms"]["met"] is None
    assert "loaded run" in verdicts["loaded_p99_ms"]["why"]


def test_a_run_with_one_core_busy_judges_the_loaded_targets_only():
    verdicts = report.targets(run(busy_core=True, other_cores=1.1, p99_ms=120.0))
    assert verdicts["loaded_p99_ms"]["met"] is True and verdicts["loaded_keeps_up"]["met"] is True
    assert verdicts["p99_ms"]["met"] is None


def test_a_noisy_run_claims_no_target_met():
    verdicts = report.targets(run(other_cores=0.6))
    assert {verdict["met"] for verdict in verdicts.values()} == {None}
    assert "0.60 cores" in verdicts["p50_ms"]["why"]
    loaded = report.targets(run(busy_core=True, other_cores=1.6))
    assert loaded["loaded_p99_ms"]["met"] is None


def test_a_missed_latency_target_names_the_stages():
    verdict = report.targets(run(p99_ms=80.0))["p99_ms"]
    assert verdict["met"] is False
    assert verdict["why"].startswith("p99 by stage: orders 9.0")


def test_the_documentation_page_is_the_table_of_the_run_with_its_sweep_and_picture():
    results = run() | {
        "started_at": "2026-01-02T03:04:05+0000",
        "machine": "Linux x86_64",
        "store": "sqlite",
        "sweep": [
            {"offered": 25.0, "achieved": 24.9, "p50_ms": 8.4, "p99_ms": 19.1, "http_p99_ms": 4.0, "stack_cores": 0.3}
        ],
    }
    page = report.markdown(results)
    assert page.startswith("# Latest figures\n")
    assert "Measured at 2026-01-02T03:04:05+0000 on Linux x86_64, store sqlite." in page
    assert "![Latency and cores busy against offered load](bench-latest.png)" in page
    assert "| 3. POST->EmailSent p50 @ 100/s | 12.0 ms | <= 15.0 ms | yes |" in page
    assert "| 25 | 24.9 | 8.4 ms | 19.1 ms | 4.0 ms | 0.30 |" in page
    table_rows = [line for line in page.splitlines() if line.startswith("| ")]
    assert len(table_rows) == len(report.rows(results)) + 3  # the two headers, and the sweep's one step


def test_publish_writes_the_page_and_copies_the_picture(tmp_path):
    picture = tmp_path / "latest.png"
    picture.write_bytes(b"\x89PNG")
    page = report.publish(run() | {"sweep": []}, picture, docs=tmp_path)
    assert page == tmp_path / "performance-latest.md" and page.read_text().startswith("# Latest figures")
    assert (tmp_path / "bench-latest.png").read_bytes() == b"\x89PNG"


def test_a_bar_in_a_cell_does_not_split_the_row():
    assert report._cell("a|b") == "a\\|b" and report._cell("") == " "


def test_every_target_is_judged_from_one_file_and_says_where_it_came_from():
    judged = set(report.targets(run())) | {"rss_mb", "broker_heap_mb"}
    assert judged == set(report.TARGETS)
    assert all(target["source"] for target in report.TARGETS.values())
