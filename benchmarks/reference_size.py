"""The strongest realistic attack at two audit sizes: reference models as large as the target.

    python benchmarks/reference_size.py [--seeds 12345,13345,14345] [--quick] [override ...]

The tutorial scenario at gamma=3 (200-row target), with 200 and with 1,000 fresh non-members,
the four reference-model attacks in one run (64 reference models, shared), three population
seeds. With 1,000 non-members the reference pool holds 1,200 candidates; every reference model
trains on 200 rows (the target's size) rather than on a half of the pool (600).

Each setting runs twice: `audit.duplicates=keep` scores the non-members that copy a member row,
as the peers' measurement on identical data did (SACRO-ML, ART and ML Privacy Meter were run on
the same rows), and `drop` (the default) leaves them out. The table gives each attack's mean AUC,
TPR at FPR 1% and at FPR 0.1% over the seeds, and the best realistic attack's, beside the
numbers SACRO-ML's online LiRA reached on the same data (measured side by side, shared/SPEC.md):
200 non-members AUC 0.980 / TPR@1% 0.812; 1,000 non-members 0.955 / 0.665 / 0.633.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ATTACKS = ("lira", "lira_offline", "rmia", "rmia_offline")
SACRO = {200: (0.980, 0.812, None), 1000: (0.955, 0.665, 0.633)}


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from mia_engine.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="12345,13345,14345")
    ap.add_argument("--quick", action="store_true", help="one seed, 16 reference models")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    from mia_engine.scenario import run_scenario

    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    n_models = 16 if args.quick else 64
    start = time.perf_counter()
    rows = []
    for n in (200, 1000):
        for dup in ("keep", "drop"):
            per = {a: [] for a in ATTACKS}
            best = []
            pool = None
            for seed in seeds:
                s = run_scenario(compose(["tracking=none", "reference.cache=false", f"data.seed={seed}",
                                          f"attack=[{','.join(ATTACKS)}]", f"reference.n_models={n_models}",
                                          f"audit.n_nonmembers={n}", f"audit.duplicates={dup}",
                                          *args.overrides])).summary()
                pool = s["reference"]["pool_rows"]
                for a in ATTACKS:
                    m = s["attacks"][a]
                    per[a].append((m["auc"], m["tpr_at_fpr_0.01"], m["tpr_at_fpr_0.001"]))
                b = s["attack"]
                best.append((b["auc"], b["tpr_at_fpr_0.01"], b["tpr_at_fpr_0.001"], b["name"]))
                print(f"n={n} {dup} seed {seed}: best {b['name']} AUC {b['auc']:.3f} TPR@1% {b['tpr_at_fpr_0.01']:.3f} "
                      f"TPR@0.1% {b['tpr_at_fpr_0.001']:.3f} ({s['attack']['n_nonmembers']} non-members, pool {pool})",
                      flush=True)
            rows.append((n, dup, pool, per, best))

    def mean(xs, i):
        return statistics.fmean(x[i] for x in xs)

    print(f"\n{len(seeds)} seed(s), {n_models} reference models, gamma=3; means over seeds\n")
    print("| non-members drawn | copies | attack | AUC | TPR@1% | TPR@0.1% | SACRO-ML LiRA (same data) |")
    print("|---|---|---|---|---|---|---|")
    for n, dup, pool, per, best in rows:
        sacro = SACRO[n]
        ref = " / ".join("—" if v is None else f"{v:.3f}" for v in sacro)
        for a in ATTACKS:
            print(f"| {n} | {dup} | {a} | {mean(per[a], 0):.3f} | {mean(per[a], 1):.3f} | {mean(per[a], 2):.3f} | |")
        names = ", ".join(sorted({b[3] for b in best}))
        print(f"| {n} | {dup} | **best realistic** ({names}) | {mean(best, 0):.3f} | {mean(best, 1):.3f} | "
              f"{mean(best, 2):.3f} | {ref} |")
    print(f"\nwall {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
