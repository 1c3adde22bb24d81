"""One membership-inference scenario, end to end, as plain computation.

:func:`run_scenario` takes the resolved config (a plain mapping), validates all of it before
drawing anything, and returns a :class:`ScenarioResult`. It knows nothing of Hydra, MLflow or
files; :mod:`mia_engine.app` wires it to those.

The steps follow the tutorial notebook:

1. Draw the target's training data from the population, append the individual (if a member).
2. Fit the target model; query it with the individual's record (and any probe records).
3. Draw the attacker's shadow data, split it, fit the shadow model(s) on one half.
4. Fit the attack(s) on what the attacker knows (shadow models; reference models trained on
   random halves of the attacker's pool, shared by every attack); score the individual.
5. Audit (beyond the notebook): score every training row and as many fresh population rows,
   with every attack, and summarise each with the same leakage metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import ReferenceConfig
from .errors import ConfigError
from .metrics import AttackMetrics, attack_metrics
from .population import Population, Record, Sample, parse_population


@dataclass
class Dataset:
    """Rows with labels, with the population's feature names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    discrete: tuple[bool, ...]


@dataclass
class RecordResult:
    name: str
    label: int | None
    is_member: bool | None
    probabilities: list[float]
    max_confidence: float
    # attack name -> (score, predicted member)
    attack_scores: dict[str, tuple[float, bool]] = field(default_factory=dict)
    verdict_attack: str | None = None      # whose call is "the" verdict: the strongest attack
    verdict_is_probability: bool = False

    @property
    def score(self) -> float | None:
        return self.attack_scores[self.verdict_attack][0] if self.verdict_attack else None

    @property
    def predicted_member(self) -> bool | None:
        return self.attack_scores[self.verdict_attack][1] if self.verdict_attack else None

    @property
    def membership_probability(self) -> float | None:
        """The verdict attack's score when it is a probability (shadow_lr, worst_case)."""
        return self.score if self.verdict_is_probability else None


@dataclass
class AttackResult:
    """One attack's outcome: its audit metrics and raw scores, and its call on the individual."""

    name: str
    kind: str
    score_label: str
    score_is_probability: bool
    threshold: float
    metrics: AttackMetrics | None
    member_scores: np.ndarray | None = field(default=None, repr=False)
    nonmember_scores: np.ndarray | None = field(default=None, repr=False)
    reference_models: int = 0


@dataclass
class ScenarioResult:
    population: str
    labels: tuple[int, ...]
    target_record: RecordResult | None
    probe_records: list[RecordResult]
    shadow_train_confidences: np.ndarray
    shadow_test_confidences: np.ndarray
    target_train_accuracy: float
    target_test_accuracy: float | None
    shadow_train_accuracy: float
    shadow_test_accuracy: float
    attacks: dict[str, AttackResult]
    verdict_attack: str                    # the strongest attack (or the only one)
    reference: dict[str, Any] | None
    datasets: dict[str, Dataset] = field(repr=False)
    models: dict[str, Any] = field(repr=False)

    @property
    def audit(self) -> AttackMetrics | None:
        """The strongest attack's audit metrics."""
        return self.attacks[self.verdict_attack].metrics

    @property
    def shadow_train_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_train_confidences))

    @property
    def shadow_test_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_test_confidences))

    def summary(self) -> dict[str, Any]:
        """Plain-Python numbers for summary.json and the tracker (no numpy scalars)."""
        out: dict[str, Any] = {"population": self.population, "labels": [int(v) for v in self.labels]}
        verdict = self.attacks[self.verdict_attack]
        if self.target_record is not None:
            r = self.target_record
            out["target_record"] = {
                "name": r.name,
                "probabilities": r.probabilities,
                "max_confidence": r.max_confidence,
                "attack": r.verdict_attack,
                "score": r.score,
                "membership_probability": r.membership_probability,
                "predicted_member": r.predicted_member,
                "is_member": r.is_member,
                "correct": None if r.is_member is None else r.predicted_member == r.is_member,
            }
            if len(self.attacks) > 1:
                out["target_record"]["attacks"] = {
                    name: {"score": sc, "predicted_member": pm,
                           "correct": None if r.is_member is None else pm == r.is_member}
                    for name, (sc, pm) in r.attack_scores.items()}
        if self.probe_records:
            out["probe_records"] = {p.name: {"probabilities": p.probabilities, "max_confidence": p.max_confidence}
                                    for p in self.probe_records}
        out["shadow"] = {
            "train_mean_confidence": self.shadow_train_mean_confidence,
            "test_mean_confidence": self.shadow_test_mean_confidence,
            "train_accuracy": self.shadow_train_accuracy,
            "test_accuracy": self.shadow_test_accuracy,
            "n_train": int(len(self.shadow_train_confidences)),
            "n_test": int(len(self.shadow_test_confidences)),
        }
        if verdict.metrics is not None:
            out["attack"] = {"name": self.verdict_attack, **verdict.metrics.summary(),
                             "reference_models": verdict.reference_models}
        out["attacks"] = {
            name: {"kind": a.kind, "threshold": a.threshold,
                   **(a.metrics.summary() if a.metrics is not None else {}), "reference_models": a.reference_models}
            for name, a in self.attacks.items()}
        if self.reference is not None:
            out["reference"] = dict(self.reference)
        out["target"] = {"train_accuracy": self.target_train_accuracy, "test_accuracy": self.target_test_accuracy}
        return out


