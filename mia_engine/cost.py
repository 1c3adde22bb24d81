"""What a run will cost, before it runs: the fits of each stage, their rows, the memory, the time.

:func:`plan_work` lists the work a validated :class:`~mia_engine.scenario.plan.ScenarioPlan`
(and the individual's game, if any) will do, stage by stage, with the sizes a run then uses:

- ``target``: the target's fit (none for a saved, fitted model), queried on the scored records;
- ``shadow``: the shadow models (the largest ``n_shadow_models`` of the attacks);
- ``reference_<pool>``: ``reference.n_models`` reference models per pool the attacks ask for
  (:func:`mia_engine.scenario.attacker.reference_pools`), each trained on half of the pool or on
  as many rows as the target (:func:`mia_engine.reference.uses_halves`) and queried on every
  pool and scored row; none when ``reference.cache`` already holds them (unknowable beforehand);
- ``worst_case_<name>``: the upper bound's ``n_folds x n_repeats`` fits of its classifier;
- ``game_*``: the individual's game learns the attacker again (its own target, shadow and
  reference fits) and fits the target's recipe once per trial.

Time comes from one timed fit: :func:`time_fits` (``plan_only=true``) draws the target's rows
as a run does and fits one model of the reference recipe on a training set of the reference
models' size (and one at the smallest size the recipe is fitted at, when well below); a normal
run times its own target and shadow fits instead (no extra fit, see :func:`measured_timing`).
Each stage's time is its fits x (fit time at its rows, :func:`fit_seconds`, + query time in
proportion to its query rows) / its workers (:func:`speedup`: threads count as one). It covers
the fits only: Python's start-up, drawing, scoring, plots, the report and tracking come on top
(a few seconds, whatever the scenario).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from .compute import clock, duration, ray_slots, workers
from .models import PROBABILITY_DEPRECATION, estimator_name, fit_model, openmp_limit

#: plan.json's format.
PLAN_SCHEMA = "mia-engine/plan/1"
#: Allowance for starting process workers (loky, multiprocessing), importing scikit-learn and
#: the engine in them and sending them the stage's data, once per stage (measured 2-3 s on 2
#: cores for the individual game; see also the README's table of backends).
PROCESS_STARTUP_SECONDS = 2.5
#: Query rows timed at most in plan_only; more are scaled linearly from these.
QUERY_SAMPLE_ROWS = 20000


@dataclass
class Stage:
    """One kind of fit in a run: how many, on how many rows, queried on how many, where."""

    key: str                    # target, shadow, reference_candidates, worst_case_<name>, game_trials, ...
    title: str                  # for people
    recipe: str                 # whose timed fit it scales from: "target", "shadow" or "worst_case:<name>"
    fits: int
    train_rows: int
    query_rows: int
    what: str = ""              # the estimator
    backend: str = "serial"
    workers: int | None = 1     # None: a Ray cluster of unknown size (the time is CPU time)
    note: str = ""
    seconds: float | None = None
    cpu_seconds: float | None = None


@dataclass
class Work:
    """Everything a run will fit, with the sizes; :func:`estimate` fills in the seconds."""

    stages: list[Stage]
    sizes: dict[str, Any]
    memory: list[tuple[str, str, int]]
    memory_available: int | None
    workers: dict[str, Any]

    @property
    def fits(self) -> int:
        return sum(s.fits for s in self.stages)

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)


@dataclass
class FitTime:
    """One timed fit and query."""

    what: str
    rows: int                   # training rows of the timed fit
    fit_seconds: float
    fit_cpu_seconds: float
    query_rows: int
    query_seconds: float
    query_cpu_seconds: float


@dataclass
class Timing:
    basis: str                              # what was timed, for people
    # recipe ("target", "shadow", "worst_case:<name>") -> its timed fits (one per size timed)
    fits: dict[str, list[FitTime]] = field(default_factory=dict)
    # Seconds every reference fit spends besides fitting and querying: setting its OpenMP thread
    # limit (mia_engine.models.openmp_limit).
    reference_overhead: float = 0.0
    # Seconds a game trial spends drawing its target's rows (timed once: a draw, no fit).
    trial_overhead: float = 0.0


def trial_overhead(plan, game) -> float:
    """One game trial's draw of its target's rows (trial 0's, as the game draws it), timed."""
    from .scenario.game import trial_seeds

    data_seed, _ = trial_seeds(game.seed, 0)
    w0 = time.perf_counter()
    plan.source.trial_target(data_seed)
    return time.perf_counter() - w0


def reference_overhead() -> float:
    """What a reference fit's thread limit costs (see :class:`Timing`), timed without a fit."""
    best = float("inf")
    for _ in range(2):
        w0 = time.perf_counter()
        with openmp_limit(1):
            pass
        best = min(best, time.perf_counter() - w0)
    return best


# ---- the work ----------------------------------------------------------------------------------


def _ray_workers(settings: Mapping[str, Any] | None, n: int) -> tuple[int | None, str]:
    """Ray's CPUs for ``n`` tasks, without starting Ray: the runtime this process already has,
    else a local instance's ``ray.num_cpus`` (null: this machine's CPUs). A cluster named by
    ``ray.address`` (or $RAY_ADDRESS) that is not joined yet has an unknown size: None."""
    import sys

    settings = dict(settings or {})
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        cpus = float(ray.cluster_resources().get("CPU", 1))
        where = f"Ray cluster CPUs ({int(cpus)})"
    elif settings.get("address") or os.environ.get("RAY_ADDRESS"):
        return None, f"Ray cluster at {settings.get('address') or os.environ.get('RAY_ADDRESS')} (size unknown " \
                     "until it is joined)"
    else:
        cpus = float(settings.get("num_cpus") or os.cpu_count() or 1)
        where = f"a local Ray instance ({int(cpus)} CPUs assumed; not started)"
    return ray_slots(cpus, settings, n), where


def workers_for(node: Mapping[str, Any], n: int, ray_settings: Mapping[str, Any] | None = None
                ) -> tuple[int | None, str]:
    """The workers ``n`` fits get under ``node``'s ``backend`` and ``n_jobs`` (as
    :mod:`mia_engine.reference` and the game count them), and a description."""
    backend = str(node.get("backend") or "threading")
    if backend == "ray":
        return _ray_workers(ray_settings, max(n, 1))
    n_jobs = int(node.get("n_jobs") or 1)
    if n_jobs == 1 or n <= 1:
        return 1, f"{backend}, 1 worker"
    w = workers(backend, n_jobs, n)
    return w, f"{backend}, {w} worker{'s' if w != 1 else ''} (n_jobs={n_jobs})"


def _pool_sizes(ref: Mapping[str, Any], pool: str, n_candidates: int, n_attacker: int, n_target: int
                ) -> dict[str, Any]:
    """A pool's rows, query rows and training rows per model, as attach_reference lays them out."""
    from .reference import uses_halves
    from .scenario.plan import population_in_pool

    if pool == "candidates":
        with_population = population_in_pool(ref, n_candidates, n_target)
        pool_rows = n_candidates + (n_attacker if with_population else 0)
    else:
        with_population, pool_rows = True, n_attacker
    halves = uses_halves(pool_rows, n_target)
    return {"pool_rows": pool_rows, "query_rows": n_attacker + n_candidates, "population_in_pool": with_population,
            "halves": halves, "train_rows_per_model": (pool_rows + 1) // 2 if halves else n_target}


def _reference_stages(plan, prefix: str, title: str, pools: list[str], n_candidates: int, n_attacker: int,
                      n_target: int, sizes: dict[str, Any], workers: dict[str, Any]) -> list[Stage]:
    ref = plan.reference_node
    n_models = int(ref.get("n_models") or 0)
    w, where = workers_for(ref, n_models, plan.ray_settings)
    if pools:
        workers.setdefault("reference", {"backend": str(ref.get("backend")), "n_jobs": ref.get("n_jobs"),
                                         "workers": w, "where": where})
    cached = plan.cache_dir is not None
    out = []
    for pool in pools:
        s = _pool_sizes(ref, pool, n_candidates, n_attacker, n_target)
        sizes[pool] = s
        layout = (f"halves of a {s['pool_rows']:,}-row pool" if s["halves"]
                  else f"subsets of the target's size from a {s['pool_rows']:,}-row pool")
        out.append(Stage(f"{prefix}reference_{pool}", f"{title}reference models ({pool} pool)", "shadow", n_models,
                         s["train_rows_per_model"], s["query_rows"], plan.shadow_recipe.label(),
                         str(ref.get("backend")), w,
                         layout + ("; none if reference.cache holds them already" if cached else "")))
    return out


def plan_work(plan, game=None, n_audit_scored: int | None = None) -> Work:
    """The work of a run (see the module docstring): no draw, no fit. ``n_audit_scored``: the
    audit's non-members left after copies of members are dropped, when known (drawn)."""
    from .scenario.attacker import reference_pools
    from .scenario.plan import available_memory, memory_estimate, split_shadow

    source = plan.source
    _, _, attacks = plan.build_estimators()
    target_counts = plan.member_counts()
    n_target = sum(target_counts.values())
    n_attacker = sum(source.attacker_counts().values())
    y_attacker = source.attacker_labels()
    n_shadow_train = len(split_shadow(np.arange(len(y_attacker)), y_attacker, plan.shadow)[2])
    audit_counts: dict[int, int] = {}
    if plan.audit_enabled:
        audit_counts = source.nonmember_counts(target_counts, plan.n_nonmembers, "audit.n_nonmembers")
    n_audit = sum(audit_counts.values())
    n_scored = n_audit if n_audit_scored is None else int(n_audit_scored)
    rec = source.target_record
    record_extra = rec is not None and not (plan.audit_enabled and rec.member)
    n_candidates = (n_target + n_scored if plan.audit_enabled else 0) + (1 if record_extra else 0)
    sizes: dict[str, Any] = {
        "target_rows": n_target, "attacker_rows": n_attacker, "shadow_train_rows": n_shadow_train,
        "shadow_test_rows": n_attacker - n_shadow_train, "audit_nonmembers": n_audit,
        "audit_nonmembers_scored": n_scored, "scored_records": n_candidates,
    }
    if plan.audit_enabled and plan.duplicates == "drop" and n_audit_scored is None:
        sizes["audit_note"] = "copies of members among the non-members are dropped after the draw: at most"
    workers: dict[str, Any] = {}
    stages: list[Stage] = []
    fitted = plan.target_recipe.fitted is not None
    target_label = plan.target_recipe.label()
    stages.append(Stage("target", "target model", "target", 0 if fitted else 1, n_target,
                        n_candidates + n_attacker, target_label,
                        note="saved and fitted: not refitted" if fitted else ""))
    k = max([1] + [a.n_shadow_models for a in attacks.values()])
    stages.append(Stage("shadow", "shadow models", "shadow", k, n_shadow_train, n_attacker,
                        plan.shadow_recipe.label()))
    pools = reference_pools(attacks.values()) if n_candidates else []
    pool_sizes: dict[str, Any] = {}
    stages += _reference_stages(plan, "", "", pools, n_candidates, n_attacker, n_target, pool_sizes, workers)
    if pool_sizes:
        sizes["reference_pools"] = pool_sizes
        sizes["reference_models"] = int(plan.reference_node.get("n_models") or 0)
    for name, a in attacks.items():
        if a.needs_membership_labels and plan.audit_enabled:
            n = n_target + n_scored
            folds, repeats = int(a.n_folds), int(a.n_repeats)
            key = "worst_case" if name == "worst_case" else f"worst_case_{name}"
            stages.append(Stage(key, f"{name}: the upper bound's classifier", f"worst_case:{name}", folds * repeats,
                                n * (folds - 1) // folds, -(-n // folds) + (1 if record_extra else 0),
                                estimator_name(a.classifier), note=f"{folds} folds x {repeats} repeats, one after another"))
    if game is not None:
        n_records = len(game.records)
        trials = 1 if game.replay_trial is not None else int(game.n_trials)
        backend = game.backend if trials > 1 else "threading"
        node = {"backend": backend, "n_jobs": game.n_jobs if trials > 1 else 1}
        w, where = workers_for(node, trials, plan.ray_settings)
        workers["evaluation"] = {"backend": backend, "n_jobs": node["n_jobs"], "workers": w, "where": where}
        stages.append(Stage("game_target", "game: the scenario's target again", "target", 0 if fitted else 1,
                            n_target, n_records, target_label))
        stages.append(Stage("game_shadow", "game: shadow models again", "shadow", k, n_shadow_train, n_attacker,
                            plan.shadow_recipe.label()))
        game_pools: dict[str, Any] = {}
        pools_game = reference_pools(attacks.values())  # the game's records are always scored
        stages += _reference_stages(plan, "game_", "game: ", pools_game, n_records, n_attacker, n_target, game_pools,
                                    workers)
        base = sum(source.target_counts().values())
        trial_rows = int(round(base + n_records * game.inclusion_probability))
        stages.append(Stage("game_trials", "game: one target per trial", "target", trials, trial_rows,
                            n_records + (n_attacker if pools_game else 0), target_label, backend, w,
                            f"{n_records} named record(s), each IN with probability {game.inclusion_probability:g}"))
        sizes["game"] = {"trials": trials, "records": n_records, "trial_rows": trial_rows,
                         **({"reference_pools": game_pools} if game_pools else {})}
    memory = memory_estimate(source, plan.reference_node, attacks, target_counts, audit_counts)
    return Work(stages, sizes, memory, available_memory(), workers)


# ---- timing ------------------------------------------------------------------------------------


def _subsample(X: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows, stratified by label when every class can keep a row (else plain random)."""
    if n >= len(y):
        return X, y
    from sklearn.utils import resample

    try:
        idx = resample(np.arange(len(y)), n_samples=n, replace=False, stratify=y, random_state=seed)
    except ValueError:
        idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
    return X[idx], y[idx]


def _query_rows(X: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // max(len(X), 1))
    return np.tile(X, (reps, 1))[:n] if reps > 1 else X[:n]


def time_one_fit(recipe, key: str, X: np.ndarray, y: np.ndarray, X_query: np.ndarray, query_rows: int,
                 random_state=None) -> tuple[FitTime, Any, np.ndarray]:
    """Fit one model of ``recipe`` on (X, y) and query it on ``query_rows`` rows (a sample of
    at most :data:`QUERY_SAMPLE_ROWS` timed and scaled linearly), as a reference fit runs: one
    OpenMP thread, BLAS single-threaded (see ``reference._fit_one``). Returns the time, the
    fitted model and the sample's probabilities."""
    import warnings

    from threadpoolctl import threadpool_limits


    est = recipe.build(random_state=random_state) if random_state is not None else recipe.build_seeded()
    sample = min(query_rows, QUERY_SAMPLE_ROWS)
    Xq = _query_rows(X_query, sample)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), openmp_limit(1):
        warnings.filterwarnings("ignore", message=PROBABILITY_DEPRECATION, category=FutureWarning)
        w0, c0 = clock()
        fit_model(est, X, y, key)  # off the main thread, with this thread's OpenMP limit; Ctrl-C is felt
        w1, c1 = clock()
        proba = np.asarray(est.predict_proba(Xq)) if sample else np.empty((0, 0))
        w2, c2 = clock()
    scale = query_rows / sample if sample else 0.0
    return (FitTime(estimator_name(est), int(len(y)), w1 - w0, c1 - c0, int(query_rows), (w2 - w1) * scale,
                    (c2 - c1) * scale), est, proba)


def draw_as_run(plan):
    """The run's first draws, as :func:`~mia_engine.scenario.execute.execute_scenario` makes
    them: the target's rows, the attacker's rows, and how many audit non-members are scored
    (after copies of members are dropped; None without an audit)."""
    from .scenario.execute import copies_of, draw_target_and_attacker

    draws, tgt, shd = draw_target_and_attacker(plan)
    n_scored = None
    if plan.audit_enabled:
        fresh = draws.nonmembers(plan.source.nonmember_counts(tgt.counts(), plan.n_nonmembers, "audit.n_nonmembers"))
        n_scored = len(fresh.y) - (int(copies_of(tgt, fresh).sum()) if plan.duplicates == "drop" else 0)
    return tgt, shd, n_scored


def plan_and_time(plan, game=None) -> tuple[Work, Timing, float]:
    """``plan_only``: draw as the run would, list the work with its exact sizes, time one fit,
    and estimate every stage."""
    tgt, shd, n_scored = draw_as_run(plan)
    work = plan_work(plan, game, n_scored)
    timing = time_fits(plan, work, (tgt, shd))
    if game is not None:
        timing.trial_overhead = trial_overhead(plan, game)
    return work, timing, estimate(work, timing)


def time_fits(plan, work: Work, drawn=None) -> Timing:
    """One timed fit of the reference recipe (``plan.shadow_recipe``) on a training set of the
    reference models' size, drawn as the run draws the target's rows (a stratified subsample of
    them with ``reference.seed`` when smaller), queried on as many rows as a reference model is.
    Besides: one fit at the smallest size the recipe is fitted at (shadow models, the population
    pool's halves) when it is well below that, since fit times do not scale in proportion to rows
    (a forest's trees cost as much on 70 rows as on 300); the target's recipe when it differs;
    one fit of each worst-case classifier on stand-in features of its folds' size.
    ``drawn``: (target rows, attacker rows) already drawn."""
    from .reference import model_random_state

    if drawn is None:
        from .scenario.execute import draw_target_and_attacker

        _, tgt, shd = draw_target_and_attacker(plan)
    else:
        tgt, shd = drawn
    seed = int(plan.reference_node.get("seed") or 0)
    refs = [s for s in work.stages if s.key.startswith("reference_")]
    shadow = work.stage("shadow")
    rows = max((s.train_rows for s in refs), default=shadow.train_rows)
    query = max((s.query_rows for s in refs), default=shadow.query_rows)
    X_all, y_all = np.vstack([tgt.X, shd.X]), np.concatenate([tgt.y, shd.y])
    X_fit, y_fit = (tgt.X, tgt.y) if rows <= len(tgt.y) else (X_all, y_all)
    X, y = _subsample(X_fit, y_fit, rows, seed)
    ref_time, model, proba = time_one_fit(plan.shadow_recipe, plan.shadow_key, X, y, X_all, query,
                                          random_state=model_random_state(seed, 0))
    y_proba = _query_rows(y_all[:, None], len(proba))[:, 0]  # the labels of the rows queried
    what = "a reference model" if refs else "a shadow model"
    timing = Timing(f"one timed fit of {what}: {ref_time.what} on {ref_time.rows:,} rows "
                    f"{_secs(_cost(ref_time))}, queried on {ref_time.query_rows:,} rows "
                    f"{_secs(_query_cost(ref_time))}")
    timing.fits["shadow"] = [ref_time]
    small = min((s.train_rows for s in work.stages if s.recipe == "shadow" and s.fits), default=rows)
    if small < 0.75 * rows:
        Xs, ys = (_subsample(shd.X, shd.y, small, seed) if small <= len(shd.y)
                  else _subsample(X_all, y_all, small, seed))
        try:
            small_time, _, _ = time_one_fit(plan.shadow_recipe, plan.shadow_key, Xs, ys, X_all, 0,
                                            random_state=model_random_state(seed, 1))
        except Exception:  # noqa: BLE001 - a size the run never fits at alone (e.g. too few rows)
            small_time = None
        if small_time is not None:
            timing.fits["shadow"].append(small_time)
            timing.basis += f"; on {small_time.rows:,} rows {_secs(_cost(small_time))}"
    timing.reference_overhead = reference_overhead()
    target = work.stage("target")
    same = plan.target_recipe is plan.shadow_recipe or (
        not plan.target_recipe.saved and plan.target_recipe.describe() == plan.shadow_recipe.describe())
    if same:
        timing.fits["target"] = timing.fits["shadow"]
    else:
        t_time, _, _ = time_one_fit(plan.target_recipe, "model", tgt.X, tgt.y, X_all, target.query_rows)
        timing.fits["target"] = [t_time]
        timing.basis += (f"; the target's recipe: {t_time.what} on {t_time.rows:,} rows "
                         f"{_secs(_cost(t_time))}")
    for stage in work.stages:
        if stage.recipe.startswith("worst_case:") and stage.fits:
            t = _time_worst_case(plan, stage, model, proba, y_proba, seed)
            timing.fits[stage.recipe] = [t]
            timing.basis += f"; {stage.key}'s classifier: {t.what} on {t.rows:,} rows {_secs(_cost(t))}"
    return timing


def _time_worst_case(plan, stage: Stage, model, proba: np.ndarray, y_proba: np.ndarray, seed: int) -> FitTime:
    """One fit of the worst-case classifier on stand-in features of the fold's size: the timed
    model's probabilities for the drawn rows (tiled), members and non-members half and half."""
    from sklearn.base import clone

    from .attacks import build_attacks
    from .signals import attack_features

    name = stage.recipe.split(":", 1)[1]
    attack = build_attacks(plan.attack_node, "attack")[name]
    n = stage.train_rows + stage.query_rows
    X = attack_features(_query_rows(proba, n), _query_rows(y_proba[:, None], n)[:, 0], np.asarray(model.classes_),
                        attack.features)
    member = np.random.default_rng(seed).permutation(np.arange(n) % 2)
    clf = clone(attack.classifier)
    w0, c0 = clock()
    clf.fit(X[:stage.train_rows], member[:stage.train_rows])
    w1, c1 = clock()
    clf.predict_proba(X[stage.train_rows:])
    w2, c2 = clock()
    return FitTime(estimator_name(clf), stage.train_rows, w1 - w0, c1 - c0, stage.query_rows, w2 - w1, c2 - c1)


def measured_timing(plan, measured: Mapping[str, Any], game=None) -> Timing:
    """A normal run's timing, from what it did anyway: the target's fit and query, and the shadow
    models' fits (a second size: the attacker's half). ``measured`` is what
    :func:`mia_engine.scenario.execute.execute_scenario` reports before the reference models."""
    timing = Timing("", reference_overhead=reference_overhead(),
                    trial_overhead=0.0 if game is None else trial_overhead(plan, game))
    tf, sf = measured.get("target_fit"), measured.get("shadow_fits")
    target = None
    if tf is not None:
        target = FitTime(plan.target_recipe.label(), int(tf["rows"]), tf["seconds"], tf["cpu_seconds"],
                         int(tf["query_rows"]), tf["query_seconds"], tf["query_cpu_seconds"])
    shadow = None
    if sf is not None:
        # Per shadow model: its fit and its queries (both halves of the attacker's rows).
        k = max(int(sf["fits"]), 1)
        secs, cpu = sf["seconds"] / k, sf["cpu_seconds"] / k
        shadow = FitTime(plan.shadow_recipe.label(), int(sf["rows"]), secs, cpu, 0, 0.0, 0.0)
    same = plan.target_recipe is plan.shadow_recipe
    if target is not None and shadow is not None and same:
        # One recipe timed at two sizes; the shadow models' queries taken out at the target's rate.
        q_rows = int(sf.get("query_rows") or 0)
        rate = target.query_seconds / target.query_rows if target.query_rows else 0.0
        rate_cpu = target.query_cpu_seconds / target.query_rows if target.query_rows else 0.0
        shadow.fit_seconds = max(shadow.fit_seconds - rate * q_rows, 0.1 * shadow.fit_seconds)
        shadow.fit_cpu_seconds = max(shadow.fit_cpu_seconds - rate_cpu * q_rows, 0.1 * shadow.fit_cpu_seconds)
        timing.fits["target"] = timing.fits["shadow"] = [target, shadow]
        timing.basis = (f"from the target's fit: {_secs(_cost(target))} on {target.rows:,} rows, query "
                        f"{_secs(_query_cost(target))} on {target.query_rows:,} rows; the shadow model's: "
                        f"{_secs(_cost(shadow))} on {shadow.rows:,} rows")
    elif shadow is not None:
        timing.fits["shadow"] = [shadow]
        timing.fits["target"] = [target] if target is not None else [shadow]
        timing.basis = (f"from the shadow model's fit: {_secs(_cost(shadow))} on {shadow.rows:,} rows"
                        + (f"; the target's: {_secs(_cost(target))} on {target.rows:,} rows" if target else ""))
    elif target is not None:
        timing.fits["target"] = timing.fits["shadow"] = [target]
        timing.basis = (f"from the target's fit: {_secs(_cost(target))} on {target.rows:,} rows, "
                        f"query {_secs(_query_cost(target))} on {target.query_rows:,} rows")
    return timing


# ---- the estimate ------------------------------------------------------------------------------


def _cost(p: FitTime) -> float:
    """A fit's cost: its CPU time (the process's), which is what it takes on one idle core, as
    reference fits run, one thread each: a fit slowed by other processes counts only its own
    work, a multi-threaded one (the run's own target fit) the work of all its threads. Wall
    time when no CPU time was measured."""
    return p.fit_cpu_seconds if p.fit_cpu_seconds > 0 else p.fit_seconds


def _query_cost(p: FitTime) -> float:
    """A query's cost, like :func:`_cost`."""
    return p.query_cpu_seconds if p.query_cpu_seconds > 0 else p.query_seconds


def fit_seconds(points: list[FitTime], rows: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one fit on ``rows`` rows from the timed fits of the same recipe:
    one size, in proportion to rows; two or more, along the power law through the two sizes
    around ``rows`` (beyond them, from the nearer one, the exponent kept within [0.5, 2]). Two
    sizes whose times no plausible law joins (an exponent outside [0, 2.5]: one fit was slowed,
    e.g. by its own threads competing with other processes) leave the one cheaper per row."""
    import math

    pts = sorted({p.rows: p for p in points if p.rows > 0}.values(), key=lambda p: p.rows)
    if len(pts) > 1:
        i = next((j for j in range(len(pts) - 1) if rows <= pts[j + 1].rows), len(pts) - 2)
        a, b = pts[i], pts[i + 1]
        alpha = (math.log(_cost(b) / _cost(a)) / math.log(b.rows / a.rows) if _cost(a) > 0 and _cost(b) > 0
                 else float("nan"))
        if 0.0 <= alpha <= 2.5:
            if not a.rows <= rows <= b.rows:
                alpha = min(max(alpha, 0.5), 2.0)
            base = b if rows > b.rows else a
            scale = (rows / base.rows) ** alpha
            return _cost(base) * scale, base.fit_cpu_seconds * scale
        pts = [min((a, b), key=lambda p: _cost(p) / p.rows)]
    p = pts[0]
    return _cost(p) * rows / p.rows, p.fit_cpu_seconds * rows / p.rows


def _stage_seconds(stage: Stage, points: list[FitTime], overhead: float = 0.0) -> tuple[float, float]:
    """(wall, CPU) seconds of a stage from timed fits (:func:`fit_seconds`), the query time in
    proportion to query rows, plus ``overhead`` per fit; fits divided among the workers (see
    :func:`speedup`); process workers' start-up added once."""
    fit, fit_cpu = fit_seconds(points, stage.train_rows)
    queried = max(points, key=lambda p: p.query_rows)
    q = _query_cost(queried)
    rate = q / queried.query_rows if queried.query_rows else 0.0
    rate_cpu = queried.query_cpu_seconds / queried.query_rows if queried.query_rows else 0.0
    query, query_cpu = rate * stage.query_rows, rate_cpu * stage.query_rows
    n = stage.fits
    cpu = n * (fit_cpu + query_cpu + overhead)
    wall = n * (fit + query + overhead) / speedup(stage)
    if stage.backend in ("loky", "multiprocessing") and (stage.workers or 1) > 1 and n > 1:
        wall += PROCESS_STARTUP_SECONDS
    return wall, cpu


def speedup(stage: Stage) -> float:
    """How much faster a stage's workers get through its fits than one would. Processes (loky,
    multiprocessing) and Ray tasks: one fit per worker at a time. Threads share one interpreter:
    libsvm/liblinear fits take turns (their random numbers, see ``models.fit_model``) and the
    rest holds the GIL for much of a small fit, so threads count as one worker (measured on 2
    cores: 1.0-1.1x for SVC, random forests and logistic regression; estimators that release
    the GIL throughout, e.g. histogram gradient boosting, do finish sooner). A Ray cluster of
    unknown size: 1 (the stage's time is then CPU time)."""
    w = stage.workers or 1
    return 1.0 if stage.backend == "threading" else float(w)


def estimate(work: Work, timing: Timing) -> float:
    """Fill in every stage's seconds from ``timing``; returns the total (stages without a
    timed fit, e.g. the worst case in a normal run, count as 0 and stay None)."""
    total = 0.0
    for stage in work.stages:
        t = timing.fits.get(stage.recipe)
        if stage.fits == 0:
            stage.seconds = stage.cpu_seconds = 0.0
        elif t is None:
            stage.seconds = stage.cpu_seconds = None
        else:
            overhead = (timing.reference_overhead if "reference_" in stage.key
                        else timing.trial_overhead if stage.key == "game_trials" else 0.0)
            stage.seconds, stage.cpu_seconds = _stage_seconds(stage, t, overhead)
        total += stage.seconds or 0.0
    return total


def unknown_cluster(work: Work) -> bool:
    return any(s.workers is None and s.fits for s in work.stages)


# ---- what people and tools read --------------------------------------------------------------


def _secs(seconds: float | None) -> str:
    """0.012 s -> 12ms, 3.4 -> 3.4s, 190 -> 3m10s, 7300 -> 2h02m."""

    if seconds is None:
        return "?"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return duration(seconds)


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_plan(work: Work, timing: Timing | None, total: float | None, header: str = "",
                extra: list[tuple[str, str]] | tuple = ()) -> str:
    """The plan as readable lines: what is fitted and queried per stage with its rows, workers
    and time, the data's sizes, the memory estimate, the total; ``extra`` (label, text) rows last."""
    s = work.sizes
    lines = [header] if header else []
    rows: list[tuple[str, str]] = []
    at_most = "up to " if s.get("audit_note") else ""
    data = (f"{s['target_rows']:,} target training rows, {s['attacker_rows']:,} attacker rows "
            f"({s['shadow_train_rows']:,} shadow-train / {s['shadow_test_rows']:,} shadow-test)")
    if s.get("audit_nonmembers"):
        data += (f", {at_most}{s['audit_nonmembers_scored']:,} audit non-members scored"
                 + (f" (of {s['audit_nonmembers']:,} drawn)" if s["audit_nonmembers_scored"] != s["audit_nonmembers"]
                    else ""))
    rows.append(("data", data))
    for stage in work.stages:
        if stage.fits == 0 and stage.key != "target":
            continue
        if stage.fits == 0:
            rows.append((stage.key, f"{stage.what}: {stage.note}"))
            continue
        if stage.backend == "serial":
            workers = ""
        elif not stage.workers:
            workers = f", {stage.backend} (cluster CPUs unknown)"
        else:
            threads = stage.backend == "threading" and stage.workers > 1
            workers = (f", {stage.workers} threads (counted as one)" if threads
                       else f", {stage.backend} x{stage.workers}")
        text = (f"{stage.fits:,} fit{'s' if stage.fits != 1 else ''} of {stage.what} on {stage.train_rows:,} rows"
                f"{' each' if stage.fits > 1 else ''}, queried on {stage.query_rows:,} rows{workers}")
        when = _secs(stage.seconds) if stage.seconds is not None else "not timed"
        rows.append((stage.key, f"{text}  ~ {when}" + (f"  ({stage.note})" if stage.note else "")))
    mem_total = sum(b for _, _, b in work.memory)
    parts = "; ".join(f"{what} {_bytes(b)}" for _, what, b in work.memory)
    rows.append(("memory", f"about {_bytes(mem_total)} ({parts}); {_bytes(work.memory_available)} available"
                 if work.memory_available is not None else f"about {_bytes(mem_total)} ({parts})"))
    for name, w in work.workers.items():
        rows.append((f"workers {name}", str(w["where"])))
    if total is not None:
        unit = (" of CPU time fitting (the Ray cluster's size is unknown: divide its stages by its CPUs)"
                if unknown_cluster(work) else " of fitting")
        untimed = [st.key for st in work.stages if st.fits and st.seconds is None]
        rows.append(("time", f"~ {_secs(total)}{unit}, {work.fits:,} fits in all"
                     + (f" ({', '.join(untimed)} not timed)" if untimed else "")))
        if timing is not None:
            rows.append(("estimate", f"{timing.basis}. An estimate from one timed fit per kind of model and "
                                     "size, scaled to each stage's rows, threads counted as one worker; start-up, "
                                     "drawing, scoring, plots, report and tracking not included"))
    rows += list(extra)
    width = max(len(k) for k, _ in rows) + 2
    lines += [f"  {k:<{width}}{v}" for k, v in rows]
    return "\n".join(lines)


def estimate_line(work: Work, timing: Timing, total: float) -> str:
    """One line for a normal run's log: "cost estimate: 64 reference models x 2 pools ~ 3m10s
    on 2 workers, game 100 trials ~ 40s; total ~ 4m (from the target's fit: ...)"."""
    parts = []
    refs = [s for s in work.stages if s.key.startswith("reference_")]
    if refs:
        secs = sum(s.seconds or 0.0 for s in refs)
        pools = f" x {len(refs)} pools" if len(refs) > 1 else ""
        w, backend = refs[0].workers, refs[0].backend
        on = (f"on {w} {'thread' if backend == 'threading' else 'worker'}{'s' if w != 1 else ''}" if w
              else "on the Ray cluster (CPU-seconds)")
        parts.append(f"{refs[0].fits} reference models{pools} ~ {_secs(secs)} {on}"
                     + (" unless cached" if "reference.cache" in refs[0].note else ""))
    for s in work.stages:
        if s.recipe.startswith("worst_case:") and s.fits:
            parts.append(f"{s.recipe.split(':', 1)[1]} {s.fits} fits "
                         + (f"~ {_secs(s.seconds)}" if s.seconds is not None else "not timed"))
    game = [s for s in work.stages if s.key.startswith("game_")]
    if game:
        trials = work.stage("game_trials")
        parts.append(f"game {trials.fits} trials ~ {_secs(sum(s.seconds or 0.0 for s in game))}")
    if not parts:
        parts.append(f"{work.fits} fit{'s' if work.fits != 1 else ''}")
    return f"cost estimate: {', '.join(parts)}; total ~ {_secs(total)} ({timing.basis})"


def plan_document(work: Work, timing: Timing | None, total: float | None, **extra: Any) -> dict[str, Any]:
    """plan.json: stages, fits, sizes, memory in bytes, seconds (machine-readable)."""
    mem_total = sum(b for _, _, b in work.memory)
    return {
        "schema": PLAN_SCHEMA,
        **extra,
        "stages": [asdict(s) for s in work.stages],
        "fits": work.fits,
        "sizes": work.sizes,
        "workers": work.workers,
        "memory": {"parts": [{"key": k, "what": w, "bytes": int(b)} for k, w, b in work.memory],
                   "total_bytes": int(mem_total), "available_bytes": work.memory_available},
        "timing": None if timing is None else {"basis": timing.basis,
                                               "fits": {k: [asdict(p) for p in v]
                                                        for k, v in timing.fits.items()}},
        "estimated_seconds": total,
        "seconds_are": ("CPU-seconds: the Ray cluster's size is unknown until it is joined" if unknown_cluster(work)
                        else "estimated wall-clock seconds of fitting on an otherwise idle machine (start-up, "
                             "drawing, scoring, plots, report and tracking not included)"),
    }


def cost_summary(work: Work, timing: Timing, total: float) -> dict[str, Any]:
    """cost.json's estimate (the run adds what it measured beside it)."""
    return {"estimated_seconds": total,
            "estimated": {s.key: s.seconds for s in work.stages if s.fits},
            "estimate_basis": timing.basis}
