"""The tutorial's attack: a classifier on the shadow model's confidences, member vs not."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .errors import ConfigError

ATTACK_FEATURES = ("max_probability",)


def attack_features(probabilities: np.ndarray, feature: str) -> np.ndarray:
    """Turn a model's class probabilities into the attack's input, one row per record."""
    if feature == "max_probability":
        return probabilities.max(axis=1)[:, None]
    raise ValueError(f"unknown attack feature {feature!r}")


class ShadowConfidenceAttack:
    """Learn member vs non-member from a shadow model's confidences; score target confidences.

    Follows scikit-learn's conventions: ``__init__`` stores, ``fit`` learns (state ends in ``_``).
    ``classifier`` is an unfitted scikit-learn classifier.
    """

    def __init__(self, classifier, feature: str = "max_probability", threshold: float = 0.5):
        self.classifier = classifier
        self.feature = feature
        self.threshold = threshold

    def fit(self, member_probabilities: np.ndarray, nonmember_probabilities: np.ndarray):
        Xm = attack_features(member_probabilities, self.feature)
        Xn = attack_features(nonmember_probabilities, self.feature)
        # The notebook's stacking order: members first, then non-members.
        X = np.vstack((Xm, Xn))
        y = np.hstack((np.ones(len(Xm)), np.zeros(len(Xn))))
        self.classifier_ = self.classifier.fit(X, y)
        self.member_column_ = int(np.flatnonzero(self.classifier_.classes_ == 1.0)[0])
        return self

    def membership_probability(self, probabilities: np.ndarray) -> np.ndarray:
        """The attack's probability that each record (given its target probabilities) is a member."""
        X = attack_features(probabilities, self.feature)
        return self.classifier_.predict_proba(X)[:, self.member_column_]


def build_attack(node: Mapping[str, Any], key: str = "attack") -> ShadowConfidenceAttack:
    from .models import build_estimator

    if node.get("name") != "shadow_lr":
        raise ConfigError(f"{key}.name", f"unknown attack {node.get('name')!r}; available: shadow_lr")
    feature = node.get("feature")
    if feature not in ATTACK_FEATURES:
        raise ConfigError(f"{key}.feature", f"unknown attack feature {feature!r}; available: {', '.join(ATTACK_FEATURES)}")
    threshold = node.get("threshold")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{key}.threshold", f"a probability threshold must lie in [0, 1], got {threshold}")
    clf = build_estimator(node.get("classifier"), f"{key}.classifier")
    if not hasattr(clf, "predict_proba"):
        raise ConfigError(f"{key}.classifier", f"{type(clf).__name__} gives no probabilities (predict_proba)")
    return ShadowConfidenceAttack(clf, feature=feature, threshold=threshold)
