"""A 16-job gamma sweep: basic launcher vs joblib with 2 workers; a job's cost inside a sweep.

    python benchmarks/bench_sweeps.py [--jobs 16] [--repeats 2]

Each variant runs in its own temporary directory against the embedded SQLite store (warmed by
one untimed single run). Needs the `sweep` extra. Prints a Markdown table.
Target (issue 3): joblib at least 1.6x faster than basic on 2 cores; a job inside a sweep costs
little more than its own computation.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "run.py"


def timed(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, str(RUN), *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    gammas = ",".join(f"{10 ** (-3 + 4 * i / (args.jobs - 1)):.4g}" for i in range(args.jobs))
    variants = {
        "basic launcher": ["-m", f"model.gamma={gammas}"],
        "joblib, 2 workers": ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"model.gamma={gammas}"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        single_dir = Path(tmp) / "single"
        single_dir.mkdir()
        timed([], single_dir)
        single = statistics.median(timed([], single_dir) for _ in range(3))
        computation = statistics.median(timed(["tracking=none"], single_dir) for _ in range(3))
        for name, argv in variants.items():
            times = []
            for r in range(args.repeats):
                d = Path(tmp) / f"{name.split()[0]}{r}"
                d.mkdir()
                timed(["tracking.experiment_name=warm"], d)  # create the store first
                times.append(timed(argv, d))
            rows.append((name, statistics.median(times)))
    basic = rows[0][1]
    print(f"| {args.jobs}-job gamma sweep | total s | s per job | speed-up vs basic |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.1f} | {t / args.jobs:.2f} | {basic / t:.2f} |")
    print()
    print(f"single run: {single:.2f} s with MLflow, {computation:.2f} s with tracking=none; "
          f"a job inside the basic sweep: {basic / args.jobs:.2f} s")


if __name__ == "__main__":
    main()
