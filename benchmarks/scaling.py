"""Cost per run against rows and reference models: serial vs joblib vs Ray on this machine.

    python benchmarks/scaling.py [--rows 1000,10000,100000] [--n-models 16,64,256]
                                 [--families random_forest,hist_gradient_boosting]
                                 [--backends serial,joblib,ray] [--joblib auto|threading|loky]
                                 [--n-estimators 10] [--max-iter 20] [--repeats 1] [--quick]
                                 [--json benchmarks/results/scaling.json] [--plot docs/scaling.png]
                                 [--from-json PATH] [override ...]

The tables are benchmarks/large_table.py's (its ``write_table``: the tutorial's distributions,
6 features, half responders; /tmp/mia_large_table_<rows>.csv, written once, seed 0). With the
table's default split (target 50%, attacker 25%, held-out 25%) the reference pool is the
scored records (minus copies of members) plus the attacker's rows: each reference model is
fitted on half the pool and queried on all of it.

Every measured run is a fresh subprocess

    python run.py data=table data.path=<csv> data.label=response model=<family> <size>
        'attack=[lira]' reference.n_models=<M> reference.backend=<b> reference.n_jobs=<j>
        reference.cache=false reference.progress=false tracking=none report.enabled=false
        objectives=[attack.auc] hydra.run.dir=/tmp/mia_scaling_runs/<run>

(``objectives=[attack.auc]``: the table has no named record, so the default objective is null
and run.py would exit 2, see large_table.py). Sizes: ``model.n_estimators=10`` for
random_forest and ``model.max_iter=20`` for hist_gradient_boosting (``--n-estimators``,
``--max-iter``), small enough for the whole matrix (63 runs) to take about 20 minutes on 2
cores.

Backends: ``serial`` = ``reference.backend=threading reference.n_jobs=1`` (the fits run one
after another in the driver); ``joblib`` = ``reference.n_jobs=-1`` on the joblib backend picked
per family (``--joblib auto``: threading and loky are run once each at 10,000 rows and 64
models before the matrix, and the faster reference stage wins; both runs are in the JSON);
``ray`` = ``reference.backend=ray``: a local Ray instance started by the run (``ray.num_cpus``
null: all cores), whose start-up is in the wall time and, separately, in "ray start s".
``serial_omp1`` (``--serial-omp1``, by default for hist_gradient_boosting only): serial with
``OMP_NUM_THREADS=1`` in the run's environment: a control for the engine's own limit. Each
reference fit runs under ``mia_engine.models.openmp_limit(1)``; a fit called from the main
thread (serial runs) goes through ``mia_engine.models._interruptible``'s helper thread, which
inherits that limit (OpenMP's limit is per thread; before the engine passed it on, serial fits
got a full OpenMP team and ran 1.7-6.4x slower under load). With the limit working, serial and
serial_omp1 take the same time (random forests use no OpenMP).
The backends of a cell run back to back, in an order rotated from cell to cell.

Measured per run:

- wall s: around the subprocess, from spawn to its exit.
- target fit s: the target's fit, from the engine's "cost estimate" line (boosting's target is
  fitted with a full OpenMP team, which spin-waits when other processes hold the cores).
- reference stage s: the engine's "trained %d reference models in %.2f s" line (fits and
  queries only; Ray's start-up is before it, its workers' first imports inside it).
- CPU s: user + system time of every process of the run, the driver and all its descendants
  (loky workers, Ray's gcs_server, raylet, agents and workers). This script makes itself a
  child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a descendant orphaned by its parent
  is re-parented here rather than to init; after the driver exits it waits for every such
  process (and terminates, by pid, any still running after 30 s, counted in the JSON). A
  process waited for by its parent, or by this script, adds its CPU time to the waiter's
  children's time, and so up the tree to this script's ``RUSAGE_CHILDREN`` (exact, nothing
  sampled: "cpu_waited_s" in the JSON). Except when the parent ignores SIGCHLD: the kernel
  then reaps the child and its time is lost to every rusage. Ray's raylet does that, so its
  workers and agents are missing from rusage; for those processes (a parent whose SigIgn has
  SIGCHLD) the last CPU time seen in /proc/<pid>/stat (own plus children's, sampled every
  0.25 s) is added ("cpu_auto_reaped_s"): a lower bound, short by at most one interval of
  each such process's time (they idle at the end of a run, when Ray shuts them down).
- reference CPU s: the same total at the "training" and "trained" log lines (/proc/<pid>/stat
  of every live descendant, own plus waited-for children's time, plus the auto-reaped ones
  gone meanwhile), their difference.
- driver peak RSS MB: ``ru_maxrss`` from ``os.wait4`` on the driver (strictly, the larger of
  the driver's and of any process it waited for; the driver's own sampled peak is in the JSON).
- others peak RSS MB: the peak, over samples every 0.25 s of /proc, of the summed RSS of all
  the run's other processes (loky workers; Ray's daemons and workers). RSS counts shared pages
  (Ray's object store, mapped by the raylet and every worker reading the table) once per
  process, so "tree peak PSS MB" also gives the peak summed PSS of all processes, driver
  included (/proc/<pid>/smaps_rollup), which shares such pages out.
- others' CPU share: the machine's busy CPU time during the run (/proc/stat) minus the run's
  own and this script's, over wall x cores: how much other people's work competed with it.

Target checks printed at the end: Ray / joblib per cell (reference stage seconds, target
<= 1.2; the stage's CPU seconds; wall), and linearity of the reference stage in the number of models: seconds per model at
each count, the slope of a log-log fit of stage seconds against models (1 = linear), and an
affine fit ``a + b * models`` (fixed seconds a, seconds per model b).

``--quick``: 1,000 and 10,000 rows, 16 and 64 models (the joblib pick still at 10,000 x 64).
``--repeats N``: the matrix N times, the backend order rotating; checks and plot use medians.
``--from-json PATH``: print the table and checks and draw the plot from saved results only (no
runs; the checks stored in the file are recomputed).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from large_table import reference_seconds, table_run, write_table  # noqa: E402  (shared, not copied)

FAMILIES = ("random_forest", "hist_gradient_boosting")
BACKENDS = ("serial", "serial_omp1", "joblib", "ray")
RUNS_DIR = Path("/tmp/mia_scaling_runs")
DEFAULT_PLOT = REPO / "docs" / "scaling.png"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY = 0.25


# --------------------------------------------------------------------------------------------
# /proc helpers


def _stat(pid: int):
    """(ppid, own CPU ticks, waited-for children's CPU ticks, RSS bytes) of ``pid``; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()  # fields 3.. (state, ppid, ...)
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]), int(rest[21]) * PAGE


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(root: int) -> dict[int, tuple]:
    """Every live (or zombie) descendant of ``root``: pid -> _stat tuple."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s is not None:
                table[int(name)] = s
    children: dict[int, list[int]] = {}
    for pid, s in table.items():
        children.setdefault(s[0], []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[pid] = table[pid]
        todo.extend(children.get(pid, []))
    return out


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process (Linux >= 3.4), so their CPU time
    reaches RUSAGE_CHILDREN once they are waited for."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def _ignores_sigchld(pid: int) -> bool:
    """Whether ``pid`` ignores SIGCHLD: its children are then reaped by the kernel on exit and
    their CPU time reaches nobody's RUSAGE_CHILDREN (Ray's raylet does this)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
    except OSError:
        pass
    return False


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY seconds: peaks of the driver's RSS, of the summed RSS of the run's
    other processes and of the summed PSS of all of them; and each process's CPU ticks so far
    with whether its parent ignores SIGCHLD (see :meth:`cpu`)."""

    def __init__(self, driver: int):
        super().__init__(daemon=True)
        self.driver, self.me = driver, os.getpid()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.driver_rss = self.others_rss = self.tree_pss = 0
        self.max_procs = 0
        self.last: dict[int, tuple[int, bool]] = {}  # pid -> (own + children's ticks, parent ignores SIGCHLD)
        self.reaped_here: set[int] = set()

    def sample(self) -> dict:
        procs = _descendants(self.me)
        ignores: dict[int, bool] = {}
        with self.lock:
            for pid, st in procs.items():
                if st[0] not in ignores:
                    ignores[st[0]] = _ignores_sigchld(st[0])
                self.last[pid] = (st[1] + st[2], ignores[st[0]])
        return procs

    def auto_reaped_ticks(self, alive=()) -> tuple[int, int]:
        """(ticks, count) of the processes seen whose parent ignored SIGCHLD and that are gone
        (last value seen: a lower bound, short by at most one sampling interval each)."""
        with self.lock:
            gone = [t for pid, (t, ign) in self.last.items() if ign and pid not in alive and pid not in self.reaped_here]
        return sum(gone), len(gone)

    def cpu(self, cpu0: float) -> float:
        """CPU seconds of the run so far: every live descendant's own and waited-for children's
        time, what this script has waited for since the run began (cpu0: RUSAGE_CHILDREN then),
        and the last seen time of the processes reaped by the kernel."""
        procs = self.sample()
        lost, _ = self.auto_reaped_ticks(procs)
        return (sum(st[1] + st[2] for st in procs.values()) + lost) / CLK + _children_cpu() - cpu0

    def run(self):
        while not self.stop.is_set():
            procs = self.sample()
            if self.driver in procs:
                self.driver_rss = max(self.driver_rss, procs[self.driver][3])
            self.others_rss = max(self.others_rss, sum(st[3] for p, st in procs.items() if p != self.driver))
            self.tree_pss = max(self.tree_pss, sum(_pss(p) for p in procs))
            self.max_procs = max(self.max_procs, len(procs))
            self.stop.wait(SAMPLE_EVERY)


def reap_leftovers(timeout: float = 30.0) -> dict:
    """Wait for every remaining descendant (re-parented here); terminate, by pid, what still
    runs after ``timeout`` seconds."""
    start = time.perf_counter()
    reaped: list[int] = []
    killed = 0
    sent = None
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            reaped.append(pid)
            continue
        now = time.perf_counter() - start
        if now > timeout and sent is None:
            for p in _descendants(os.getpid()):
                try:
                    os.kill(p, signal.SIGTERM)
                    killed += 1
                except OSError:
                    pass
            sent = now
        elif sent is not None and now > sent + 10:
            for p in _descendants(os.getpid()):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.02)
    return {"leftovers_reaped": reaped, "leftovers_terminated": killed, "linger_s": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------
# One run


def size_overrides(family: str, args) -> list[str]:
    if family == "random_forest":
        return [f"model.n_estimators={args.n_estimators}"]
    if family == "hist_gradient_boosting":
        return [f"model.max_iter={args.max_iter}"]
    return []


def backend_overrides(backend: str, joblib_backend: str | None) -> list[str]:
    if backend in ("serial", "serial_omp1"):
        return ["reference.backend=threading", "reference.n_jobs=1"]
    if backend == "ray":
        return ["reference.backend=ray", "reference.n_jobs=-1"]
    return [f"reference.backend={joblib_backend or backend}", "reference.n_jobs=-1"]


def run_engine(csv: Path, rows: int, family: str, backend: str, joblib_backend: str | None, n_models: int,
               args, tag: str = "") -> dict:
    out_dir = RUNS_DIR / f"{family}_r{rows}_m{n_models}_{backend}{tag}"
    shutil.rmtree(out_dir, ignore_errors=True)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    cmd = table_run(csv, out_dir, f"model={family}", *size_overrides(family, args), "attack=[lira]",
                    f"reference.n_models={n_models}", *backend_overrides(backend, joblib_backend),
                    "report.enabled=false", *args.overrides)
    load = os.getloadavg()
    busy0, steal0 = _machine_busy_ticks()
    self0, cpu0 = _self_cpu(), _children_cpu()
    t = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if backend == "serial_omp1":
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(cmd, cwd=str(RUNS_DIR), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    sampler = Sampler(proc.pid)
    sampler.start()
    lines, marks = [], {}

    def read():  # until the driver and whatever inherited its stdout close it
        for line in proc.stdout:
            lines.append(line)
            if "training %d reference models" % n_models in line:
                marks["cpu_before_ref"] = sampler.cpu(cpu0)
            elif "trained %d reference models in" % n_models in line:
                marks["cpu_after_ref"] = sampler.cpu(cpu0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)  # the driver's exit, whoever still holds its stdout
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.sample()  # whatever is still there as the driver ends
    leftovers = reap_leftovers()
    sampler.stop.set()
    sampler.join()
    reader.join(timeout=10)
    sampler.reaped_here.update(leftovers["leftovers_reaped"])
    lost_ticks, n_lost = sampler.auto_reaped_ticks()
    waited_cpu = _children_cpu() - cpu0
    cpu = waited_cpu + lost_ticks / CLK
    busy1, steal1 = _machine_busy_ticks()
    mine = cpu + _self_cpu() - self0
    ncpu = os.cpu_count() or 1
    output = "".join(lines)
    if proc.returncode != 0:
        print(shlex.join(cmd), "\n", output[-5000:], file=sys.stderr)
        raise SystemExit(f"run.py exited with {proc.returncode}")
    ray_start = re.search(r"ray: started a local instance in ([\d.]+) s", output)
    summary = json.loads((out_dir / "summary.json").read_text())
    measured = json.loads((out_dir / "cost.json").read_text())["measured"]
    foreign = (busy1 - busy0) / CLK - mine
    return {
        "rows": rows, "n_models": n_models, "family": family, "backend": backend,
        "engine_backend": {"serial": "threading", "serial_omp1": "threading", "ray": "ray"}.get(backend, joblib_backend),
        "n_jobs": 1 if backend.startswith("serial") else -1, "env": {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS")},
        "wall_s": wall,
        "reference_s": reference_seconds(output),
        "ray_start_s": float(ray_start.group(1)) if ray_start else None, "target_fit_s": measured.get("target_fit", float("nan")),
        "cpu_s": cpu, "cpu_waited_s": waited_cpu, "cpu_auto_reaped_s": lost_ticks / CLK,
        "auto_reaped_processes": n_lost, "driver_cpu_s": usage.ru_utime + usage.ru_stime,
        "reference_cpu_s": (marks["cpu_after_ref"] - marks["cpu_before_ref"])
        if {"cpu_before_ref", "cpu_after_ref"} <= marks.keys() else float("nan"),
        "driver_peak_rss_mb": usage.ru_maxrss / 1024, "driver_sampled_peak_rss_mb": sampler.driver_rss / 2**20,
        "others_peak_rss_mb": sampler.others_rss / 2**20, "tree_peak_pss_mb": sampler.tree_pss / 2**20,
        "max_processes": sampler.max_procs, "leftovers_reaped": len(leftovers["leftovers_reaped"]),
        "leftovers_terminated": leftovers["leftovers_terminated"], "linger_s": leftovers["linger_s"],
        "load_avg_at_start": load[0], "others_cpu_share": max(0.0, foreign) / (wall * ncpu),
        "steal_s": (steal1 - steal0) / CLK,
        "pool_rows": summary["reference"]["pool_rows"], "target_rows": summary["data"]["rows"]["target"],
        "lira_auc": summary["attacks"]["lira"]["auc"], "cmd": cmd[1:],
    }


# --------------------------------------------------------------------------------------------
# Report


def fmt(v, d=1):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def backend_label(r: dict) -> str:
    if r["backend"] == "joblib":
        return f"joblib ({r['engine_backend']})"
    if r["backend"] == "serial_omp1":
        return "serial, OMP_NUM_THREADS=1"
    return r["backend"]


def table(results: dict) -> list[str]:
    meta = results["meta"]
    lines = ["", f"Sizes: random_forest model.n_estimators={meta['n_estimators']}, hist_gradient_boosting "
             f"model.max_iter={meta['max_iter']}; attack=[lira]; one fresh `python run.py` per row.", "",
             "| rows | models | family | backend | wall s | target fit s | ray start s | reference stage s | s/model | CPU s "
             "| reference CPU s | driver peak RSS MB | others peak RSS MB | tree peak PSS MB | others' CPU share |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    repeated = any(r.get("repeat", 0) for r in results["runs"])
    for r in sorted(results["runs"], key=lambda r: (r["family"], r["rows"], r["n_models"],
                                                    BACKENDS.index(r["backend"]), r.get("repeat", 0))):
        rep = f" #{r.get('repeat', 0) + 1}" if repeated else ""
        lines.append(f"| {r['rows']:,} | {r['n_models']} | {r['family']} | {backend_label(r)}{rep} | {fmt(r['wall_s'])} "
                     f"| {fmt(r.get('target_fit_s'), 2)} "
                     f"| {fmt(r['ray_start_s'])} | {fmt(r['reference_s'], 2)} "
                     f"| {fmt(r['reference_s'] / r['n_models'], 3)} | {fmt(r['cpu_s'])} | {fmt(r['reference_cpu_s'])} "
                     f"| {r['driver_peak_rss_mb']:.0f} | {r['others_peak_rss_mb']:.0f} | {r['tree_peak_pss_mb']:.0f} "
                     f"| {r['others_cpu_share']:.0%} |")
    return lines


def _cells(runs):
    cells = {}
    for r in runs:
        cells.setdefault((r["family"], r["rows"], r["n_models"]), {})[r["backend"]] = r
    return cells


def medians(runs: list[dict]) -> list[dict]:
    """One record per (family, rows, models, backend): the median of each number over repeats."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["family"], r["rows"], r["n_models"], r["backend"]), []).append(r)
    out = []
    for rs in groups.values():
        m = dict(rs[0])
        for key, v in rs[0].items():
            if key in ("rows", "n_models", "n_jobs", "repeat"):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                    isinstance(r.get(key), (int, float)) for r in rs):
                m[key] = statistics.median(r[key] for r in rs)
        m["repeats"] = len(rs)
        out.append(m)
    return out


