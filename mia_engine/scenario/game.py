"""The individual's privacy game: how reliably can the attacker tell whether this person was in?

One run of the tutorial is one draw of the data and the models. The game replays the draw
many times. In trial t:

1. A fresh target dataset is drawn from the population with the trial's own seed.
2. Each named record goes in with probability ``inclusion_probability``; the evaluator keeps
   the coins.
3. The target is trained with the published recipe.
4. Every configured attack scores every named record.

What the attacker learns without the target (shadow models, reference models, the attack
itself) is learned once, from the scenario's own shadow data, and reused in every trial.

Trial seeds come from ``SeedSequence(evaluation.seed, spawn_key=(t,))``, so trial t is the same
whether it is played in a game of 10 or 1000, on any number of workers, or alone
(``evaluation.replay_trial=t``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError

log = logging.getLogger("mia_engine")


def trial_seeds(root: int, t: int) -> tuple[int, np.random.SeedSequence]:
    """Trial t's population seed and the seed sequence of its inclusion coins."""
    data_seed = int(np.random.SeedSequence(root, spawn_key=(t, 0)).generate_state(1)[0])
    return data_seed, np.random.SeedSequence(root, spawn_key=(t, 1))


@dataclass
class GameRecord:
    name: str
    values: tuple[float, ...]
    label: int


@dataclass
class GamePlan:
    records: list[GameRecord]
    n_trials: int
    seed: int
    inclusion_probability: float
    n_jobs: int
    backend: str
    replay_trial: int | None
    fpr_levels: tuple[float, ...]
    confidence: float = 0.95


def prepare_game(cfg: Mapping[str, Any], plan) -> GamePlan | None:
    """Validate the ``evaluation`` node (None when the mode is a single run)."""
    from .plan import check_workers

    ev = cfg.get("evaluation") or {"mode": "single_run"}
    mode = ev.get("mode")
    if mode == "single_run":
        return None
    if mode != "individual_game":
        raise ConfigError("evaluation.mode", f"unknown evaluation mode {mode!r}; available: single_run, individual_game")
    n = ev.get("n_trials")
    if n is None or n < 2:
        raise ConfigError("evaluation.n_trials", f"a game needs at least 2 trials (some IN, some OUT), got {n}")
    p = ev.get("inclusion_probability")
    if p is None or not 0.0 < p < 1.0:
        raise ConfigError("evaluation.inclusion_probability",
                          f"must lie strictly between 0 and 1 (else every trial is IN or every trial OUT), got {p}")
    replay = ev.get("replay_trial")
    if replay is not None and not 0 <= replay < n:
        raise ConfigError("evaluation.replay_trial", f"trials are numbered 0 to {n - 1}, got {replay}")
    check_workers(ev, "evaluation")
    levels = tuple(float(v) for v in ev.get("fpr_levels") or ())
    for i, level in enumerate(levels):
        if not 0.0 < level <= 1.0:
            raise ConfigError(f"evaluation.fpr_levels.{i}", f"an FPR level must lie in (0, 1], got {level}")
    source = plan.source
    records = []
    if ev.get("include_target_record") and source.target_record is not None:
        r = source.target_record
        records.append(GameRecord(r.name, r.values, int(r.label)))
    for name, node in (ev.get("records") or {}).items():
        key = f"evaluation.records.{name}"
        rec = source.parse_record(node or {}, key, name)
        if any(g.name == name for g in records):
            raise ConfigError(key, f"a record named {name!r} is already in the game (data.target_record)")
        records.append(GameRecord(name, rec.values, int(rec.label)))
    if not records:
        raise ConfigError("evaluation.records", "the game needs at least one named record (data.target_record or "
                                                "evaluation.records.<name>)")
    _, _, attacks = plan.build_estimators()
    for name, a in attacks.items():
        if a.needs_membership_labels:
            raise ConfigError(f"attack.{name}", "the worst-case attack trains on the target's real members, which "
                                                "the game keeps from the attacker; leave it out of the game")
    return GamePlan(records, int(n), int(ev["seed"]), float(p), int(ev["n_jobs"]), str(ev["backend"]),
                    replay, levels)


