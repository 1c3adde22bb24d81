"""Scores of a membership attack: members vs non-members."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AttackMetrics:
    auc: float
    tpr_at_fpr: dict[float, float]  # FPR level -> largest TPR with FPR at or below it
    advantage: float  # max over thresholds of TPR - FPR
    accuracy: float  # at the attack's decision threshold
    n_members: int
    n_nonmembers: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray,
                   threshold: float, fpr_levels=(0.01, 0.1)) -> AttackMetrics:
    """ROC summary of membership scores (higher = more likely a member)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    member_scores = np.asarray(member_scores, dtype=float)
    nonmember_scores = np.asarray(nonmember_scores, dtype=float)
    y = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
    s = np.concatenate([member_scores, nonmember_scores])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    tpr_at = {float(level): float(tpr[fpr <= level].max()) for level in fpr_levels}
    predicted = s >= threshold
    return AttackMetrics(
        auc=float(roc_auc_score(y, s)),
        tpr_at_fpr=tpr_at,
        advantage=float(np.max(tpr - fpr)),
        accuracy=float(np.mean(predicted == (y == 1))),
        n_members=len(member_scores),
        n_nonmembers=len(nonmember_scores),
        fpr=fpr,
        tpr=tpr,
    )
