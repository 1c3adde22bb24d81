"""The individual game on the tutorial scenario: speed, and the MP's exposure at gamma 3 and 0.1.

    python benchmarks/game.py [--trials 200] [--seeds 2024,1,7,99,5]

1. Speed: 200 trials with the tutorial's attack, in-process (`play_game`, after one warm-up
   game), serially, on 2 loky workers and on 2 threads; and the whole cold command
   `python run.py evaluation=individual_game evaluation.n_trials=200 tracking=none`.
   Target (issue 5): under 30 s on 2 cores.
2. Exposure: 300-trial games for the MP at gamma 3 and 0.1 with several root seeds: AUC with
   its 95% interval, accuracy at the attack's threshold with its Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from attacks import compose  # noqa: E402


def game(overrides):
    from mia_engine.scenario.game import play_game, prepare_game
    from mia_engine.scenario import prepare_scenario

    cfg = compose(["tracking=none", "evaluation=individual_game", *overrides])
    plan = prepare_scenario(cfg)
    return play_game(plan, prepare_game(cfg, plan))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", default="2024,1,7,99,5")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    game(["evaluation.n_trials=4", "evaluation.n_jobs=1"])  # imports

    print(f"## {args.trials} trials, tutorial attack, 3 records\n")
    print("| how | seconds |\n|---|---|")
    for label, extra in (("in-process, serial", ["evaluation.n_jobs=1"]),
                         ("in-process, 2 loky workers (cold pool)", ["evaluation.n_jobs=2", "evaluation.backend=loky"]),
                         ("in-process, 2 loky workers (warm pool)", ["evaluation.n_jobs=2", "evaluation.backend=loky"]),
                         ("in-process, 2 threads", ["evaluation.n_jobs=2", "evaluation.backend=threading"])):
        t = time.perf_counter()
        game([f"evaluation.n_trials={args.trials}", *extra])
        print(f"| {label} | {time.perf_counter() - t:.2f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "run.py"), "evaluation=individual_game",
                        f"evaluation.n_trials={args.trials}", "tracking=none"], cwd=tmp, check=True,
                       capture_output=True)
        print(f"| `python run.py evaluation=individual_game evaluation.n_trials={args.trials} tracking=none`, cold "
              f"| {time.perf_counter() - t:.2f} |")

    print("\n## The MP over 300 trials (tutorial attack)\n")
    print("| gamma | root seed | AUC [95% CI] | accuracy [95% CI] | epsilon lower bound | IN / OUT |")
    print("|---|---|---|---|---|---|")
    for gamma in (3, 0.1):
        aucs = []
        for seed in args.seeds.split(","):
            g = game([f"model.gamma={gamma}", "evaluation.n_trials=300", f"evaluation.seed={seed}",
                      "evaluation.records=null"])
            m = g.summary()["records"]["former_prime_minister"]["shadow_lr"]
            aucs.append(m["auc"])
            print(f"| {gamma:g} | {seed} | {m['auc']:.3f} [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}] | "
                  f"{m['accuracy']:.3f} [{m['accuracy_ci_low']:.3f}, {m['accuracy_ci_high']:.3f}] | "
                  f"{m['epsilon_lower_bound']:.2f} | {m['n_in']} / {m['n_out']} |", flush=True)
        print(f"| {gamma:g} | mean | {sum(aucs) / len(aucs):.3f} | | | |")


if __name__ == "__main__":
    main()