@dataclass
class GameContext:
    """Everything a trial needs; plain data and fitted attacks, picklable for process workers."""

    source: Any                 # the data source: redraws each trial's target training set
    recipe: Any                 # the target's training recipe (mia_engine.models.ModelRecipe)
    X_records: np.ndarray
    y_records: np.ndarray
    names: list[str]
    attacks: dict
    knowledge: Any
    reference_index: np.ndarray | None
    population_X: np.ndarray | None
    seed: int
    inclusion_probability: float


@dataclass
class GameResult:
    plan: GamePlan
    trials: list[dict]                    # one row per (trial, record, attack)
    single_run: dict[str, dict[str, float]]  # record -> attack -> score under the scenario's own target
    thresholds: dict[str, float]
    score_labels: dict[str, str]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # record -> attack -> AttackMetrics
    seconds: float = 0.0

    def ranking(self) -> list[tuple[str, str, float]]:
        """Records from most to least exposed: (record, its most revealing attack, AUC)."""
        rows = []
        for rec, by_attack in self.metrics.items():
            best = max(by_attack, key=lambda a: by_attack[a].auc)
            rows.append((rec, best, by_attack[best].auc))
        return sorted(rows, key=lambda r: -r[2])

    def summary(self) -> dict[str, Any]:
        from ..metrics import clopper_pearson

        p = self.plan
        out: dict[str, Any] = {"n_trials": p.n_trials, "seed": p.seed, "inclusion_probability": p.inclusion_probability,
                               "seconds": self.seconds}
        if p.replay_trial is not None:
            out["replayed_trial"] = p.replay_trial
            out["trial"] = self.trials
            return out
        records: dict[str, Any] = {}
        for rec, by_attack in self.metrics.items():
            records[rec] = {}
            for attack, m in by_attack.items():
                n = m.n_members + m.n_nonmembers
                correct = int(round(m.accuracy * n))
                tp = int(round(m.tpr_at_threshold * m.n_members))
                fp = int(round(m.fpr_at_threshold * m.n_nonmembers))
                (acc_lo, acc_hi), (tpr_lo, tpr_hi), (fpr_lo, fpr_hi) = (
                    tuple(float(v) for v in clopper_pearson(k, total, p.confidence))
                    for k, total in ((correct, n), (tp, m.n_members), (fp, m.n_nonmembers)))
                s = m.summary()
                records[rec][attack] = {
                    "auc": s["auc"], "auc_ci_low": s["auc_ci_low"], "auc_ci_high": s["auc_ci_high"],
                    "auc_pvalue": s["auc_pvalue"],
                    "accuracy": m.accuracy, "accuracy_ci_low": acc_lo, "accuracy_ci_high": acc_hi,
                    "tpr_at_threshold": m.tpr_at_threshold, "tpr_ci_low": tpr_lo, "tpr_ci_high": tpr_hi,
                    "fpr_at_threshold": m.fpr_at_threshold, "fpr_ci_low": fpr_lo, "fpr_ci_high": fpr_hi,
                    **{k: v for k, v in s.items() if k.startswith("tpr_at_fpr_")},
                    "epsilon_lower_bound": s["epsilon_lower_bound"],
                    "n_in": m.n_members, "n_out": m.n_nonmembers,
                    "single_run_score": self.single_run[rec][attack],
                }
        out["records"] = records
        out["ranking"] = {rec: {"rank": i + 1, "attack": attack, "auc": auc}
                          for i, (rec, attack, auc) in enumerate(self.ranking())}
        return out


