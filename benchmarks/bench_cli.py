"""Wall time of `python run.py` vs the plain script, and a 10-job sweep's cost per job.

    python benchmarks/bench_cli.py [--repeats 5] [--sweep-jobs 10]

Runs everything in a temporary directory (a fresh embedded SQLite store per variant, warmed by
one untimed run so that table creation is not counted) and prints a Markdown table.
Target (issue 2): the engine within 2x of the plain script on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE.parent / "run.py"
PLAIN = HERE / "plain_tutorial.py"


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep-jobs", type=int, default=10)
    args = ap.parse_args()
    py = sys.executable
    variants = {
        "plain script (no Hydra, no MLflow)": [py, str(PLAIN)],
        "run.py tracking=none": [py, str(RUN), "tracking=none"],
        "run.py (embedded SQLite MLflow)": [py, str(RUN)],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in variants.items():
            cwd = Path(tmp) / name.split()[0].replace(".", "_") / str(len(rows))
            cwd.mkdir(parents=True)
            timed(cmd, cwd)  # warm-up: file caches, SQLite schema
            times = [timed(cmd, cwd) for _ in range(args.repeats)]
            rows.append((name, statistics.median(times), min(times)))
        base = rows[0][1]
        print("| variant | median s | min s | x plain |")
        print("|---|---|---|---|")
        for name, med, mn in rows:
            print(f"| {name} | {med:.2f} | {mn:.2f} | {med / base:.2f} |")

        cwd = Path(tmp) / "sweep"
        cwd.mkdir()
        timed([py, str(RUN), "tracking.experiment_name=warm"], cwd)
        gammas = ",".join(f"{g:.3g}" for g in [10 ** (-2 + 3 * i / max(args.sweep_jobs - 1, 1))
                                                 for i in range(args.sweep_jobs)])
        total = timed([py, str(RUN), "-m", f"model.gamma={gammas}"], cwd)
        single = rows[2][1]
        print()
        print(f"{args.sweep_jobs}-job sweep (basic launcher, embedded SQLite): {total:.2f} s total, "
              f"{total / args.sweep_jobs:.2f} s per job (single run: {single:.2f} s)")


if __name__ == "__main__":
    main()
