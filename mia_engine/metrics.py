"""Leakage metrics of a membership attack: member scores vs non-member scores.

Scores follow one convention throughout: higher = more likely a member. Besides the ROC summary
(AUC, TPR at low FPR, advantage) the engine reports how sure that summary is (a DeLong interval
and a Mann-Whitney p-value for the AUC, a flag for FPR levels the non-member sample is too small
to resolve) and an empirical lower bound on the differential-privacy epsilon the scores imply.

scipy and scikit-learn are imported inside the functions: the package keeps start-up light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AttackMetrics:
    """What one attack reveals about membership; see :func:`attack_metrics` for the definitions."""

    auc: float
    auc_ci: tuple[float, float]  # DeLong interval at `confidence` (logit scale); NaN with a single score in a group
    auc_pvalue: float  # one-sided Mann-Whitney p-value of AUC > 0.5
    tpr_at_fpr: dict[float, float]  # FPR level -> largest TPR with FPR at or below it
    fpr_resolved: dict[float, bool]  # FPR level -> level >= 1 / n_nonmembers
    advantage: float  # max over thresholds of TPR - FPR
    threshold: float  # the attack's decision threshold (member iff score >= threshold)
    accuracy: float  # at `threshold`, as are the four below
    balanced_accuracy: float
    tpr_at_threshold: float
    fpr_at_threshold: float
    ppv: float  # precision at prior `base_rate`; NaN when nothing is called a member
    base_rate: float
    epsilon_lower_bound: float  # >= 0; Clopper-Pearson at `confidence`, best ROC threshold
    epsilon_threshold: float | None  # the score threshold achieving it (None when the bound is 0)
    confidence: float
    n_members: int
    n_nonmembers: int
    fpr: np.ndarray = field(repr=False)  # ROC points, one per distinct score plus the (0, 0) start
    tpr: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)  # thresholds[0] is +inf (nothing called a member)

    def summary(self) -> dict[str, float | int | bool | None]:
        """Plain-Python values for summary.json and the tracker; NaN becomes None.

        An FPR level the non-member sample cannot resolve gets an extra
        ``tpr_at_fpr_<level>_resolved: False`` key next to its value (absent when resolved).
        """
        out: dict[str, float | int | bool | None] = {
            "auc": _plain(self.auc),
            # An attack reliably wrong leaks as much as one as reliably right: 0.4 as 0.6.
            "auc_leakage": _plain(max(self.auc, 1.0 - self.auc)),
            "auc_ci_low": _plain(self.auc_ci[0]),
            "auc_ci_high": _plain(self.auc_ci[1]),
            "auc_pvalue": _plain(self.auc_pvalue),
        }
        for level, tpr in self.tpr_at_fpr.items():
            out[f"tpr_at_fpr_{level:g}"] = _plain(tpr)
            if not self.fpr_resolved[level]:
                out[f"tpr_at_fpr_{level:g}_resolved"] = False
        out.update({
            "advantage": _plain(self.advantage),
            "accuracy": _plain(self.accuracy),
            "balanced_accuracy": _plain(self.balanced_accuracy),
            "tpr_at_threshold": _plain(self.tpr_at_threshold),
            "fpr_at_threshold": _plain(self.fpr_at_threshold),
            "ppv": _plain(self.ppv),
            "base_rate": _plain(self.base_rate),
            "epsilon_lower_bound": _plain(self.epsilon_lower_bound),
            "n_members": int(self.n_members),
            "n_nonmembers": int(self.n_nonmembers),
        })
        return out


def _plain(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def attack_metrics(member_scores, nonmember_scores, threshold: float,
                   fpr_levels=(0.001, 0.01, 0.1), base_rate: float | None = None,
                   confidence: float = 0.95) -> AttackMetrics:
    """Leakage metrics of membership scores (higher = more likely a member).

    * ``auc`` is scikit-learn's ROC AUC (ties count half). ``auc_ci`` is a two-sided
      ``confidence`` interval from DeLong's variance estimate, built on the logit scale,
      ``expit(logit(AUC) +- z * se / (AUC * (1 - AUC)))``, so it stays inside (0, 1) and is
      asymmetric near the edges, where attacks live. When the AUC is exactly 0 or 1 (the logit
      is infinite) or the variance is 0, it falls back to the Wald interval ``AUC +- z * se``
      clipped to [0, 1] -- a single point then, since DeLong's estimate vanishes under perfect
      separation or all-tied scores. With a single member or non-member the variance cannot be
      estimated and the interval is (NaN, NaN).
    * ``auc_pvalue`` is the one-sided Mann-Whitney U test of AUC > 0.5 (scipy's default method).
    * ``tpr_at_fpr[level]`` is the largest TPR among ROC points with FPR <= level.
      ``fpr_resolved[level]`` is False when level < 1 / n_nonmembers: then only FPR 0 qualifies
      and the value is the TPR at FPR 0, reported but not a measurement at that level.
    * ``advantage`` is max(TPR - FPR) over all thresholds.
    * At the attack's own ``threshold`` (member iff score >= threshold): accuracy, balanced
      accuracy, TPR, FPR and ``ppv`` = pi*TPR / (pi*TPR + (1-pi)*FPR) with pi = ``base_rate``
      (default: the members' share of the scores); NaN when TPR and FPR are both 0.
    * ``epsilon_lower_bound``: at each ROC threshold, Clopper-Pearson intervals for TPR and FPR
      give the bound max(log(TPR_lo / FPR_hi), log(TNR_lo / FNR_hi)) with TNR_lo = 1 - FPR_hi,
      FNR_hi = 1 - TPR_lo; the result is the largest over thresholds, floored at 0. Each
      threshold's bound holds with ``confidence``, but choosing the best threshold on the same
      scores makes the maximum slightly optimistic -- the usual practice of empirical DP audits
      (Jagielski et al. 2020, Nasr et al. 2021), which tune the threshold on the audit data too.

    Raises ValueError for empty or non-finite scores, a ``base_rate`` or ``confidence`` outside
    (0, 1) and an FPR level outside (0, 1]; callers turn these into config errors.
    """
    members = _scores(member_scores, "member")
    nonmembers = _scores(nonmember_scores, "non-member")
    levels = tuple(float(v) for v in fpr_levels)
    for level in levels:
        if not 0 < level <= 1:
            raise ValueError(f"an FPR level must lie in (0, 1], got {level}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("the decision threshold is NaN")
    n_m, n_n = len(members), len(nonmembers)
    if base_rate is None:
        base_rate = n_m / (n_m + n_n)
    base_rate = float(base_rate)
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate must lie in (0, 1), got {base_rate}")

    from scipy.stats import mannwhitneyu
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

    y = np.concatenate([np.ones(n_m, dtype=int), np.zeros(n_n, dtype=int)])
    s = np.concatenate([members, nonmembers])
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    auc = float(roc_auc_score(y, s))

    predicted = (s >= threshold).astype(int)
    tpr_thr = float(np.mean(members >= threshold))
    fpr_thr = float(np.mean(nonmembers >= threshold))
    called = base_rate * tpr_thr + (1 - base_rate) * fpr_thr
    ppv = base_rate * tpr_thr / called if called > 0 else math.nan

    eps, eps_thr = _epsilon_lower_bound(members, nonmembers, thresholds, confidence)
    return AttackMetrics(
        auc=auc,
        auc_ci=_auc_interval(auc, delong_auc_variance(members, nonmembers), confidence),
        auc_pvalue=float(mannwhitneyu(members, nonmembers, alternative="greater").pvalue),
        tpr_at_fpr={level: float(tpr[fpr <= level].max()) for level in levels},  # fpr[0] == 0
        fpr_resolved={level: bool(level >= 1.0 / n_n) for level in levels},
        advantage=float(np.max(tpr - fpr)),
        threshold=threshold,
        accuracy=float(np.mean(predicted == y)),
        balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
        tpr_at_threshold=tpr_thr,
        fpr_at_threshold=fpr_thr,
        ppv=float(ppv),
        base_rate=base_rate,
        epsilon_lower_bound=eps,
        epsilon_threshold=eps_thr,
        confidence=float(confidence),
        n_members=n_m,
        n_nonmembers=n_n,
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
    )


def _scores(values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{what} scores must be one-dimensional, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"no {what} scores: the attack needs at least one member and one non-member")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} scores contain NaN or infinite values")
    return a


def delong_auc_variance(member_scores, nonmember_scores) -> float:
    """DeLong's estimate of Var(AUC); NaN when either group has fewer than two scores.

    Placement values: each member's share of non-members it outscores (ties half), V10, and
    each non-member's share of members outscoring it, V01; both average to the AUC and
    Var = s2(V10) / n_members + s2(V01) / n_nonmembers with unbiased sample variances.
    Mid-ranks give the placements in O(n log n): a member's rank among all scores minus its
    rank among members counts the non-members below it (ties half), and likewise for
    non-members.
    """
    from scipy.stats import rankdata

    x = np.asarray(member_scores, dtype=float)
    y = np.asarray(nonmember_scores, dtype=float)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return math.nan
    combined = rankdata(np.concatenate([x, y]))
    v10 = (combined[:m] - rankdata(x)) / n
    v01 = 1.0 - (combined[m:] - rankdata(y)) / m
    return float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)


def _auc_interval(auc: float, variance: float, confidence: float) -> tuple[float, float]:
    from scipy.stats import norm

    if math.isnan(variance):
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(variance)
    if 0 < auc < 1 and variance > 0:
        centre = math.log(auc / (1 - auc))
        half = z * se / (auc * (1 - auc))  # delta method: d logit(p) / dp = 1 / (p (1 - p))
        return (_expit(centre - half), _expit(centre + half))
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def _expit(x: float) -> float:
    # Written per sign so that large |x| neither overflows nor loses the small tail.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def clopper_pearson(k, n: int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided exact (Clopper-Pearson) interval for k successes in n trials, elementwise in k.

    The Beta quantiles are undefined at the ends, where the bounds are exact instead:
    lower 0 when k = 0, upper 1 when k = n.
    """
    from scipy.stats import beta

    k = np.asarray(k, dtype=float)
    alpha = 1.0 - confidence
    # Placeholder shape parameters (1) where the closed form takes over keep beta.ppf quiet.
    low = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
    high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
    return low, high


def _epsilon_lower_bound(members: np.ndarray, nonmembers: np.ndarray, thresholds: np.ndarray,
                         confidence: float) -> tuple[float, float | None]:
    n_m, n_n = len(members), len(nonmembers)
    # Counts scoring >= each threshold, exact integers rather than rescaled ROC rates.
    tp = n_m - np.searchsorted(np.sort(members), thresholds, side="left")
    fp = n_n - np.searchsorted(np.sort(nonmembers), thresholds, side="left")
    tpr_lo, _ = clopper_pearson(tp, n_m, confidence)
    _, fpr_hi = clopper_pearson(fp, n_n, confidence)
    # Both denominators are positive: FPR_hi >= 1 - (alpha/2)^(1/n) > 0 even at FP = 0 and
    # TPR_lo <= (alpha/2)^(1/n) < 1 even at TP = n. Numerators may be 0, so compare ratios and
    # take a single log of the best one, avoiding log(0).
    ratio = np.maximum(tpr_lo / fpr_hi, (1.0 - fpr_hi) / (1.0 - tpr_lo))
    best = int(np.argmax(ratio))
    if ratio[best] <= 1.0:
        return 0.0, None
    return float(math.log(ratio[best])), float(thresholds[best])
