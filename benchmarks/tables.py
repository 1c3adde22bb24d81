"""The cost per reference model on a table: the engine against a plain scikit-learn loop.

    python benchmarks/tables.py [--families random_forest,hist_gradient_boosting] [--n-models 64]
                                [--repeats 3] [--serial] [--quick] [override ...]

For each model family, one in-process scenario (composed from conf/ with Hydra's compose API, as
benchmarks/attacks.py does)

    data=breast_cancer model=<family> attack=suite reference.n_models=64 reference.cache=false
    tracking=none reference.progress=false

is timed whole (``run_scenario``) and in its reference stage. The reference stage is timed by
wrapping ``mia_engine.reference.train_reference_models`` (the scenario imports it at call time,
so the wrapper is what runs): that is everything the engine does for its reference models
(drawing the halves, hashing the cache key, building, fitting and querying every model,
collecting the probabilities). The engine's own log line ("trained %d reference models in
%.2f s", logger ``mia_engine``, fits and queries only) is captured too and printed alongside.

The plain loop does the same work without the engine: the same estimator class with the same
parameters (on breast_cancer, all numeric, random forest and boosting get no preprocessing, so
no Pipeline), fitted ``n_models`` times on a random half of the reference pool (the pool has
``reference.pool_rows`` rows, read from the run's summary; here the whole 569-row table), each
fit followed by ``predict_proba`` on as many query rows as the engine queried (pool rows plus
any extra rows), through ``joblib.Parallel(n_jobs=-1, backend="threading")``, the engine's
default ``reference.n_jobs``/``reference.backend``. ``--serial`` adds the same comparison with
``reference.n_jobs=1`` against a plain serial loop.

Engine and plain runs are interleaved (engine, plain, engine, plain, ...) and the table gives
medians of ``--repeats`` (3) repeats, so load from other processes hits both alike. A warm-up
run (imports, thread pool) precedes the timed ones. ``--quick``: 8 reference models, 1 repeat.

HistGradientBoosting fits run OpenMP threads (one per core by default). The engine runs each
reference fit on one thread (the workers give the parallelism); the plain loop here leaves
scikit-learn's default, as a plain script would. On a busy machine libgomp's spin-waiting then
costs the plain loop seconds per fit; ``OMP_NUM_THREADS=1`` puts both on one thread per fit. The
script prints the OpenMP setting and the load average it ran under.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FAMILIES = ("random_forest", "hist_gradient_boosting")


def compose(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mia_engine.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


class _RefLog(logging.Handler):
    """Keeps the seconds of the engine's "trained %d reference models in %.2f s" line."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds: list[float] = []

    def emit(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("trained %d reference models in"):
            self.seconds.append(float(record.args[1]))


class _RefTimer:
    """Wraps mia_engine.reference.train_reference_models: wall time and the shapes it saw."""

    def __init__(self):
        import mia_engine.reference as reference

        self.module = reference
        self.original = reference.train_reference_models
        self.calls: list[dict] = []

        def wrapped(model, model_key, X_pool, y_pool, X_extra=None, **kw):
            t = time.perf_counter()
            out = self.original(model, model_key, X_pool, y_pool, X_extra, **kw)
            n_extra = 0 if X_extra is None else len(X_extra)
            self.calls.append({"seconds": time.perf_counter() - t, "n_models": kw["n_models"],
                               "n_pool": len(y_pool), "n_query": len(y_pool) + n_extra,
                               "from_cache": out.from_cache})
            return out

        reference.train_reference_models = wrapped


def engine_run(family: str, n_models: int, n_jobs: int, timer: _RefTimer, reflog: _RefLog, extra) -> dict:
    from mia_engine.scenario import run_scenario

    cfg = compose(["data=breast_cancer", f"model={family}", "attack=suite", f"reference.n_models={n_models}",
                   "reference.cache=false", "tracking=none", "reference.progress=false",
                   f"reference.n_jobs={n_jobs}", *extra])
    timer.calls.clear()
    reflog.seconds.clear()
    t = time.perf_counter()
    result = run_scenario(cfg)
    wall = time.perf_counter() - t
    (call,) = timer.calls
    assert not call["from_cache"], "reference.cache=false, yet the models came from the cache"
    return {"wall": wall, "ref": call["seconds"], "logged": reflog.seconds[-1], "pool_rows": result.reference["pool_rows"],
            "n_query": call["n_query"], "model_node": cfg["model"], "n_models": n_models}


def plain_run(model_node: dict, n_models: int, pool_rows: int, n_query: int, n_jobs: int, seed: int) -> float:
    """n_models fits of the estimator on random halves of a pool_rows-row pool of the table,
    each followed by predict_proba on n_query rows; joblib threads (n_jobs=-1) or serial."""
    import importlib

    import numpy as np
    from joblib import Parallel, delayed
    from sklearn.datasets import load_breast_cancer

    module, name = model_node["_target_"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    params = {k: v for k, v in model_node.items() if k not in ("_target_", "preprocess", "random_state")}
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    reps = -(-max(pool_rows, n_query) // len(y))
    X_all, y_all = np.tile(X[order], (reps, 1)), np.tile(y[order], reps)
    X_pool, y_pool, X_query = X_all[:pool_rows], y_all[:pool_rows], X_all[:n_query]
    half = pool_rows // 2
    rows = [rng.choice(pool_rows, half, replace=False) for _ in range(n_models)]

    def one(m):
        est = cls(**params, random_state=m)
        est.fit(X_pool[rows[m]], y_pool[rows[m]])
        return est.predict_proba(X_query)

    t = time.perf_counter()
    if n_jobs == 1:
        out = [one(m) for m in range(n_models)]
    else:
        out = Parallel(n_jobs=n_jobs, backend="threading")(delayed(one)(m) for m in range(n_models))
    np.stack(out)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--n-models", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serial", action="store_true", help="also compare reference.n_jobs=1 with a serial loop")
    ap.add_argument("--quick", action="store_true", help="8 reference models, 1 repeat")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every engine run")
    args = ap.parse_args()
    if args.quick:
        args.n_models, args.repeats = 8, 1

    logging.basicConfig(level=logging.WARNING)
    for h in logging.getLogger().handlers:
        h.setLevel(logging.WARNING)
    reflog = _RefLog()
    engine_log = logging.getLogger("mia_engine")
    engine_log.setLevel(logging.INFO)
    engine_log.addHandler(reflog)
    timer = _RefTimer()

    families = args.families.split(",")
    modes = [("threading", -1)] + ([("serial", 1)] if args.serial else [])
    load0 = os.getloadavg()
    t_script = time.perf_counter()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load average {load0[0]:.2f}", flush=True)

    # Warm-up: imports and the thread pool, paid once per process, not by the first timed run.
    for family in families:
        w = engine_run(family, 4, -1, timer, reflog, args.overrides)
        plain_run(w["model_node"], 4, w["pool_rows"], w["n_query"], -1, 0)

    runs = {(f, mode): {"engine": [], "plain": []} for f in families for mode, _ in modes}
    for rep in range(args.repeats):
        for mode, n_jobs in modes:
            for family in families:
                e = engine_run(family, args.n_models, n_jobs, timer, reflog, args.overrides)
                p = plain_run(e["model_node"], args.n_models, e["pool_rows"], e["n_query"], n_jobs, seed=rep)
                runs[(family, mode)]["engine"].append(e)
                runs[(family, mode)]["plain"].append(p)
                print(f"repeat {rep + 1}/{args.repeats} {mode:9s} {family:24s} engine reference stage {e['ref']:7.2f} s "
                      f"(logged {e['logged']:.2f} s; whole run {e['wall']:.2f} s; pool {e['pool_rows']} rows, "
                      f"{e['n_query']} queried)  plain {p:7.2f} s", flush=True)

    n = args.n_models
    lines = ["", f"Reference models: {n} per run; median of {args.repeats} interleaved repeats "
             f"(engine, plain, engine, ...). s/model = stage seconds / {n}.", "",
             "| family | workers | engine s/model | engine s/model (logged fits) | plain s/model | ratio engine/plain "
             "| whole-run wall s | pool rows / query rows |",
             "|---|---|---|---|---|---|---|---|"]
    for (family, mode), r in runs.items():
        eng = statistics.median(e["ref"] for e in r["engine"]) / n
        logged = statistics.median(e["logged"] for e in r["engine"]) / n
        plain = statistics.median(r["plain"]) / n
        wall = statistics.median(e["wall"] for e in r["engine"])
        e0 = r["engine"][0]
        workers = "joblib threading, n_jobs=-1" if mode == "threading" else "serial"
        lines.append(f"| {family} | {workers} | {eng:.4f} | {logged:.4f} | {plain:.4f} | {eng / plain:.2f} | {wall:.2f} "
                     f"| {e0['pool_rows']} / {e0['n_query']} |")
    lines += ["", "Ranges over repeats (s per stage):"]
    for (family, mode), r in runs.items():
        er = [e["ref"] for e in r["engine"]]
        lines.append(f"- {family}, {mode}: engine {min(er):.2f}-{max(er):.2f}, plain {min(r['plain']):.2f}-"
                     f"{max(r['plain']):.2f}, ratio per repeat "
                     + ", ".join(f"{e['ref'] / p:.2f}" for e, p in zip(r["engine"], r["plain"])))
    load1 = os.getloadavg()
    lines += ["", f"Target: engine within 1.1x of the plain loop per reference model. Load average "
              f"{load0[0]:.2f} at start, {load1[0]:.2f} at end; script wall time "
              f"{time.perf_counter() - t_script:.1f} s."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
