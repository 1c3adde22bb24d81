"""What a scenario produces: plain dataclasses, and the summary every reader shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..metrics import AttackMetrics


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Dataset:
    """Rows in the engine's encoding with what is needed to write them back in the data's own
    values: the features (kinds, categories), the label values, row ids (tables)."""

    X: np.ndarray
    y: np.ndarray
    features: tuple
    label_values: tuple
    labels: tuple
    ids: np.ndarray | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def discrete(self) -> tuple[bool, ...]:
        return tuple(f.discrete for f in self.features)


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
    threat_model: str = ""                 # what the attacker is assumed to hold
    upper_bound: bool = False              # trained on the audit's membership labels: no attacker's

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": self.threshold,
                **(self.metrics.summary() if self.metrics is not None else {}),
                "reference_models": self.reference_models, "threat_model": self.threat_model,
                "upper_bound": self.upper_bound}


@dataclass
class ScenarioResult:
    population: str                        # the data source's name
    labels: tuple                          # the data's label values, in probability-column order
    target_record: RecordResult | None
    probe_records: list[RecordResult]
    shadow_train_confidences: np.ndarray
    shadow_test_confidences: np.ndarray
    target_train_accuracy: float
    target_test_accuracy: float | None
    shadow_train_accuracy: float
    shadow_test_accuracy: float
    attacks: dict[str, AttackResult]
    # The strongest attack an attacker could run (None: only upper bounds were configured).
    verdict_attack: str | None
    reference: dict[str, Any] | None
    datasets: dict[str, Dataset] = field(repr=False)
    models: dict[str, Any] = field(repr=False)
    data_card: dict[str, Any] = field(default_factory=dict)
    # Every audited record's score from every attack: ids, member flags, labels, attack -> scores.
    record_scores: dict[str, Any] | None = field(default=None, repr=False)
    # The audit's size: members, non-members scored and drawn, copies of members found/dropped.
    audit_info: dict[str, Any] | None = None
    # Checks of the fitted target beyond attacks (mia_engine.checks): name -> plain summary.
    checks: dict[str, Any] = field(default_factory=dict)
    # The headline attack per slice (mia_engine.subgroups.subgroup_summary), or None.
    subgroups: dict[str, Any] | None = None
    # Wall seconds per stage (target_fit, shadow_fits, reference, attacks, scenario): the run's
    # cost as measured, for cost.json beside the estimate (mia_engine.cost). Kept out of
    # summary(): the same plan gives the same summary, whatever the machine's speed.
    timings: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    @property
    def audit(self) -> AttackMetrics | None:
        """The strongest realistic attack's audit metrics."""
        return None if self.verdict_attack is None else self.attacks[self.verdict_attack].metrics

    @property
    def upper_bound_attack(self) -> str | None:
        """The strongest attack trained on the audit's membership labels (an upper bound)."""
        return strongest(self.attacks, upper_bound=True)

    @property
    def shadow_train_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_train_confidences))

    @property
    def shadow_test_mean_confidence(self) -> float:
        return float(np.mean(self.shadow_test_confidences))

    def summary(self) -> dict[str, Any]:
        """Plain-Python numbers for summary.json and the tracker (no numpy scalars)."""
        out: dict[str, Any] = {"population": self.population, "labels": [_plain(v) for v in self.labels]}
        verdict = self.attacks[self.verdict_attack] if self.verdict_attack is not None else None
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
        if verdict is not None and verdict.metrics is not None:
            out["attack"] = {"name": self.verdict_attack, **verdict.metrics.summary(),
                             "reference_models": verdict.reference_models, "threat_model": verdict.threat_model}
        bound = self.upper_bound_attack
        if bound is not None and self.attacks[bound].metrics is not None:
            b = self.attacks[bound]
            out["upper_bound"] = {"name": bound, **b.metrics.summary(), "threat_model": b.threat_model}
        out["attacks"] = {name: a.summary() for name, a in self.attacks.items()}
        if self.reference is not None:
            out["reference"] = dict(self.reference)
        out["target"] = {"train_accuracy": self.target_train_accuracy, "test_accuracy": self.target_test_accuracy}
        if self.audit_info:
            out["audit"] = dict(self.audit_info)
        if self.checks:
            out["checks"] = dict(self.checks)
        if self.subgroups:
            out["subgroups"] = self.subgroups
        if self.data_card:
            out["data"] = self.data_card
        return out


def strongest(attacks: Mapping[str, AttackResult], upper_bound: bool = False) -> str | None:
    """Among the attacks an attacker could run (``upper_bound=True``: among those trained on the
    audit's membership labels), the one with the highest TPR at the lowest FPR level the audit
    resolves, then AUC; without an audit, the first listed. None when there is no such attack."""
    names = [n for n in attacks if attacks[n].upper_bound == upper_bound]
    if not names:
        return None
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
