"""One membership-inference scenario, end to end, as plain computation.

:func:`run_scenario` takes the resolved config (a plain mapping), validates all of it before
drawing anything, and returns a :class:`ScenarioResult`. It knows nothing of Hydra, MLflow or
files; :mod:`mia_engine.app` wires it to those.

The steps follow the tutorial notebook:

1. Draw the target's training data from the population, append the individual (if a member).
2. Fit the target model; query it with the individual's record (and any probe records).
3. Draw the attacker's shadow data, split it, fit the shadow model on one half.
4. Fit the attack classifier on the shadow model's confidences: train half = members,
   other half = non-members; score the individual's confidence.
5. Audit (beyond the notebook): score every training row and as many fresh population rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

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
    membership_probability: float | None = None
    predicted_member: bool | None = None


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
    audit: AttackMetrics | None
    audit_member_scores: np.ndarray | None
    audit_nonmember_scores: np.ndarray | None
    datasets: dict[str, Dataset] = field(repr=False)
    models: dict[str, Any] = field(repr=False)

    @property
    def shadow_train_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_train_confidences))

    @property
    def shadow_test_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_test_confidences))

    def summary(self) -> dict[str, Any]:
        """Plain-Python numbers for summary.json and the tracker (no numpy scalars)."""
        out: dict[str, Any] = {"population": self.population, "labels": [int(v) for v in self.labels]}
        if self.target_record is not None:
            r = self.target_record
            out["target_record"] = {
                "name": r.name,
                "probabilities": r.probabilities,
                "max_confidence": r.max_confidence,
                "membership_probability": r.membership_probability,
                "predicted_member": r.predicted_member,
                "is_member": r.is_member,
                "correct": None if r.is_member is None else r.predicted_member == r.is_member,
            }
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
        if self.audit is not None:
            a = self.audit
            out["attack"] = {
                "auc": a.auc,
                **{f"tpr_at_fpr_{_level(k)}": v for k, v in a.tpr_at_fpr.items()},
                "advantage": a.advantage,
                "accuracy": a.accuracy,
                "n_members": a.n_members,
                "n_nonmembers": a.n_nonmembers,
            }
        out["target"] = {"train_accuracy": self.target_train_accuracy, "test_accuracy": self.target_test_accuracy}
        return out


def _level(x: float) -> str:
    return f"{float(x):g}"


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
    audit_enabled: bool
    n_nonmembers: int | None
    fpr_levels: tuple[float, ...]

    def build_estimators(self):
        """Fresh, unfitted (target model, shadow model, attack), each seeded from the config."""
        from .attack import build_attack
        from .models import build_estimator, random_state_from, require_probabilities

        target_rs = random_state_from(self.model_node)
        target_model = build_estimator(self.model_node, "model", random_state=target_rs)
        # The notebook's mitigation cell handed one RandomState object to both fits.
        reuse = self.shadow.get("reuse_target_random_state")
        shadow_rs = target_rs if reuse else random_state_from(self.shadow_node)
        shadow_model = build_estimator(self.shadow_node, self.shadow_key, random_state=shadow_rs)
        require_probabilities(target_model, "model")
        require_probabilities(shadow_model, self.shadow_key)
        return target_model, shadow_model, build_attack(self.attack_node, "attack")


def prepare_scenario(cfg: Mapping[str, Any]) -> ScenarioPlan:
    """Validate a resolved config (``data``, ``model``, ``shadow``, ``attack``, ``audit``).

    Raises :class:`ConfigError` naming the first bad key; draws and fits nothing.
    """
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

    audit_cfg = cfg.get("audit") or {"enabled": False}
    fpr_levels = tuple(float(v) for v in (audit_cfg.get("fpr_levels") or ()))
    for i, level in enumerate(fpr_levels):
        if not 0.0 < level <= 1.0:
            raise ConfigError(f"audit.fpr_levels.{i}", f"an FPR level must lie in (0, 1], got {level}")
    n_nonmembers = audit_cfg.get("n_nonmembers")
    if n_nonmembers is not None and n_nonmembers < 1:
        raise ConfigError("audit.n_nonmembers", f"must be at least 1 (or null), got {n_nonmembers}")
    plan = ScenarioPlan(pop, shadow_pop, shadow_sizes, shadow, shadow_key, model_node, shadow_node, attack_node,
                        bool(audit_cfg.get("enabled")), n_nonmembers, fpr_levels)
    plan.build_estimators()  # validates the models' and the attack's parameters
    return plan


def run_scenario(cfg: Mapping[str, Any]) -> ScenarioResult:
    """Validate and run the scenario a resolved config describes."""
    return execute_scenario(prepare_scenario(cfg))


def execute_scenario(plan: ScenarioPlan) -> ScenarioResult:
    """Draw the data, fit fresh models, run the attack and the audit (same plan, same numbers)."""
    from .models import fit_model

    pop, shadow = plan.population, plan.shadow
    target_model, shadow_model, attack = plan.build_estimators()

    # ---- the target's training data -------------------------------------------------------
    sampler = pop.make_sampler()
    tgt: Sample = sampler.draw("target", {c.name: c.size for c in pop.classes})
    X_target, y_target = tgt.X, tgt.y
    rec = pop.target_record
    if rec is not None and rec.member:
        X_target = np.vstack([X_target, np.asarray(rec.values, dtype=float)[None, :]])
        y_target = np.append(y_target, rec.label)

    # ---- the attacker's shadow data (continues the population's stream when shared) --------
    shadow_sampler = sampler if plan.shadow_population is pop else plan.shadow_population.make_sampler()
    shd = shadow_sampler.draw("shadow", plan.shadow_sizes)
    Xs_train, Xs_test, ys_train, ys_test = _split(shd.X, shd.y, shadow)

    # ---- fresh non-members for the audit (after the shadow data on a shared stream) -------
    fresh: Sample | None = None
    if plan.audit_enabled:
        counts = {c.name: int(np.sum(y_target == c.label)) for c in pop.classes}
        sizes = counts if plan.n_nonmembers is None else _allocate(plan.n_nonmembers, counts)
        fresh = sampler.draw("audit", sizes)

    # ---- fits and queries -------------------------------------------------------------------
    fit_model(target_model, X_target, y_target, "model")
    record_result = None
    if rec is not None:
        record_result = _record_result(rec, target_model.predict_proba(np.asarray([rec.values]))[0])
    probes = [_record_result(p, target_model.predict_proba(np.asarray([p.values]))[0])
              for p in pop.probe_records]

    fit_model(shadow_model, Xs_train, ys_train, plan.shadow_key)
    p_train = shadow_model.predict_proba(Xs_train)
    p_test = shadow_model.predict_proba(Xs_test)
    attack.fit(p_train, p_test)

    if record_result is not None:
        m = float(attack.membership_probability(np.asarray([record_result.probabilities]))[0])
        record_result.membership_probability = m
        record_result.predicted_member = bool(m >= attack.threshold)

    audit = member_scores = nonmember_scores = None
    test_accuracy = None
    if fresh is not None:
        member_scores = attack.membership_probability(target_model.predict_proba(X_target))
        nonmember_scores = attack.membership_probability(target_model.predict_proba(fresh.X))
        audit = attack_metrics(member_scores, nonmember_scores, attack.threshold, plan.fpr_levels)
        test_accuracy = float(target_model.score(fresh.X, fresh.y))

    discrete = tuple(pop.discrete(f) for f in pop.feature_names)
    datasets = {
        "target_train": Dataset(X_target, y_target, pop.feature_names, discrete),
        "shadow_train": Dataset(Xs_train, ys_train, pop.feature_names, discrete),
        "shadow_test": Dataset(Xs_test, ys_test, pop.feature_names, discrete),
    }
    if fresh is not None:
        datasets["audit_nonmembers"] = Dataset(fresh.X, fresh.y, pop.feature_names, discrete)

    return ScenarioResult(
        population=pop.name,
        labels=pop.labels,
        target_record=record_result,
        probe_records=probes,
        shadow_train_confidences=p_train.max(axis=1),
        shadow_test_confidences=p_test.max(axis=1),
        target_train_accuracy=float(target_model.score(X_target, y_target)),
        target_test_accuracy=test_accuracy,
        shadow_train_accuracy=float(shadow_model.score(Xs_train, ys_train)),
        shadow_test_accuracy=float(shadow_model.score(Xs_test, ys_test)),
        audit=audit,
        audit_member_scores=member_scores,
        audit_nonmember_scores=nonmember_scores,
        datasets=datasets,
        models={"target": target_model, "shadow": shadow_model, "attack": attack},
    )