def checks(results: dict) -> tuple[list[str], dict]:
    runs = medians(results["runs"])
    out = {"ray_vs_joblib": [], "linearity": []}
    n_rep = max(r["repeats"] for r in runs)
    lines = ["", "Ray / joblib (target: reference stage <= 1.2x)"
             + (f"; medians of {n_rep} repeats" if n_rep > 1 else "") + ":", "",
             "| family | rows | models | joblib ref s | ray ref s | ref ratio | ref CPU ratio | joblib wall s | ray wall s "
             "| wall ratio | ray wall without its start-up / joblib wall | others' CPU share joblib / ray |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (family, rows, models), c in sorted(_cells(runs).items()):
        if "joblib" not in c or "ray" not in c:
            continue
        j, r = c["joblib"], c["ray"]
        ref_ratio, wall_ratio = r["reference_s"] / j["reference_s"], r["wall_s"] / j["wall_s"]
        cpu_ratio = r["reference_cpu_s"] / j["reference_cpu_s"] if j["reference_cpu_s"] else float("nan")
        no_start = (r["wall_s"] - (r["ray_start_s"] or 0)) / j["wall_s"]
        out["ray_vs_joblib"].append({"family": family, "rows": rows, "n_models": models, "reference_ratio": ref_ratio,
                                     "reference_cpu_ratio": cpu_ratio,
                                     "wall_ratio": wall_ratio, "wall_ratio_without_ray_start": no_start,
                                     "pass": ref_ratio <= 1.2})
        lines.append(f"| {family} | {rows:,} | {models} | {j['reference_s']:.2f} | {r['reference_s']:.2f} "
                     f"| {ref_ratio:.2f} {'✓' if ref_ratio <= 1.2 else '✗'} | {cpu_ratio:.2f} "
                     f"| {j['wall_s']:.1f} | {r['wall_s']:.1f} | {wall_ratio:.2f} | {no_start:.2f} "
                     f"| {j['others_cpu_share']:.0%} / {r['others_cpu_share']:.0%} |")
    n_pass = sum(x["pass"] for x in out["ray_vs_joblib"])
    lines += ["", f"{n_pass} of {len(out['ray_vs_joblib'])} cells within 1.2x on the reference stage. "
              "ref CPU ratio: the stage's CPU seconds (all processes), Ray over joblib: the overhead in work, "
              "which other people's load moves far less than the seconds.", "",
              "Linearity of the reference stage in the number of models (log-log slope 1 = linear; "
              "affine fit a + b*models):", "",
              "| family | rows | backend | s/model at each count | log-log slope | a (fixed s) | b (s/model) |",
              "|---|---|---|---|---|---|---|"]
    groups = {}
    for r in runs:
        groups.setdefault((r["family"], r["rows"], r["backend"]), []).append(r)
    for (family, rows, backend), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                               BACKENDS.index(kv[0][2]))):
        rs = sorted(rs, key=lambda r: r["n_models"])
        if len(rs) < 2:
            continue
        x = [math.log(r["n_models"]) for r in rs]
        y = [math.log(r["reference_s"]) for r in rs]
        slope = _slope(x, y)
        b = _slope([r["n_models"] for r in rs], [r["reference_s"] for r in rs])
        a = sum(r["reference_s"] for r in rs) / len(rs) - b * sum(r["n_models"] for r in rs) / len(rs)
        per = ", ".join(f"{r['n_models']}: {r['reference_s'] / r['n_models']:.3f}" for r in rs)
        out["linearity"].append({"family": family, "rows": rows, "backend": backend, "loglog_slope": slope,
                                 "fixed_s": a, "s_per_model": b,
                                 "s_per_model_at": {r["n_models"]: r["reference_s"] / r["n_models"] for r in rs}})
        lines.append(f"| {family} | {rows:,} | {backend_label(rs[0])} | {per} | {slope:.2f} | {a:.2f} | {b:.4f} |")
    return lines, out