def play_trial(t: int, ctx: GameContext) -> list[dict]:
    """Trial t: draw, include, train, score. Depends on nothing but t and the context."""
    from ..attacks import Candidates
    from ..models import fit_model

    data_seed, coin_seq = trial_seeds(ctx.seed, t)
    sample = ctx.source.trial_target(data_seed)
    included = np.random.default_rng(coin_seq).random(len(ctx.names)) < ctx.inclusion_probability
    X = np.vstack([sample.X, ctx.X_records[included]])
    y = np.concatenate([sample.y, ctx.y_records[included]])
    target = ctx.recipe.build_seeded()
    fit_model(target, X, y, "model")
    cands = Candidates(ctx.X_records, ctx.y_records, target.predict_proba(ctx.X_records), included,
                       np.ones(len(ctx.names), bool), reference_index=ctx.reference_index)
    knowledge = ctx.knowledge
    if ctx.population_X is not None:
        knowledge = dataclasses.replace(knowledge, population_target_probabilities=target.predict_proba(ctx.population_X))
    rows = []
    for name, attack in ctx.attacks.items():
        scores = np.asarray(attack.score(cands, knowledge), dtype=float)
        for i, rec in enumerate(ctx.names):
            rows.append({"trial": t, "data_seed": data_seed, "record": rec, "included": bool(included[i]),
                         "attack": name, "score": float(scores[i]),
                         "predicted_member": bool(scores[i] >= attack.threshold_)})
    return rows


def _play_chunk(ts, ctx):
    return [row for t in ts for row in play_trial(t, ctx)]


def _chunks(trials: list[int], workers: int) -> list[list[int]]:
    """Trials dealt into chunks: a few per worker, and at most 1% of the game each, so that
    progress is reported as the game goes (the order of results does not matter: rows are sorted)."""
    n = max(workers * 4, min(100, len(trials)))
    return [c for c in (trials[i::n] for i in range(n)) if c]


def play_game(plan, game: GamePlan) -> GameResult:
    """Learn the attacker's knowledge once, then play the trials (in parallel: joblib or Ray)."""
    from ..attacks import Candidates
    from ..compute import Progress, map_tasks
    from ..compute import workers as count_workers
    from ..metrics import attack_metrics
    from ..models import fit_model
    from .attacker import learn_attacker
    from .execute import draw_target_and_attacker

    start = time.perf_counter()
    source = plan.source
    target_model, shadow_model, attacks = plan.build_estimators()
    # The scenario's own draws, exactly as a single run makes them: the attacker's rows, and
    # the target that gives each record its single-run score.
    _, base, shd = draw_target_and_attacker(plan)
    if plan.target_recipe.fitted is None:
        fit_model(target_model, base.X, base.y, "model")

    X_r = np.asarray([g.values for g in game.records], dtype=float)
    y_r = np.asarray([g.label for g in game.records])
    names = [g.name for g in game.records]
    rec = source.target_record
    in_base = np.array([rec is not None and rec.member and g.name == rec.name for g in game.records])
    base_cands = Candidates(X_r, y_r, target_model.predict_proba(X_r), in_base, np.ones(len(names), bool))
    knowledge, _ = learn_attacker(plan, shadow_model, shd, attacks, np.asarray(target_model.classes_), base_cands,
                                  target_model, len(base.y))
    for a in attacks.values():
        a.fit(knowledge)
    single = {n: {} for n in names}
    for name, a in attacks.items():
        for i, s in enumerate(a.score(base_cands, knowledge)):
            single[names[i]][name] = float(s)

    ctx = GameContext(source, plan.target_recipe, X_r, y_r, names, attacks, knowledge, base_cands.reference_index,
                      knowledge.population_X, game.seed, game.inclusion_probability)
    trials = [game.replay_trial] if game.replay_trial is not None else list(range(game.n_trials))
    n_jobs = game.n_jobs if len(trials) > 1 else 1
    backend = game.backend if len(trials) > 1 else "threading"
    log.info("individual game: %d trial(s), %d record(s), %d attack(s), %s", len(trials), len(names), len(attacks),
             "on Ray" if backend == "ray" else f"n_jobs={n_jobs} ({backend})")
    progress = Progress(len(trials), "individual game", "trials")
    workers = count_workers(backend, n_jobs, len(trials), plan.ray_settings)
    # The trials' rows in any order: they are sorted below, so the backend changes no number.
    rows = []
    for _, part in map_tasks(_play_chunk, _chunks(trials, workers), ctx, backend=backend, n_jobs=n_jobs,
                             ray_settings=plan.ray_settings):
        rows += part
        progress.done(len({r["trial"] for r in part}))
    rows.sort(key=lambda r: (r["trial"], list(attacks).index(r["attack"]), names.index(r["record"])))
    result = GameResult(game, rows, single, {n: float(a.threshold_) for n, a in attacks.items()},
                        {n: a.score_label for n, a in attacks.items()})
    if game.replay_trial is None:
        for rec_name in names:
            result.metrics[rec_name] = {}
            for attack in attacks:
                mine = [r for r in rows if r["record"] == rec_name and r["attack"] == attack]
                ins = np.array([r["score"] for r in mine if r["included"]])
                outs = np.array([r["score"] for r in mine if not r["included"]])
                if len(ins) == 0 or len(outs) == 0:
                    raise ConfigError("evaluation.n_trials", f"{game.n_trials} trials left {rec_name} "
                                                             f"{'never IN' if len(ins) == 0 else 'never OUT'}; play more")
                result.metrics[rec_name][attack] = attack_metrics(ins, outs, result.thresholds[attack],
                                                                  game.fpr_levels, confidence=game.confidence)
    result.seconds = time.perf_counter() - start
    log.info("individual game done in %.2f s", result.seconds)
    return result


