"""A 16-job gamma sweep: basic launcher vs joblib with 2 workers; a job's cost inside a sweep.

    python benchmarks/bench_sweeps.py [--jobs 16] [--repeats 2]

Each variant runs in its own temporary directory against the embedded SQLite store (warmed by
one untimed single run). Needs the `sweep` extra. Prints a Markdown table.
Target (issue 3): joblib at least 1.6x faster than basic on 2 cores; a job inside a sweep costs
little more than its own computation. Four scenario sizes show where joblib's fixed cost (each
worker process imports Hydra, scikit-learn, Matplotlib and MLflow: ~3 s) stops dominating.
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
    ap.add_argument("--sizes", default="", help="comma-separated indices of the sizes to run (default: all)")
    args = ap.parse_args()
    gammas = ",".join(f"{10 ** (-3 + 4 * i / (args.jobs - 1)):.4g}" for i in range(args.jobs))
    sizes = {
        "tutorial size (199+1 target rows)": [],
        "10x rows (1990+1 target, 2000 shadow)": ["data.classes.responders.size=990",
                                                  "data.classes.non_responders.size=1000",
                                                  "shadow.size_per_class=1000"],
        "30x rows (5970+1 target, 6000 shadow)": ["data.classes.responders.size=2970",
                                                  "data.classes.non_responders.size=3000",
                                                  "shadow.size_per_class=3000"],
        "60x rows (11940+1 target, 12000 shadow)": ["data.classes.responders.size=5970",
                                                    "data.classes.non_responders.size=6000",
                                                    "shadow.size_per_class=6000"],
    }
    if args.sizes:
        sizes = {k: v for i, (k, v) in enumerate(sizes.items()) if str(i) in args.sizes.split(",")}
    launchers = {
        "basic launcher": [],
        "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    }
    print(f"| {args.jobs}-job gamma sweep | launcher | total s | s per job | speed-up vs basic | single run s "
          "(MLflow / tracking=none) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (size_name, size_args) in enumerate(sizes.items()):
            single_dir = Path(tmp) / f"single{k}"
            single_dir.mkdir()
            timed(size_args, single_dir)
            single = statistics.median(timed(size_args, single_dir) for _ in range(3))
            bare = statistics.median(timed([*size_args, "tracking=none"], single_dir) for _ in range(3))
            basic = None
            for name, launcher_args in launchers.items():
                times = []
                for r in range(args.repeats):
                    d = Path(tmp) / f"{k}{name.split()[0]}{r}"
                    d.mkdir()
                    timed(["tracking.experiment_name=warm"], d)  # create the store first
                    times.append(timed(["-m", *launcher_args, *size_args, f"model.gamma={gammas}"], d))
                t = statistics.median(times)
                basic = basic or t
                print(f"| {size_name} | {name} | {t:.1f} | {t / args.jobs:.2f} | {basic / t:.2f} | "
                      f"{single:.2f} / {bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()
