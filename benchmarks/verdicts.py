"""The recommendation across scenarios: which configurations the default risk file refuses,
sends to review or passes, and why (the README's "How the tutorial ends" and the issue's
evidence).

    python benchmarks/verdicts.py [--n-models 64] [--seeds 12345] [override ...]

Each scenario is the tutorial population with every attack (``attack=suite``), run in-process
with ``tracking=none``; the verdict is computed from the run's summary exactly as ``run.py``
does. Prints one row per scenario and seed: the outcome, the deciding reasons (refuse / review
counts and the first of each), the strongest realistic attack's AUC and TPR at 1% FPR, and the
target's accuracy on fresh rows.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from families import compose  # noqa: E402  (benchmarks share one way to compose a scenario)

SCENARIOS = {
    "svc gamma=3 (tutorial)": [],
    "svc gamma=0.1": ["model.gamma=0.1"],
    "svc gamma=0.1, rows allowed": ["model.gamma=0.1", "risk.may_embed_rows=[SVC]"],
    "logistic_regression": ["model=logistic_regression"],
    "mlp": ["model=mlp"],
    "decision_tree leaf>=10": ["model=decision_tree", "model.min_samples_leaf=10"],
    "decision_tree": ["model=decision_tree"],
    "random_forest": ["model=random_forest"],
    "knn": ["model=knn"],
}


def one(overrides, seed: int, n_models: int) -> dict:
    from mia_engine.scenario import prepare_scenario, execute_scenario
    from mia_engine.verdict import decide

    cfg = compose(["tracking=none", "attack=suite", f"reference.n_models={n_models}", "reference.cache=false",
                   f"data.seed={seed}", *overrides])
    t = time.perf_counter()
    plan = prepare_scenario(cfg)
    result = execute_scenario(plan)
    summary = result.summary()
    verdict = decide(summary, plan.risk)
    wall = time.perf_counter() - t
    refuse = [r for r in verdict["reasons"] if r["outcome"] == "do_not_release"]
    review = [r for r in verdict["reasons"] if r["outcome"] == "needs_review"]
    a = summary.get("attack") or {}
    return {"outcome": verdict["text"], "refuse": refuse, "review": review, "attack": a.get("name"),
            "auc": a.get("auc"), "tpr": a.get("tpr_at_fpr_0.01"), "acc": summary["target"]["test_accuracy"],
            "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-models", type=int, default=64)
    ap.add_argument("--seeds", default="12345")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # SVC(probability=True) in scikit-learn 1.9
    warnings.filterwarnings("ignore", message=".*(converge|Maximum number of iteration).*")
    print("| scenario | seed | recommendation | refuse | review | first reason | strongest attack | AUC | "
          "TPR@1% | fresh acc. | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, overrides in SCENARIOS.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            r = one([*overrides, *args.overrides], seed, args.n_models)
            first = (r["refuse"] or r["review"] or [{"text": ""}])[0]["text"]
            print(f"| {name} | {seed} | {r['outcome']} | {len(r['refuse'])} | {len(r['review'])} | {first[:90]} | "
                  f"{r['attack']} | {r['auc']:.3f} | {r['tpr']:.3f} | {r['acc']:.3f} | {r['wall']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