def _slope(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx else float("nan")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = medians(results["runs"])
    families = [f for f in FAMILIES if any(r["family"] == f for r in runs)]
    rows_list = sorted({r["rows"] for r in runs})
    colours = dict(zip(rows_list, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    styles = {"serial": ("-", "o"), "serial_omp1": ("-.", "x"), "joblib": ("--", "s"), "ray": (":", "^")}
    panels = [("reference_s", "reference stage (s)", True),
              ("driver_peak_rss_mb", "driver peak RSS (MB)", False),
              ("tree_peak_pss_mb", "all processes' peak PSS (MB)", False)]
    fig, axes = plt.subplots(len(families), len(panels), figsize=(16, 5.2 * len(families)), squeeze=False)
    for i, family in enumerate(families):
        for j, (key, label, loglog) in enumerate(panels):
            ax = axes[i][j]
            for rows in rows_list:
                for backend, (ls, marker) in styles.items():
                    rs = sorted((r for r in runs if r["family"] == family and r["rows"] == rows
                                 and r["backend"] == backend), key=lambda r: r["n_models"])
                    if not rs:
                        continue
                    ax.plot([r["n_models"] for r in rs], [r[key] for r in rs], linestyle=ls, marker=marker,
                            color=colours[rows])
            if loglog:
                ax.set_yscale("log")
                models = sorted({r["n_models"] for r in runs})
                # a slope-1 guide through the largest serial point
                base = "serial_omp1" if any(r["backend"] == "serial_omp1" and r["family"] == family
                                            for r in runs) else "serial"
                ref = [r for r in runs if r["family"] == family and r["backend"] == base
                       and r["rows"] == rows_list[-1]]
                if ref:
                    top = max(ref, key=lambda r: r["n_models"])
                    ax.plot(models, [top["reference_s"] * m / top["n_models"] for m in models], color="grey",
                            alpha=0.35, linewidth=3)
                ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({r["n_models"] for r in runs}))
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set_xlabel("reference models")
            ax.set_ylabel(label)
            ax.set_title(f"{family}: {label}")
            ax.grid(True, which="both", alpha=0.3)
    # One legend for all panels: colour = rows, line style and marker = backend.
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[rows], linewidth=3, label=f"{rows:,} rows") for rows in rows_list]
    for backend, (ls, marker) in styles.items():
        shown = sorted({backend_label(r) for r in runs if r["backend"] == backend})
        if shown:
            handles.append(Line2D([], [], color="black", linestyle=ls, marker=marker, label=" / ".join(shown)))
    handles.append(Line2D([], [], color="grey", alpha=0.35, linewidth=3,
                          label="slope 1 (linear in models), through the largest serial point"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=9, frameon=False)
    meta = results["meta"]
    import statistics

    share = statistics.median(r["others_cpu_share"] for r in results["runs"])
    fig.suptitle(f"mia-engine scaling on {meta['cpus']} cores (random_forest {meta['n_estimators']} trees, "
                 f"hist_gradient_boosting {meta['max_iter']} iterations; attack=[lira]; one fresh run each)\n"
                 f"load average {meta['load_avg_start'][0]:.1f} at start, {meta['load_avg_end'][0]:.1f} at end; "
                 f"other people's work took {share:.0%} of the CPUs during a run (median)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if len(families) > 1 else 0.12, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict, json_path: Path | None, plot_path: Path | None) -> None:
    lines = table(results)
    check_lines, check_data = checks(results)
    results["checks"] = check_data
    meta = results["meta"]
    pick = meta.get("joblib_pick") or {}
    pick_lines = []
    for family, p in pick.items():
        pick_lines.append(f"- joblib backend for {family}: {p['chosen']} (10,000 rows, 64 models: reference stage "
                          + ", ".join(f"{b} {s:.2f} s" for b, s in p["reference_s"].items()) + ")")
    tail = ["", *pick_lines,
            f"- load average {meta['load_avg_start'][0]:.2f} / {meta['load_avg_start'][1]:.2f} / "
            f"{meta['load_avg_start'][2]:.2f} at start, {meta['load_avg_end'][0]:.2f} / {meta['load_avg_end'][1]:.2f} / "
            f"{meta['load_avg_end'][2]:.2f} at end (1 / 5 / 15 min)",
            f"- script wall time {meta['script_s']:.0f} s ({meta['script_s'] / 60:.1f} min), {len(results['runs'])} "
            "runs in the matrix"]
    print("\n".join(lines + check_lines + tail), flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {json_path}")
    if plot_path is not None:
        plot(results, plot_path)
        print(f"wrote {plot_path}")


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000,10000,100000")
    ap.add_argument("--n-models", default="16,64,256")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--backends", default="serial,joblib,ray")
    ap.add_argument("--serial-omp1", default="hist_gradient_boosting",
                    help="families that also run serially with OMP_NUM_THREADS=1 ('' for none)")
    ap.add_argument("--joblib", default="auto", choices=("auto", "threading", "loky", "multiprocessing"))
    ap.add_argument("--n-estimators", type=int, default=10, help="random_forest's trees")
    ap.add_argument("--max-iter", type=int, default=20, help="hist_gradient_boosting's iterations")
    ap.add_argument("--repeats", type=int, default=1,
                    help="the matrix this many times (backend order rotated); checks and plot use medians")
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 rows, 16 and 64 models")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "scaling.json"))
    ap.add_argument("--plot", help=f"the figure (default {DEFAULT_PLOT.relative_to(REPO)}; with --from-json "
                                   "only when given)")
    ap.add_argument("--from-json", help="print the tables and checks of saved results (the file is left as it is); "
                                        "no runs")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = ap.parse_args()

    if args.from_json:  # the checks stored in the file are recomputed (they derive from the runs)
        results = json.loads(Path(args.from_json).read_text())
        report(results, None, Path(args.plot) if args.plot else None)
        return
    if args.quick:
        args.rows, args.n_models = "1000,10000", "16,64"
    rows_list = [int(v) for v in args.rows.split(",")]
    counts = [int(v) for v in args.n_models.split(",")]
    families = args.families.split(",")
    backends = args.backends.split(",")
    omp1_families = [f for f in args.serial_omp1.split(",") if f]

    import joblib
    import sklearn

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = None
    t_script = time.perf_counter()
    subreaper = become_subreaper()
    load0 = os.getloadavg()
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "mem_gib": round(mem_gib, 1),
            "python": platform.python_version(), "sklearn": sklearn.__version__, "joblib": joblib.__version__,
            "ray": ray_version, "n_estimators": args.n_estimators, "max_iter": args.max_iter,
            "rows": rows_list, "n_models": counts, "families": families, "backends": backends,
            "serial_omp1": omp1_families, "repeats": args.repeats, "overrides": args.overrides, "subreaper": subreaper,
            "sample_every_s": SAMPLE_EVERY,
            "load_avg_start": load0, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick}
    print(f"# {meta['machine']}, {meta['cpus']} cores, {meta['mem_gib']} GiB, Python {meta['python']}, "
          f"scikit-learn {meta['sklearn']}, joblib {meta['joblib']}, Ray {ray_version}; load average "
          f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}; subreaper {'on' if subreaper else 'OFF: CPU s misses orphans'}",
          flush=True)

    csvs = {}
    for rows in sorted(set(rows_list + ([10_000] if args.joblib == "auto" else []))):
        csv = Path(f"/tmp/mia_large_table_{rows}.csv")
        if not csv.exists():
            write_table(rows, csv)
            print(f"wrote {csv}", flush=True)
        csvs[rows] = csv

    def show(r, prefix=""):
        print(f"{prefix}{r['family']:22s} {r['rows']:>7,} rows {r['n_models']:>4} models {backend_label(r):18s} "
              f"wall {r['wall_s']:6.1f} s  ref {r['reference_s']:7.2f} s  CPU {r['cpu_s']:6.1f} s "
              f"(ref {fmt(r['reference_cpu_s'])})  driver {r['driver_peak_rss_mb']:5.0f} MB  others "
              f"{r['others_peak_rss_mb']:5.0f} MB  PSS {r['tree_peak_pss_mb']:5.0f} MB  load {r['load_avg_at_start']:.2f} "
              f"others' CPU {r['others_cpu_share']:.0%}  [{time.perf_counter() - t_script:.0f} s]", flush=True)

    joblib_for, pick = {}, {}
    if "joblib" in backends:
        for family in families:
            if args.joblib != "auto":
                joblib_for[family] = args.joblib
                continue
            rs = {}
            for b in ("threading", "loky"):
                r = run_engine(csvs[10_000], 10_000, family, "joblib", b, 64, args, tag=f"_pick_{b}")
                r["pick"] = True
                show(r, "pick: ")
                rs[b] = r
            chosen = min(rs, key=lambda b: rs[b]["reference_s"])
            joblib_for[family] = chosen
            pick[family] = {"chosen": chosen, "reference_s": {b: r["reference_s"] for b, r in rs.items()},
                            "wall_s": {b: r["wall_s"] for b, r in rs.items()},
                            "cpu_s": {b: r["cpu_s"] for b, r in rs.items()}, "runs": list(rs.values())}
    meta["joblib_pick"] = pick
    meta["joblib_for"] = joblib_for

    runs = []
    k = 0
    for rep in range(args.repeats):
        for family in families:
            for rows in rows_list:
                for n in counts:
                    here = backends + (["serial_omp1"] if family in omp1_families and "serial" in backends else [])
                    order = here[k % len(here):] + here[:k % len(here)]
                    k += 1
                    for backend in order:
                        r = run_engine(csvs[rows], rows, family, backend, joblib_for.get(family), n, args,
                                       tag=f"_rep{rep + 1}" if args.repeats > 1 else "")
                        r["repeat"] = rep
                        show(r)
                        runs.append(r)

    meta["load_avg_end"] = os.getloadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["script_s"] = time.perf_counter() - t_script
    meta["sampler_cpu_s"] = _self_cpu()
    report({"meta": meta, "runs": runs}, Path(args.json) if args.json else None, Path(args.plot or DEFAULT_PLOT))


if __name__ == "__main__":
    main()
