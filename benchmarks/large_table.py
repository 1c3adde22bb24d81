"""Memory flatness on a large table: peak RSS of `python run.py` with 64 and 16 reference models.

    python benchmarks/large_table.py [--rows 100000] [--n-models 64,16] [--n-estimators auto|N]
                                     [--budget 900] [--quick] [override ...]

The table: ``--rows`` (100,000) rows drawn with NumPy from the tutorial's population
(conf/data/cancer_patients.yaml), half responders (label 1), half non-responders (label 0),
six features with the tutorial's distributions per class: diabetes, asthma and smoker
Bernoulli(p); bmi_group and blood_pressure categorical with the tutorial's weights; age
Poisson(mu) restricted to 20..89 (the pmf renormalised on that range, as the engine's sampler
does). Written once to /tmp/mia_large_table_<rows>.csv (seed 0; reused if present).

Each run is a fresh subprocess

    python run.py data=table data.path=<csv> data.label=response model=random_forest
        model.n_estimators=<N> reference.n_models=<64|16> 'attack=[lira,rmia]'
        reference.cache=false tracking=none reference.progress=false hydra.run.dir=/tmp/...
        objectives=[attack.auc]

(the table's default split: 50,000 target rows, 25,000 attacker rows, 25,000 held-out
non-members; the scored records are fewer than twice the target's rows, so the attacker's rows
join the reference pool: 100,000 pool rows, each reference model fitted on 50,000 of them and
queried on all 100,000). ``objectives=[attack.auc]``: without a named record the default
objective ``target_record.score`` is null and run.py exits 2 once the run is done. Its peak RSS is ``ru_maxrss`` of that child alone, from ``os.wait4``
(so one run's peak never leaks into the next), and its wall time is measured around it. The
engine's "trained %d reference models in %.2f s" line gives the reference stage's time.
Target: peak RSS under 2 GB, and not growing with the number of models.

``--n-estimators auto`` (the default) first times one fit of a 10-tree forest on 50,000 rows
plus a query of all rows in this process, extrapolates to the whole script (about
(n_models/2 + 3) fits per run on 2 workers, times 1.5 for load from other processes) and keeps
the largest of 100, 50, 20, 10 trees that fits in ``--budget`` seconds (900). A forest
smaller than scikit-learn's 100 trees is said in the output.

``--quick``: 10,000 rows, 4 and 8 reference models, 10 trees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The table has no named record, so the default objective (target_record.score) is null and
# run.py would exit 2 after the whole run; any numeric summary key avoids that.
OBJECTIVES = "objectives=[attack.auc]"

# The tutorial's classes (conf/data/cancer_patients.yaml): label -> feature -> distribution.
CLASSES = {
    1: {"diabetes": ("bernoulli", 0.7), "asthma": ("bernoulli", 0.7),
        "bmi_group": ("categorical", [1, 2, 3, 4], [0.5, 5, 7, 5]),
        "blood_pressure": ("categorical", [0, 1, 2, 3, 4, 5], [0.5, 1, 5, 6, 1, 0.5]),
        "smoker": ("bernoulli", 0.8), "age": ("poisson", 72, 20, 89)},
    0: {"diabetes": ("bernoulli", 0.2), "asthma": ("bernoulli", 0.5),
        "bmi_group": ("categorical", [1, 2, 3, 4], [1, 7, 4, 1]),
        "blood_pressure": ("categorical", [0, 1, 2, 3, 4, 5], [0.5, 5, 5, 1, 1, 0.5]),
        "smoker": ("bernoulli", 0.2), "age": ("poisson", 55, 20, 89)},
}


def write_table(rows: int, path: Path, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd
    from scipy.stats import poisson

    rng = np.random.default_rng(seed)
    frames = []
    for label, n in ((1, rows // 2), (0, rows - rows // 2)):
        cols = {}
        for name, spec in CLASSES[label].items():
            if spec[0] == "bernoulli":
                cols[name] = (rng.random(n) < spec[1]).astype(int)
            elif spec[0] == "categorical":
                w = np.asarray(spec[2], float)
                cols[name] = rng.choice(spec[1], size=n, p=w / w.sum())
            else:
                _, mu, lo, hi = spec
                x = np.arange(lo, hi + 1)
                pmf = poisson.pmf(x, mu)
                cols[name] = rng.choice(x, size=n, p=pmf / pmf.sum())
        cols["response"] = np.full(n, label)
        frames.append(pd.DataFrame(cols))
    frame = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def time_one_fit(path: Path, n_estimators: int) -> float:
    """One random-forest fit on half the table plus predict_proba on all of it (this process)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    frame = pd.read_csv(path)
    y = frame.pop("response").to_numpy()
    X = frame.to_numpy(dtype=float)
    half = np.random.default_rng(1).choice(len(y), len(y) // 2, replace=False)
    t = time.perf_counter()
    RandomForestClassifier(n_estimators=n_estimators, random_state=0).fit(X[half], y[half]).predict_proba(X)
    return time.perf_counter() - t


def _hwm_mb(pid: int) -> float:
    """The process's peak RSS so far (VmHWM), in MB; nan once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def table_run(csv: Path, out_dir: Path, *overrides: str) -> list[str]:
    """The command of one measured run on ``csv`` (label ``response``): no cache, no tracking,
    no progress bar, outputs in ``out_dir`` (shared with benchmarks/scaling.py)."""
    return [sys.executable, str(REPO / "run.py"), "data=table", f"data.path={csv}", "data.label=response",
            "reference.cache=false", "tracking=none", "reference.progress=false", f"hydra.run.dir={out_dir}",
            OBJECTIVES, *overrides]


def reference_seconds(output: str) -> float:
    """The reference stage's wall time from the run's "trained N reference models in S s" line."""
    m = re.search(r"trained (\d+) reference models in ([\d.]+) s", output)
    return float(m.group(2)) if m else float("nan")


def run_engine(csv: Path, n_models: int, n_estimators: int, out_dir: Path, extra) -> dict:
    cmd = table_run(csv, out_dir, "model=random_forest", f"model.n_estimators={n_estimators}",
                    f"reference.n_models={n_models}", "attack=[lira,rmia]", *extra)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=str(out_dir.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines, marks = [], {}
    for line in proc.stdout:  # until the child closes it (it exits)
        lines.append(line)
        # The peak so far at each phase boundary, read as the child logs it.
        if "training %d reference models" % n_models in line:
            marks["before_reference"] = _hwm_mb(proc.pid)
        elif "trained %d reference models in" % n_models in line:
            marks["through_reference"] = _hwm_mb(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: one run's peak never leaks into the next
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = "".join(lines)
    if proc.returncode != 0:
        print(shlex.join(cmd), "\n", output, file=sys.stderr)
        raise SystemExit(f"run.py exited with {proc.returncode}")
    summary = json.loads((out_dir / "summary.json").read_text())
    return {"n_models": n_models, "peak_rss_mb": usage.ru_maxrss / 1024, "wall": wall,
            "reference_s": reference_seconds(output), "summary": summary, "cmd": cmd,
            "before_ref_mb": marks.get("before_reference", float("nan")),
            "through_ref_mb": marks.get("through_reference", float("nan"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--n-models", default="64,16")
    ap.add_argument("--n-estimators", default="auto")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds for the whole script (auto trees)")
    ap.add_argument("--quick", action="store_true", help="10,000 rows, 4 and 8 models, 10 trees")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.n_models, args.n_estimators = 10_000, "4,8", "10"
    counts = [int(v) for v in args.n_models.split(",")]
    t_script = time.perf_counter()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    csv = Path(f"/tmp/mia_large_table_{args.rows}.csv")
    if not csv.exists():
        t = time.perf_counter()
        write_table(args.rows, csv)
        print(f"wrote {csv} ({args.rows} rows, {csv.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s",
              flush=True)

    if args.n_estimators == "auto":
        t10 = time_one_fit(csv, 10)
        fits = sum(n / 2 + 3 for n in counts)  # 2 workers; target, shadow and queries ~ 3 more fits
        elapsed = time.perf_counter() - t_script
        n_estimators = 10
        for trees in (100, 50, 20, 10):
            if fits * t10 * trees / 10 * 1.5 + elapsed <= args.budget:
                n_estimators = trees
                break
        print(f"one 10-tree fit on {args.rows // 2} rows + query of {args.rows} rows: {t10:.2f} s; "
              f"100 trees projected {fits * t10 * 10 * 1.5 / 60:.1f} min for the runs -> "
              f"model.n_estimators={n_estimators}", flush=True)
    else:
        n_estimators = int(args.n_estimators)

    base = Path("/tmp/mia_large_table_runs")
    base.mkdir(exist_ok=True)
    results = []
    for n in counts:
        r = run_engine(csv, n, n_estimators, base / f"rows{args.rows}_n{n}_t{n_estimators}", args.overrides)
        results.append(r)
        ref = r["summary"]["reference"]
        print(f"reference.n_models={n}: peak RSS {r['peak_rss_mb']:.0f} MB (peak before the reference stage "
              f"{r['before_ref_mb']:.0f} MB, through it {r['through_ref_mb']:.0f} MB), wall {r['wall']:.1f} s "
              f"(reference stage {r['reference_s']:.1f} s; pool {ref['pool_rows']} rows)", flush=True)

    trees_note = "" if n_estimators == 100 else " (fewer than scikit-learn's 100: --quick, --n-estimators or the time budget)"
    lines = ["", f"Table: {args.rows} rows, 6 features (tutorial distributions), binary label; "
             f"RandomForestClassifier(n_estimators={n_estimators}){trees_note}; attack=[lira,rmia]; "
             "fresh subprocess per run.", "",
             "| reference.n_models | peak RSS MB | peak before reference stage MB | peak through reference stage MB "
             "| wall s | reference stage s | s/model | pool rows | target rows | lira AUC | rmia AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        lines.append(f"| {r['n_models']} | {r['peak_rss_mb']:.0f} | {r['before_ref_mb']:.0f} | {r['through_ref_mb']:.0f} "
                     f"| {r['wall']:.1f} | {r['reference_s']:.1f} "
                     f"| {r['reference_s'] / r['n_models']:.2f} | {s['reference']['pool_rows']} "
                     f"| {s['data']['rows']['target']} "
                     f"| {s['attacks']['lira']['auc']:.3f} | {s['attacks']['rmia']['auc']:.3f} |")
    peak = max(r["peak_rss_mb"] for r in results)
    lo, hi = min(results, key=lambda r: r["n_models"]), max(results, key=lambda r: r["n_models"])
    lines += ["", f"- {'PASS' if peak < 2048 else 'FAIL'}: peak RSS {peak:.0f} MB < 2048 MB",
              f"- peak RSS with {hi['n_models']} models / with {lo['n_models']} models: "
              f"{hi['peak_rss_mb'] / lo['peak_rss_mb']:.2f}x; per extra model: "
              f"{(hi['peak_rss_mb'] - lo['peak_rss_mb']) / max(1, hi['n_models'] - lo['n_models']):.2f} MB overall, "
              f"{(hi['through_ref_mb'] - lo['through_ref_mb']) / max(1, hi['n_models'] - lo['n_models']):.2f} MB "
              f"through the reference stage (what the run keeps per model: a float32 score per query row and a "
              f"byte per pool row, {(sum(v for k, v in hi['summary']['data']['rows'].items() if k != 'named') * 4 + hi['summary']['reference']['pool_rows']) / 2**20:.2f} MB; "
              "the attacks gather the scores in blocks of at most 4M model x record cells)",
              f"- command: python {shlex.join(results[0]['cmd'][1:])}",
              f"- script wall time {time.perf_counter() - t_script:.0f} s"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
