"""`make bench REF=<git ref>`: run that ref's benchmark and this tree's, one
after the other on the same ports with the same settings, print every figure
of this tree as a ratio to the ref's (bench/compare.py) and write them to
`.bench/compare.json`.

The ref is checked out into a throw-away git worktree, RUN_DIR, on the same
disk as this tree (a tmpfs would flatter the ref's Kafka and SQLite), installed
by its own `make install` (its dependencies may differ from this tree's), and
removed at the end, failure and Ctrl-C included. Each side runs its own
Makefile's target with the same NAME=VALUE settings, so an older Makefile
takes the settings it knows and its bench the options it has.

ROUNDS=2 runs ref, tree, tree, ref: a machine that gets busier or quieter
during the run then weighs on both sides alike, and each figure is the median
of its side's runs. One round, ref then tree, takes half as long."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import compare, report
from bench.progress import Progress

RUN_DIR = Path(".run/bench-ref")
REF, TREE = "ref", "tree"
# What a recursive make hands down; a ref whose Makefile knows REF= too would run its own comparison.
MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "REF")


class Stop(Exception):
    """A side could not be run: said in one line, and the run ends."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ref", description=__doc__)
    parser.add_argument("ref", help="a branch, tag, commit or any other git revision")
    parser.add_argument("settings", nargs="*", metavar="NAME=VALUE", help="make variables for both sides")
    parser.add_argument("--target", default="bench", help="the make target each side runs (default bench)")
    parser.add_argument("--rounds", type=int, default=1, help="1: ref, tree; 2: ref, tree, tree, ref; ...")
    args = parser.parse_intermixed_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    return args


def order(rounds: int) -> list[str]:
    """Ref then tree, then the other way round, and so on: over two rounds a
    drift of the machine's other work weighs on both sides alike."""
    return [side for n in range(rounds) for side in ((REF, TREE) if n % 2 == 0 else (TREE, REF))]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    progress = Progress()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    started, stamp = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    sides = order(args.rounds)
    try:
        commit = _commit(args.ref)
        labels = {REF: commit[:7] if commit.startswith(args.ref) else f"{args.ref} ({commit[:7]})", TREE: _tree()}
        runs = _runs(args, commit, labels, sides, progress)
    except Stop as error:
        progress.note(f"bench REF={args.ref}: {error}")
        return 1
    except KeyboardInterrupt:
        progress.note("bench REF: interrupted; the stacks are stopped, the ref's worktree removed, nothing written")
        return 130
    rows = compare.rows(runs[REF], runs[TREE])
    title = (
        f"make {args.target} {' '.join(args.settings)}: this tree {labels[TREE]} against {labels[REF]},"
        f" in the order {', '.join(sides)}"
    )
    print(compare.table(rows, labels[REF], labels[TREE], title))
    elapsed = round(time.monotonic() - started, 1)
    comparison = {
        "started_at": stamp,
        "elapsed_s": elapsed,
        "target": args.target,
        "settings": args.settings,
        "ref": args.ref,
        "ref_commit": commit,
        "tree": labels[TREE],
        "order": sides,
        "rows": [asdict(row) for row in rows],
        "runs": runs,
    }
    print(f"written to {_write(comparison)} in {elapsed:.0f}s")
    return 0


def _runs(args: argparse.Namespace, commit: str, labels: dict, sides: list[str], progress: Progress) -> dict:
    """Each side's results, in the order of `sides`, from the ref's worktree and from here."""
    runs = {REF: [], TREE: []}
    with _worktree(commit, progress) as checkout:
        _step(progress, f"{REF} {labels[REF]}: make install", ["make", "install", *args.settings], checkout)
        places = {REF: checkout, TREE: Path.cwd()}
        for n, side in enumerate(sides, 1):
            what = f"run {n} of {len(sides)}, {side} {labels[side]}: make {args.target} {' '.join(args.settings)}"
            runs[side].append(_bench(progress, what, places[side], args.target, args.settings))
    return runs


def _interrupt(*_) -> None:
    raise KeyboardInterrupt  # SIGTERM too; a shell starts background jobs with SIGINT ignored


def _commit(ref: str) -> str:
    found = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode:
        raise Stop(f"no commit {ref!r} in this repository (not a branch, tag or revision git knows)")
    return found.stdout.strip()


def _tree() -> str:
    """HEAD, and whether the tree has changes of its own beside it."""
    head = _git("rev-parse", "--short", "HEAD").stdout.strip()
    return f"{head}+changes" if _git("status", "--porcelain").stdout.strip() else head


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


@contextmanager
def _worktree(commit: str, progress: Progress) -> Iterator[Path]:
    """The ref checked out in RUN_DIR; a worktree a killed run left there goes first."""
    _remove(RUN_DIR)
    progress.note(f"bench REF: checking {commit[:7]} out into {RUN_DIR}")
    added = _git("worktree", "add", "--detach", str(RUN_DIR), commit)
    if added.returncode:
        raise Stop(f"git worktree add failed: {added.stderr.strip().splitlines()[-1]}")
    try:
        yield RUN_DIR.resolve()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not leave the worktree half removed
        progress.note(f"bench REF: removing {RUN_DIR}")
        _remove(RUN_DIR)


def _remove(path: Path) -> None:
    """The ref's own `make clean` first: its PostgreSQL cluster may live outside the worktree."""
    if path.exists():
        subprocess.run(["make", "clean"], cwd=path, env=_env(), capture_output=True)
        _git("worktree", "remove", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
    _git("worktree", "prune")


def _bench(progress: Progress, what: str, place: Path, target: str, settings: list[str]) -> dict:
    """One side's run; its results as its bench wrote them."""
    latest = place / report.OUT_DIR / "latest.json"
    started = time.time()
    status = _step(progress, what, ["make", target, *settings], place, allow_failure=True)
    if not latest.exists() or latest.stat().st_mtime < started:
        raise Stop(f"{what} failed (status {status}) before writing {latest}")
    return json.loads(latest.read_text())


def _step(progress: Progress, what: str, command: list[str], place: Path, allow_failure: bool = False) -> int:
    """Run `command` in a session of its own, so that only this process gets
    Ctrl-C and hands it on once: the bench then stops its stack in peace."""
    progress.note(f"bench REF: {what}")
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=place, env=_env(), start_new_session=True)
    try:
        status = child.wait()
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        os.killpg(child.pid, signal.SIGINT)
        child.wait()
        raise
    if status and not allow_failure:
        raise Stop(f"{what} failed (status {status}; its output is above)")
    progress.note(f"bench REF: {what}: done in {time.monotonic() - started:.0f}s")
    return status


def _env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in MAKE_ENV}


def _write(comparison: dict) -> Path:
    """Beside latest.json, and kept under its own timestamp, as each run is."""
    report.OUT_DIR.mkdir(exist_ok=True)
    text = json.dumps(comparison, indent=2, sort_keys=True) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (report.OUT_DIR / f"compare-{stamp}.json").write_text(text)
    latest = report.OUT_DIR / "compare.json"
    latest.write_text(text)
    return latest


if __name__ == "__main__":
    sys.exit(main())
