"""The yardstick: online LiRA on breast_cancer for four model families, against a published
independent measurement.

    python benchmarks/families.py [--families random_forest,hist_gradient_boosting,logistic_regression,knn]
                                  [--seeds 0,1,2] [--n-models 64] [--settings yardstick,holdout]
                                  [--quick] [override ...]

The yardstick (an independent plain online LiRA, 32 reference models; the target trained on a
random half of breast_cancer, the other half its non-members; the reference models' candidate
pool the whole table; 3 seeds) reports AUC random_forest 0.66-0.72, hist_gradient_boosting
0.63-0.67 (TPR at FPR 1% 0.08-0.10), logistic_regression 0.53-0.57, knn(5) 0.53-0.55.

The engine cannot give the target half the table and the audit the other half exactly: the
attacker needs a few rows of its own (the shadow model is always fitted), and a named record
would be held out of every split. Settings (``--settings``), each one in-process scenario per
family and ``data.seed`` (the split's seed):

- ``yardstick`` (the faithful one): ``data.split.target=0.5`` (284 rows),
  ``data.split.population=12`` (6 + 6 shadow rows, ``shadow.stratify=true``; 12 rows so that a
  5-neighbour kNN shadow model can be fitted), ``data.split.nonmembers=273`` (every other row),
  ``reference.pool_population=always``. The reference pool is then the whole 569-row table,
  exactly the yardstick's candidate set, and each reference model is fitted on a stratified
  half (284 or 285 rows), as large as the target's training set. The audit scores the 284
  members against the 273 non-members (the attacker's 12 rows are in the pool but not
  scored).
- ``holdout``: ``data.split.target=0.5 data.split.nonmembers=0.45 data.split.population=0.05``
  with ``reference.pool_population=never``: 284 members, 256 non-members, 28 attacker rows;
  the pool is exactly the 540 scored records (halves of 270 rows).

Both set ``data.target_record.id=null`` (no named record held out), ``attack=lira`` (online,
``variance: per_record``, the engine's default) plus a second online LiRA with ``variance:
fixed`` (``+attack.lira_fixed``; it reads the same reference models, so it is free),
``reference.n_models=64``, ``reference.cache=false``, ``tracking=none``. The families' model
configs are the engine's (conf/model/*.yaml; the table is all numeric, so logistic regression
and kNN get a StandardScaler in their Pipeline, forest and boosting the raw matrix);
``--settings`` also takes ``unscaled`` (the yardstick setting with ``model.preprocess=false``)
and ``n32`` (the yardstick setting with 32 reference models, as the yardstick used).

Prints a table per setting: AUC and TPR at FPR 1% per family and seed, mean and range, and
whether the mean lies in the yardstick's range. ``--quick``: 8 reference models, seed 0,
random_forest and logistic_regression.
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

FAMILIES = ("random_forest", "hist_gradient_boosting", "logistic_regression", "knn")
# The published ranges: family -> (AUC low, high), (TPR@1% low, high) or None.
YARDSTICK = {
    "random_forest": ((0.66, 0.72), None),
    "hist_gradient_boosting": ((0.63, 0.67), (0.08, 0.10)),
    "logistic_regression": ((0.53, 0.57), None),
    "knn": ((0.53, 0.55), None),
}
COMMON = ["data=breast_cancer", "data.target_record.id=null", "attack=lira",
          "+attack.lira_fixed={kind: lira, online: true, variance: fixed, threshold: 0.0}",
          "reference.cache=false", "tracking=none", "reference.progress=false"]
YARDSTICK_SPLIT = ["data.split.target=0.5", "data.split.population=12", "data.split.nonmembers=273",
                   "shadow.stratify=true", "reference.pool_population=always"]
SETTINGS = {
    "yardstick": YARDSTICK_SPLIT,
    "holdout": ["data.split.target=0.5", "data.split.nonmembers=0.45", "data.split.population=0.05",
                "reference.pool_population=never"],
    "unscaled": YARDSTICK_SPLIT + ["model.preprocess=false"],
    "n32": YARDSTICK_SPLIT + ["reference.n_models=32"],
}


def compose(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mia_engine.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def one(family: str, seed: int, setting: str, n_models: int, extra) -> dict:
    from mia_engine.scenario import run_scenario

    overrides = [*COMMON, f"model={family}", f"data.seed={seed}", f"reference.n_models={n_models}",
                 *SETTINGS[setting], *extra]
    cfg = compose(overrides)
    t = time.perf_counter()
    r = run_scenario(cfg)
    wall = time.perf_counter() - t
    out = {"wall": wall, "pool": r.reference["pool_rows"], "n_models": r.reference["n_models"],
           "members": len(r.attacks["lira"].member_scores), "nonmembers": len(r.attacks["lira"].nonmember_scores),
           "train_acc": r.target_train_accuracy, "test_acc": r.target_test_accuracy}
    for name in ("lira", "lira_fixed"):
        m = r.attacks[name].metrics
        out[name] = {"auc": m.auc, "tpr01": m.tpr_at_fpr[0.01], "resolved": m.fpr_resolved[0.01]}
    return out


def _stat(values, fmt="{:.3f}"):
    return f"{fmt.format(statistics.mean(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _verdict(value, rng):
    if rng is None:
        return ""
    lo, hi = rng
    return "in" if lo <= value <= hi else ("above" if value > hi else "below")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-models", type=int, default=64)
    ap.add_argument("--settings", default="yardstick,holdout", help=f"any of {', '.join(SETTINGS)}")
    ap.add_argument("--quick", action="store_true", help="8 reference models, seed 0, random_forest and "
                                                         "logistic_regression")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = ap.parse_args()
    if args.quick:
        args.n_models, args.seeds, args.families = 8, "0", "random_forest,logistic_regression"
    families = args.families.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(",")
    for s in settings:
        if s not in SETTINGS:
            raise SystemExit(f"unknown setting {s!r}; choose from {', '.join(SETTINGS)}")

    logging.basicConfig(level=logging.WARNING)
    t_script = time.perf_counter()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    results = {}
    for setting in settings:
        for family in families:
            for seed in seeds:
                r = one(family, seed, setting, args.n_models, args.overrides)
                results[(setting, family, seed)] = r
                print(f"{setting:9s} {family:24s} seed {seed}: LiRA AUC {r['lira']['auc']:.3f} TPR@1% "
                      f"{r['lira']['tpr01']:.3f} | fixed variance AUC {r['lira_fixed']['auc']:.3f} TPR@1% "
                      f"{r['lira_fixed']['tpr01']:.3f} | {r['members']} members vs {r['nonmembers']} non-members, "
                      f"pool {r['pool']}, {r['n_models']} models; target acc train {r['train_acc']:.3f} "
                      f"held-out {r['test_acc']:.3f}; {r['wall']:.1f} s", flush=True)

    lines = []
    for setting in settings:
        any_r = results[(setting, families[0], seeds[0])]
        lines += ["", f"## Setting `{setting}`: {' '.join(SETTINGS[setting])}",
                  f"({any_r['members']} members vs {any_r['nonmembers']} non-members, reference pool "
                  f"{any_r['pool']} rows, {any_r['n_models']} reference models, seeds {args.seeds})", "",
                  "| family | variance | AUC per seed | AUC mean (range) | yardstick AUC | TPR@1% per seed "
                  "| TPR@1% mean (range) | yardstick TPR@1% | target acc train / held-out |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for family in families:
            rs = [results[(setting, family, s)] for s in seeds]
            auc_rng, tpr_rng = YARDSTICK.get(family, (None, None))
            for name, label in (("lira", "per_record"), ("lira_fixed", "fixed")):
                aucs = [r[name]["auc"] for r in rs]
                tprs = [r[name]["tpr01"] for r in rs]
                ys_auc = "-" if auc_rng is None else f"{auc_rng[0]:.2f}–{auc_rng[1]:.2f} ({_verdict(statistics.mean(aucs), auc_rng)})"
                ys_tpr = "-" if tpr_rng is None else f"{tpr_rng[0]:.2f}–{tpr_rng[1]:.2f} ({_verdict(statistics.mean(tprs), tpr_rng)})"
                acc = (f"{statistics.mean(r['train_acc'] for r in rs):.3f} / "
                       f"{statistics.mean(r['test_acc'] for r in rs):.3f}")
                lines.append(f"| {family} | {label} | {', '.join(f'{a:.3f}' for a in aucs)} | {_stat(aucs)} | {ys_auc} "
                             f"| {', '.join(f'{t:.3f}' for t in tprs)} | {_stat(tprs)} | {ys_tpr} | {acc} |")
    lines += ["", f"Script wall time {time.perf_counter() - t_script:.0f} s."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