def write_game_outputs(result: GameResult, out_dir) -> dict[str, Any]:
    """trials.csv, ranking.{csv,md} under game/, a score plot per record and attack under plots/."""
    import csv
    from pathlib import Path

    from .. import plots

    out_dir = Path(out_dir)
    game_dir = out_dir / "game"
    game_dir.mkdir(parents=True, exist_ok=True)
    with (game_dir / "trials.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["trial", "data_seed", "record", "included", "attack", "score",
                                           "predicted_member"])
        w.writeheader()
        for row in result.trials:
            w.writerow({**row, "score": repr(row["score"])})
    if result.metrics:
        s = result.summary()["records"]
        header = ["rank", "record", "attack", "auc", "auc_95ci", "accuracy", "accuracy_95ci", "epsilon_lower_bound",
                  "n_in", "n_out", "single_run_score"]
        rows = []
        for i, (rec, attack, _) in enumerate(result.ranking()):
            m = s[rec][attack]
            rows.append([i + 1, rec, attack, f"{m['auc']:.3f}", f"[{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]",
                         f"{m['accuracy']:.3f}", f"[{m['accuracy_ci_low']:.3f}, {m['accuracy_ci_high']:.3f}]",
                         f"{m['epsilon_lower_bound']:.2f}", m["n_in"], m["n_out"], f"{m['single_run_score']:.3g}"])
        with (game_dir / "ranking.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])
        (game_dir / "ranking.md").write_text("\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]) + "\n")
        plot_dir = out_dir / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        for rec, by_attack in result.metrics.items():
            for attack in by_attack:
                plots.game_scores(result, rec, attack, plot_dir / f"game_{rec}_{attack}.png")
    return {"game": game_dir}


def format_game(result: GameResult) -> str:
    """The console table: records ranked by exposure, with intervals."""
    s = result.summary()
    if "records" not in s:
        rows = [f"  trial {s['replayed_trial']}: " + ", ".join(
            f"{r['record']}/{r['attack']} {'IN' if r['included'] else 'OUT'} score {r['score']:.4g}" for r in s["trial"])]
        return "\n".join(rows)
    lines = [f"  individual game: {s['n_trials']} trials (seed {s['seed']}, inclusion {s['inclusion_probability']:g}), "
             f"{s['seconds']:.1f} s"]
    for i, (rec, attack, _) in enumerate(result.ranking()):
        m = s["records"][rec][attack]
        lines.append(f"  {i + 1}. {rec:<24} {attack}: AUC {m['auc']:.3f} [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]"
                     f"  accuracy {m['accuracy']:.2f} [{m['accuracy_ci_low']:.2f}, {m['accuracy_ci_high']:.2f}]"
                     f"  eps>={m['epsilon_lower_bound']:.2f}  ({m['n_in']} IN / {m['n_out']} OUT; single run "
                     f"{m['single_run_score']:.3g})")
    return "\n".join(lines)