# ---------------------------------------------------------------------------------------------


def _sizes(pop: Population, per_class: int | None, sizes: Mapping[str, int] | None, key: str) -> dict[str, int]:
    out = {c.name: c.size if per_class is None else per_class for c in pop.classes}
    for name, n in (sizes or {}).items():
        if name not in out:
            raise ConfigError(f"{key}.sizes.{name}", f"no class {name!r} in the population; classes are {', '.join(out)}")
        out[name] = n
    for name, n in out.items():
        if n is None or n < 1:
            k = f"{key}.sizes.{name}" if sizes and name in sizes else f"{key}.size_per_class"
            raise ConfigError(k, f"each class needs at least one shadow row, got {n} for {name!r}")
    return out


def _allocate(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` rows across classes in proportion to ``weights`` (largest remainder)."""
    w = np.array(list(weights.values()), dtype=float)
    raw = total * w / w.sum()
    n = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - n), kind="stable")[: total - n.sum()]:
        n[i] += 1
    return dict(zip(weights.keys(), (int(v) for v in n)))


def _record_result(rec: Record, probs: np.ndarray) -> RecordResult:
    return RecordResult(
        name=rec.name,
        label=rec.label,
        is_member=rec.member,
        probabilities=[float(p) for p in probs],
        max_confidence=float(np.max(probs)),
    )


def _split(X: np.ndarray, y: np.ndarray, shadow: Mapping[str, Any]):
    """The notebook's ``train_test_split``; every class must land in both halves.

    The notebook split with the global NumPy generator seeded once; a fresh
    ``RandomState(split_seed)`` gives the same permutation without touching global state.
    """
    from sklearn.model_selection import train_test_split

    try:
        parts = train_test_split(X, y, test_size=shadow["test_size"],
                                 random_state=np.random.RandomState(shadow["split_seed"]),
                                 stratify=y if shadow["stratify"] else None)
    except ValueError as e:
        raise ConfigError("shadow.test_size", f"cannot split the shadow data: {e}") from None
    labels = set(int(v) for v in np.unique(y))
    for part, y_part in (("train", parts[2]), ("test", parts[3])):
        missing = sorted(labels - set(int(v) for v in np.unique(y_part)))
        if missing:
            raise ConfigError(
                "shadow.test_size",
                f"the split (test_size={shadow['test_size']}, split_seed={shadow['split_seed']}, "
                f"stratify={shadow['stratify']}) leaves class label(s) {missing} out of the shadow {part} half",
            )
    return parts


def _derived_seed(seed: int, index: int) -> int:
    """A seed for the index-th copy of something seeded by ``seed`` (index 0 keeps ``seed``)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclass
class ScenarioPlan:
    """A validated scenario, ready to run: everything built, nothing drawn or fitted yet."""

    population: Population
    shadow_population: Population
    shadow_sizes: dict[str, int]
    shadow: Mapping[str, Any]
    shadow_key: str
    model_node: Mapping[str, Any]
    shadow_node: Mapping[str, Any]
    attack_node: Mapping[str, Any]
    reference_node: Mapping[str, Any]
    audit_enabled: bool
    n_nonmembers: int | None
    fpr_levels: tuple[float, ...]
    base_rate: float | None
    cache_dir: Path | None = None
    population_config: Mapping[str, Any] | None = None

    def build_estimators(self):
        """Fresh, unfitted (target model, shadow model, attacks), each seeded from the config."""
        from .attacks import build_attacks
        from .models import build_estimator, random_state_from, require_probabilities

        target_rs = random_state_from(self.model_node)
        target_model = build_estimator(self.model_node, "model", random_state=target_rs)
        # The notebook's mitigation cell handed one RandomState object to both fits.
        reuse = self.shadow.get("reuse_target_random_state")
        shadow_rs = target_rs if reuse else random_state_from(self.shadow_node)
        shadow_model = build_estimator(self.shadow_node, self.shadow_key, random_state=shadow_rs)
        attacks = build_attacks(self.attack_node, "attack")
        needs = ", ".join(attacks)
        require_probabilities(target_model, "model", needs)
        require_probabilities(shadow_model, self.shadow_key, needs)
        return target_model, shadow_model, attacks

    def extra_shadow_model(self, index: int):
        """Shadow model ``index`` >= 1 (k shadow models): the shadow config, its seed derived."""
        from .models import build_estimator

        seed = self.shadow_node.get("random_state")
        rs = None if seed is None else np.random.RandomState(_derived_seed(int(seed), index))
        return build_estimator(self.shadow_node, self.shadow_key, random_state=rs)


def _reference_checks(plan: ScenarioPlan, attacks, target_counts: dict[int, int], audit_counts: dict[int, int],
                      record_extra: int | None) -> None:
    """Reference settings an attack set cannot run with, caught before anything is drawn."""
    ref = plan.reference_node
    users = [a for a in attacks.values() if a.needs_reference]
    if not users:
        return
    from .reference import max_distinct_halves

    n = ref["n_models"]
    online = [a.name for a in users if a.online]
    minimum = 4 if online else 2
    if n < minimum:
        why = (f"online attack(s) {', '.join(online)} need at least 2 IN and 2 OUT models per record"
               if online else "offline attacks need at least 2 OUT models per record")
        raise ConfigError("reference.n_models", f"must be at least {minimum}, got {n}: {why}")
    if online and not ref["include_candidates"]:
        raise ConfigError("reference.include_candidates",
                          f"online attack(s) {', '.join(online)} need reference models trained on the scored records; "
                          f"set it true or use offline attacks (e.g. attack=[lira_offline,rmia_offline])")
    check_workers(ref, "reference")
    if ref.get("pool_population") not in ("auto", "always", "never"):
        raise ConfigError("reference.pool_population", f"unknown choice {ref.get('pool_population')!r}; available: "
                                                       "auto, always, never")
    if ref.get("pool_population") == "never" and not ref["include_candidates"]:
        raise ConfigError("reference.pool_population", "never leaves the pool empty without the scored records "
                                                       "(reference.include_candidates=false)")
    cand = dict(target_counts) if audit_counts else {}
    for label, k in audit_counts.items():
        cand[label] = cand.get(label, 0) + k
    if record_extra is not None:
        cand[record_extra] = cand.get(record_extra, 0) + 1
    counts: dict[int, int] = {}
    if population_in_pool(ref, sum(cand.values()), sum(target_counts.values())):
        counts = {c.label: plan.shadow_sizes[c.name] for c in plan.shadow_population.classes}
    if ref["include_candidates"]:
        for label, k in cand.items():
            counts[label] = counts.get(label, 0) + k
    allowed = max_distinct_halves(list(counts.values()))
    if n > allowed:
        raise ConfigError("reference.n_models", f"{n} reference models, but the pool of {sum(counts.values())} rows "
                                                f"allows only {allowed} distinct halves")


def prepare_scenario(cfg: Mapping[str, Any], launch_dir: Path | None = None) -> ScenarioPlan:
    """Validate a resolved config (``data``, ``model``, ``shadow``, ``attack``, ``reference``,
    ``audit``). Raises :class:`ConfigError` naming the first bad key; draws and fits nothing.
    ``launch_dir`` roots the default reference-model cache (none without it)."""
    pop = parse_population(cfg["data"], "data")
    shadow = cfg["shadow"]
    if not 0.0 < shadow["test_size"] < 1.0:
        raise ConfigError("shadow.test_size", f"must lie strictly between 0 and 1, got {shadow['test_size']}")
    if shadow.get("population") is not None:
        shadow_pop = parse_population(shadow["population"], "shadow.population", records=False)
        if set(shadow_pop.labels) != set(pop.labels) or shadow_pop.feature_names != pop.feature_names:
            raise ConfigError(
                "shadow.population",
                f"must have the target population's features {list(pop.feature_names)} (same order) and labels "
                f"{list(pop.labels)}; got {list(shadow_pop.feature_names)} and {list(shadow_pop.labels)}",
            )
    else:
        shadow_pop = pop
    shadow_sizes = _sizes(shadow_pop, shadow.get("size_per_class"), shadow.get("sizes"), "shadow")
    # The shadow labels are known before any draw (class blocks in order), so a split that
    # leaves a class out of either half is caught here, exactly as it will happen.
    y_shadow = np.concatenate([np.full(shadow_sizes[c.name], c.label) for c in shadow_pop.classes])
    _split(np.arange(len(y_shadow)), y_shadow, shadow)

    model_node = cfg["model"]
    shadow_node, shadow_key = (
        (shadow["model"], "shadow.model") if shadow.get("model") is not None else (model_node, "model")
    )
    attack_node = cfg["attack"]
    reference_node = cfg.get("reference") or dataclasses.asdict(ReferenceConfig())

    audit_cfg = cfg.get("audit") or {"enabled": False}
    fpr_levels = tuple(float(v) for v in (audit_cfg.get("fpr_levels") or ()))
    for i, level in enumerate(fpr_levels):
        if not 0.0 < level <= 1.0:
            raise ConfigError(f"audit.fpr_levels.{i}", f"an FPR level must lie in (0, 1], got {level}")
    n_nonmembers = audit_cfg.get("n_nonmembers")
    if n_nonmembers is not None and n_nonmembers < 1:
        raise ConfigError("audit.n_nonmembers", f"must be at least 1 (or null), got {n_nonmembers}")
    base_rate = audit_cfg.get("base_rate")
    if base_rate is not None and not 0.0 < base_rate < 1.0:
        raise ConfigError("audit.base_rate", f"a share of the population must lie strictly between 0 and 1, got {base_rate}")

    cache_dir = None
    if reference_node.get("cache"):
        if reference_node.get("cache_dir"):
            cache_dir = Path(reference_node["cache_dir"]).expanduser()
            if launch_dir is not None and not cache_dir.is_absolute():
                cache_dir = Path(launch_dir) / cache_dir
        elif launch_dir is not None:
            cache_dir = Path(launch_dir) / ".mia_cache" / "reference"
    plan = ScenarioPlan(pop, shadow_pop, shadow_sizes, shadow, shadow_key, model_node, shadow_node, attack_node,
                        reference_node, bool(audit_cfg.get("enabled")), n_nonmembers, fpr_levels, base_rate,
                        cache_dir, {"data": cfg["data"], "shadow_population": shadow.get("population")})
    _, _, attacks = plan.build_estimators()  # validates the models' and the attacks' parameters

    rec = pop.target_record
    target_counts = {c.label: c.size for c in pop.classes}
    if rec is not None and rec.member:
        target_counts[rec.label] += 1
    audit_counts: dict[int, int] = {}
    if plan.audit_enabled:
        by_name = {c.name: target_counts[c.label] for c in pop.classes}
        sizes = by_name if n_nonmembers is None else _allocate(n_nonmembers, by_name)
        audit_counts = {c.label: sizes[c.name] for c in pop.classes}
    else:
        for name, a in attacks.items():
            if a.kind == "worst_case":
                raise ConfigError(f"attack.{name}", "the worst-case attack trains on the audit's members and "
                                                    "non-members; it needs audit=fresh_population")
    record_extra = rec.label if rec is not None and (not rec.member or not plan.audit_enabled) else None
    _reference_checks(plan, attacks, target_counts, audit_counts, record_extra)
    return plan


def run_scenario(cfg: Mapping[str, Any], launch_dir: Path | None = None) -> ScenarioResult:
    """Validate and run the scenario a resolved config describes."""
    return execute_scenario(prepare_scenario(cfg, launch_dir))


def _shadow_models(plan: ScenarioPlan, first_model, shd: Sample, k: int) -> list:
    """k shadow models: model 0 on the tutorial's split; model i on a split seeded from
    ``split_seed`` and i, with the shadow model's seed likewise derived."""
    from .attacks import ShadowModel
    from .models import fit_model

    out = []
    for i in range(k):
        shadow_i = dict(plan.shadow, split_seed=_derived_seed(int(plan.shadow["split_seed"]), i))
        X_in, X_out, y_in, y_out = _split(shd.X, shd.y, shadow_i)
        model = first_model if i == 0 else plan.extra_shadow_model(i)
        fit_model(model, X_in, y_in, plan.shadow_key)
        out.append(ShadowModel(model, X_in, y_in, X_out, y_out, model.predict_proba(X_in), model.predict_proba(X_out)))
    return out


def attach_reference(plan: ScenarioPlan, knowledge, candidates, shd: Sample, target_model,
                     n_target: int) -> dict[str, Any]:
    """Train (or load) the shared reference models and wire them into ``knowledge`` and
    ``candidates``. The pool holds the records being scored when ``reference.include_candidates``
    and the attacker's population rows as ``reference.pool_population`` says; everything
    else (scored records, population rows z) is queried without being trained on."""
    from .reference import train_reference_models

    ref = plan.reference_node
    X_c, y_c = candidates.X, candidates.y
    with_candidates = bool(ref["include_candidates"])
    with_population = population_in_pool(ref, len(y_c), n_target)
    # Query rows: the pool first (population rows, then candidates), then the rest.
    blocks = [("population", shd.X, shd.y, with_population), ("candidates", X_c, y_c, with_candidates)]
    order = [b for b in blocks if b[3]] + [b for b in blocks if not b[3]]
    start, where = 0, {}
    for name, X, _, _ in order:
        where[name] = start + np.arange(len(X))
        start += len(X)
    X_pool = np.vstack([X for _, X, _, inp in order if inp])
    y_pool = np.concatenate([y for _, _, y, inp in order if inp])
    rest = [X for _, X, _, inp in order if not inp]
    X_extra = np.vstack(rest) if rest else np.empty((0, shd.X.shape[1]))
    settings = {k: v for k, v in ref.items() if k not in ("n_jobs", "backend", "progress", "cache", "cache_dir")}
    reference = train_reference_models(
        dict(plan.shadow_node), plan.shadow_key, X_pool, y_pool, X_extra,
        n_models=int(ref["n_models"]), seed=int(ref["seed"]), n_jobs=int(ref["n_jobs"]),
        backend=str(ref["backend"]), cache_dir=plan.cache_dir,
        cache_parts={"reference": settings, **(plan.population_config or {})},
        progress=ref.get("progress"), keep_models=True)
    knowledge.reference = reference
    candidates.reference_index = where["candidates"]
    knowledge.population_index = where["population"]
    knowledge.population_y = shd.y
    knowledge.population_X = shd.X
    knowledge.population_target_probabilities = target_model.predict_proba(shd.X)
    return {"n_models": int(ref["n_models"]), "pool_rows": int(len(y_pool)), "population_in_pool": with_population,
            "from_cache": bool(reference.from_cache), "cache_key": reference.key}


def population_in_pool(ref: Mapping[str, Any], n_candidates: int, n_target: int) -> bool:
    """Whether the attacker's population rows join the reference pool. ``auto``: only when the
    scored records alone are fewer than twice the target's training rows, so that a half of
    the pool is about as large as the target's training set (reference models trained on
    more rows than the target are more confident on everything, which blunts online LiRA:
    at gamma=3 its mean TPR at FPR 0.01 drops from 0.70 to 0.59)."""
    mode = ref.get("pool_population", "auto")
    if not ref["include_candidates"] or mode == "always":
        return True
    if mode == "never":
        return False
    return n_candidates < 2 * n_target


def _strongest(attacks: Mapping[str, AttackResult]) -> str:
    """The attack with the highest TPR at the lowest FPR level the audit resolves, then AUC."""
    names = list(attacks)
    scored = [n for n in names if attacks[n].metrics is not None]
    if not scored:
        return names[0]
    m0 = attacks[scored[0]].metrics
    resolved = sorted(level for level in m0.tpr_at_fpr if m0.fpr_resolved[level])
    level = resolved[0] if resolved else None

    def key(n):
        m = attacks[n].metrics
        return (m.tpr_at_fpr[level] if level is not None else 0.0, m.auc)

    return max(scored, key=key)  # first listed wins a tie


def draw_target_and_shadow(plan: ScenarioPlan):
    """The scenario's first two draws: the target's training rows (the individual appended if
    a member) and the attacker's shadow data, which continues the population's stream when
    the attacker samples the true population. Returns the population's sampler (for later
    draws), X_target, y_target and the shadow sample."""
    pop = plan.population
    sampler = pop.make_sampler()
    tgt: Sample = sampler.draw("target", {c.name: c.size for c in pop.classes})
    X_target, y_target = tgt.X, tgt.y
    rec = pop.target_record
    if rec is not None and rec.member:
        X_target = np.vstack([X_target, np.asarray(rec.values, dtype=float)[None, :]])
        y_target = np.append(y_target, rec.label)
    shadow_sampler = sampler if plan.shadow_population is pop else plan.shadow_population.make_sampler()
    return sampler, X_target, y_target, shadow_sampler.draw("shadow", plan.shadow_sizes)


def check_workers(node: Mapping[str, Any], key: str) -> None:
    """joblib settings ``n_jobs`` and ``backend`` of a config node."""
    if node.get("n_jobs") == 0:
        raise ConfigError(f"{key}.n_jobs", "must be a positive number of workers or negative (-1: all cores), got 0")
    if node.get("backend") not in ("loky", "threading", "multiprocessing"):
        raise ConfigError(f"{key}.backend", f"unknown joblib backend {node.get('backend')!r}; available: loky, "
                                            "threading, multiprocessing")


def execute_scenario(plan: ScenarioPlan) -> ScenarioResult:
    """Draw the data, fit fresh models, run the attacks and the audit (same plan, same numbers)."""
    from .attacks import Candidates, Knowledge
    from .models import fit_model

    pop = plan.population
    target_model, shadow_model, attacks = plan.build_estimators()

    sampler, X_target, y_target, shd = draw_target_and_shadow(plan)
    rec = pop.target_record

    # ---- fresh non-members for the audit (after the shadow data on a shared stream) -------
    fresh: Sample | None = None
    if plan.audit_enabled:
        counts = {c.name: int(np.sum(y_target == c.label)) for c in pop.classes}
        sizes = counts if plan.n_nonmembers is None else _allocate(plan.n_nonmembers, counts)
        fresh = sampler.draw("audit", sizes)

    # ---- the target ---------------------------------------------------------------------------
    fit_model(target_model, X_target, y_target, "model")
    classes = np.asarray(target_model.classes_)
    probes = [_record_result(p, target_model.predict_proba(np.asarray([p.values]))[0])
              for p in pop.probe_records]

    # ---- the records to score: the audit's members and non-members, and the individual ------
    parts_X, parts_y, member, scored = [], [], [], []
    if fresh is not None:
        parts_X += [X_target, fresh.X]
        parts_y += [y_target, fresh.y]
        member += [np.ones(len(y_target), bool), np.zeros(len(fresh.y), bool)]
        scored += [np.ones(len(y_target) + len(fresh.y), bool)]
    record_index = None
    if rec is not None:
        if fresh is not None and rec.member:
            record_index = len(y_target) - 1  # the individual is the last training row
        else:
            record_index = sum(len(v) for v in parts_y)
            parts_X.append(np.asarray([rec.values], dtype=float))
            parts_y.append(np.asarray([rec.label]))
            member.append(np.asarray([bool(rec.member)]))
            scored.append(np.zeros(1, bool))
    has_candidates = bool(parts_y)
    if has_candidates:
        X_c, y_c = np.vstack(parts_X), np.concatenate(parts_y)
        candidates = Candidates(X_c, y_c, target_model.predict_proba(X_c), np.concatenate(member),
                                np.concatenate(scored))

    # ---- what the attacker knows --------------------------------------------------------------
    k = max([1] + [a.n_shadow_models for a in attacks.values()])
    shadows = _shadow_models(plan, shadow_model, shd, k)
    knowledge = Knowledge(classes=classes, shadow_models=shadows)
    reference_info = None
    if has_candidates and any(a.needs_reference for a in attacks.values()):
        reference_info = attach_reference(plan, knowledge, candidates, shd, target_model, len(y_target))

    # ---- every attack: learn, score the records, audit -------------------------------------------
    record_result = None
    if rec is not None:
        record_result = _record_result(rec, candidates.target_probabilities[record_index])
    results: dict[str, AttackResult] = {}
    for name, attack in attacks.items():
        attack.fit(knowledge)
        metrics = member_scores = nonmember_scores = None
        if has_candidates:
            scores = np.asarray(attack.score(candidates, knowledge), dtype=float)
            if record_result is not None:
                s = float(scores[record_index])
                record_result.attack_scores[name] = (s, bool(s >= attack.threshold_))
            if fresh is not None:
                audit_rows = candidates.scored
                member_scores = scores[audit_rows & candidates.is_member]
                nonmember_scores = scores[audit_rows & ~candidates.is_member]
                metrics = attack_metrics(member_scores, nonmember_scores, attack.threshold_, plan.fpr_levels,
                                         base_rate=plan.base_rate)
        results[name] = AttackResult(name, attack.kind, attack.score_label, attack.score_is_probability,
                                     float(attack.threshold_), metrics, member_scores, nonmember_scores,
                                     int(plan.reference_node["n_models"]) if attack.needs_reference else 0)
    verdict = _strongest(results)
    if record_result is not None:
        record_result.verdict_attack = verdict
        record_result.verdict_is_probability = results[verdict].score_is_probability

    test_accuracy = None if fresh is None else float(target_model.score(fresh.X, fresh.y))
    first = shadows[0]
    discrete = tuple(pop.discrete(f) for f in pop.feature_names)
    datasets = {
        "target_train": Dataset(X_target, y_target, pop.feature_names, discrete),
        "shadow_train": Dataset(first.X_in, first.y_in, pop.feature_names, discrete),
        "shadow_test": Dataset(first.X_out, first.y_out, pop.feature_names, discrete),
    }
    if fresh is not None:
        datasets["audit_nonmembers"] = Dataset(fresh.X, fresh.y, pop.feature_names, discrete)
    models = {"target": target_model}
    models.update({("shadow" if i == 0 else f"shadow_{i}"): s.model for i, s in enumerate(shadows)})
    models.update({f"attack_{name}": a for name, a in attacks.items()})

    return ScenarioResult(
        population=pop.name,
        labels=pop.labels,
        target_record=record_result,
        probe_records=probes,
        shadow_train_confidences=first.p_in.max(axis=1),
        shadow_test_confidences=first.p_out.max(axis=1),
        target_train_accuracy=float(target_model.score(X_target, y_target)),
        target_test_accuracy=test_accuracy,
        shadow_train_accuracy=float(first.model.score(first.X_in, first.y_in)),
        shadow_test_accuracy=float(first.model.score(first.X_out, first.y_out)),
        attacks=results,
        verdict_attack=verdict,
        reference=reference_info,
        datasets=datasets,
        models=models,
    )
