import math

import numpy as np
import pytest
from scipy.stats import binomtest, mannwhitneyu, norm

from mia_engine.metrics import AttackMetrics, attack_metrics, clopper_pearson, delong_auc_variance

# "No warnings" is part of the contract (log of 0, Beta quantiles at k = 0 or n, 0/0 PPV).
pytestmark = pytest.mark.filterwarnings("error")

MEMBERS = [0.9, 0.8, 0.4]
NONMEMBERS = [0.7, 0.3, 0.2, 0.1]


def _expit(x):
    return 1 / (1 + math.exp(-x))


def test_hand_computed_roc_summary():
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5, fpr_levels=(0.01, 0.25, 0.5))
    # pairs (member > non-member): 0.9 beats 4, 0.8 beats 4, 0.4 beats 3 -> 11 of 12
    assert m.auc == pytest.approx(11 / 12)
    # FPR 0 allows TPR 2/3 (threshold 0.8); FPR 1/4 allows TPR 1 (threshold 0.4 lets 0.7 in)
    assert m.tpr_at_fpr == pytest.approx({0.01: 2 / 3, 0.25: 1.0, 0.5: 1.0})
    # advantage: max(TPR - FPR) = 1 - 1/4 at threshold 0.4, vs 2/3 - 0 at 0.8
    assert m.advantage == pytest.approx(0.75)
    # at 0.5: members 0.9, 0.8 called, 0.4 missed -> TPR 2/3; non-member 0.7 called -> FPR 1/4
    assert m.threshold == 0.5
    assert m.tpr_at_threshold == pytest.approx(2 / 3)
    assert m.fpr_at_threshold == pytest.approx(1 / 4)
    assert m.accuracy == pytest.approx(5 / 7)  # 2 members + 3 non-members right of 7
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 3 / 4) / 2)  # mean of TPR and TNR = 17/24
    # default prior 3/7: PPV = (3/7 * 2/3) / (3/7 * 2/3 + 4/7 * 1/4) = 2/3, i.e. TP / (TP + FP)
    assert m.base_rate == pytest.approx(3 / 7)
    assert m.ppv == pytest.approx(2 / 3)
    assert (m.n_members, m.n_nonmembers) == (3, 4)
    # ROC points, one per distinct score after the (0, 0) start at threshold +inf
    assert m.thresholds[0] == np.inf
    assert m.fpr.tolist() == pytest.approx([0, 0, 0, 1 / 4, 1 / 4, 2 / 4, 3 / 4, 1])
    assert m.tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])


def test_ppv_at_a_given_base_rate():
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5, base_rate=0.1)
    # (0.1 * 2/3) / (0.1 * 2/3 + 0.9 * 1/4) = (1/15) / (1/15 + 9/40) = 8/35
    assert m.base_rate == 0.1
    assert m.ppv == pytest.approx(8 / 35)
    assert m.summary()["ppv"] == pytest.approx(8 / 35)


def test_ppv_is_nan_when_nothing_is_called_a_member():
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.95)
    assert m.tpr_at_threshold == 0 and m.fpr_at_threshold == 0
    assert math.isnan(m.ppv)
    assert m.summary()["ppv"] is None


def test_delong_variance_by_hand():
    # Placement values (ties would count half; there are none):
    #   members     0.9 -> 4/4, 0.8 -> 4/4, 0.4 -> 3/4   (share of non-members below)
    #   non-members 0.7 -> 2/3, 0.3 -> 3/3, 0.2 -> 3/3, 0.1 -> 3/3   (share of members above)
    # Both average to 11/12. Unbiased variances:
    #   s2(V10) = ((1/12)^2 + (1/12)^2 + (2/12)^2) / 2 = 6/144 / 2 = 1/48
    #   s2(V01) = ((3/12)^2 + 3 * (1/12)^2) / 3 = 12/144 / 3 = 1/36
    #   Var = (1/48) / 3 + (1/36) / 4 = 1/144 + 1/144 = 1/72
    expected = (6 / 144 / 2) / 3 + (12 / 144 / 3) / 4
    assert expected == pytest.approx(1 / 72)
    assert delong_auc_variance(MEMBERS, NONMEMBERS) == pytest.approx(expected)

    # The interval is expit(logit(AUC) +- z * se / (AUC (1 - AUC))), about (0.348, 0.996).
    auc, se, z = 11 / 12, math.sqrt(expected), norm.ppf(0.975)
    half = z * se / (auc * (1 - auc))
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5)
    assert m.auc_ci == pytest.approx((_expit(math.log(11) - half), _expit(math.log(11) + half)))
    assert m.auc_ci[0] < m.auc < m.auc_ci[1] < 1  # asymmetric, inside (0, 1) unlike the Wald interval

    # a wider confidence gives a wider interval
    wide = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5, confidence=0.99)
    half99 = norm.ppf(0.995) * se / (auc * (1 - auc))
    assert wide.auc_ci == pytest.approx((_expit(math.log(11) - half99), _expit(math.log(11) + half99)))


def test_delong_variance_with_ties_by_hand():
    # members 0.5, 0.9; non-members 0.5, 0.1. Tied 0.5s count half each way:
    #   V10: 0.5 -> (1/2 + 1) / 2 = 3/4, 0.9 -> 1 ; V01: 0.5 -> (1 + 1/2) / 2 = 3/4, 0.1 -> 1
    #   s2 = 2 * (1/8)^2 / 1 = 1/32 for both; Var = (1/32) / 2 + (1/32) / 2 = 1/32
    assert delong_auc_variance([0.5, 0.9], [0.5, 0.1]) == pytest.approx(1 / 32)
    assert attack_metrics([0.5, 0.9], [0.5, 0.1], threshold=0.5).auc == pytest.approx(7 / 8)


def test_delong_rank_form_matches_pairwise_definition():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(0.5, 1, 60), 1)  # rounding makes plenty of ties
    y = np.round(rng.normal(0.0, 1, 45), 1)
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y)
    assert delong_auc_variance(x, y) == pytest.approx(expected, rel=1e-12)
    assert attack_metrics(x, y, threshold=0.0).auc == pytest.approx(psi.mean())


def test_auc_interval_fallbacks():
    # perfect separation: logit infinite, DeLong variance 0 -> Wald interval, a single point
    assert attack_metrics([0.9, 0.95], [0.1, 0.2, 0.3], threshold=0.5).auc_ci == (1.0, 1.0)
    assert attack_metrics([0.1, 0.2], [0.8, 0.9], threshold=0.5).auc_ci == (0.0, 0.0)
    # all tied: AUC 1/2 but variance 0 -> Wald, again a point
    assert attack_metrics(np.full(5, 0.3), np.full(4, 0.3), threshold=0.5).auc_ci == (0.5, 0.5)
    # a single member: the variance cannot be estimated
    m = attack_metrics([0.9], [0.1, 0.2], threshold=0.5)
    assert all(math.isnan(v) for v in m.auc_ci)
    assert m.summary()["auc_ci_low"] is None and m.summary()["auc_ci_high"] is None


def test_pvalue_exact_by_hand_and_against_scipy():
    # No ties, 3 and 4 scores: 35 equally likely rankings under the null; U >= 11 for two of them
    # (members at ranks {5, 6, 7} or {4, 6, 7}).
    assert attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5).auc_pvalue == pytest.approx(2 / 35)

    rng = np.random.default_rng(7)
    x = np.round(rng.normal(0.3, 1, 80), 1)
    y = np.round(rng.normal(0.0, 1, 90), 1)
    expected = mannwhitneyu(list(x), list(y), alternative="greater").pvalue
    assert 0 < expected < 1
    assert attack_metrics(x, y, threshold=0.0).auc_pvalue == pytest.approx(expected)
    # and it is one-sided: an attack worse than chance gets a large p-value
    assert attack_metrics(y, x, threshold=0.0).auc_pvalue == pytest.approx(1 - expected, abs=1e-3)


@pytest.mark.parametrize("k, n", [(0, 4), (1, 4), (4, 4), (0, 200), (37, 200), (200, 200), (3, 7)])
def test_clopper_pearson_matches_binomtest(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n, 0.95)
    assert (float(low), float(high)) == pytest.approx((ci.low, ci.high), abs=1e-12)


@pytest.mark.parametrize("members, nonmembers", [
    # threshold 1.0: TP 30/40, FP 5/40
    ([1.0] * 30 + [0.0] * 10, [1.0] * 5 + [0.0] * 35),
    # threshold 1.0: TP 40/40, FP 20/40 -- the TNR / FNR side carries the bound here
    ([1.0] * 40, [1.0] * 20 + [0.0] * 20),
])
def test_epsilon_at_the_only_informative_threshold(members, nonmembers):
    # Thresholds +inf (nothing called) and 0.0 (everything called) give ratio < 1, so the bound
    # comes from threshold 1.0, computed here from scipy's exact binomial intervals.
    tp, fp = sum(s >= 1.0 for s in members), sum(s >= 1.0 for s in nonmembers)
    tpr = binomtest(tp, len(members)).proportion_ci(method="exact")
    fpr = binomtest(fp, len(nonmembers)).proportion_ci(method="exact")
    expected = max(math.log(tpr.low / fpr.high), math.log((1 - fpr.high) / (1 - tpr.low)))
    m = attack_metrics(members, nonmembers, threshold=0.5)
    assert expected > 0
    assert m.epsilon_lower_bound == pytest.approx(expected)
    assert m.epsilon_threshold == 1.0


def test_epsilon_for_perfect_separation():
    members = np.linspace(0.6, 1.0, 200)
    nonmembers = np.linspace(0.0, 0.4, 200)
    # At threshold 0.6: TP = 200/200, FP = 0/200. Clopper-Pearson at k = n has lower bound
    # (alpha/2)^(1/n), at k = 0 upper bound 1 - (alpha/2)^(1/n); both ratios equal q / (1 - q).
    q = 0.025 ** (1 / 200)
    m = attack_metrics(members, nonmembers, threshold=0.5)
    assert m.epsilon_lower_bound == pytest.approx(math.log(q / (1 - q)))  # about 3.98
    assert m.epsilon_threshold == pytest.approx(0.6)
    # more confidence, smaller certified bound
    q99 = 0.005 ** (1 / 200)
    assert attack_metrics(members, nonmembers, 0.5, confidence=0.99).epsilon_lower_bound == pytest.approx(
        math.log(q99 / (1 - q99)))


def test_epsilon_is_zero_without_evidence():
    scores = np.linspace(0.0, 1.0, 300)
    m = attack_metrics(scores, scores, threshold=0.5)  # identical distributions
    assert m.epsilon_lower_bound == 0.0 and m.epsilon_threshold is None
    # a good attack on too few scores certifies nothing either (the intervals are too wide)
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5)
    assert m.epsilon_lower_bound == 0.0 and m.epsilon_threshold is None
    assert m.summary()["epsilon_lower_bound"] == 0.0


def test_unresolved_fpr_levels_are_flagged():
    rng = np.random.default_rng(1)
    m = attack_metrics(rng.normal(1, 1, 50), rng.normal(0, 1, 50), threshold=0.5, fpr_levels=(0.01, 0.1))
    # 50 non-members: the smallest non-zero FPR is 1/50 = 0.02
    assert m.fpr_resolved == {0.01: False, 0.1: True}
    assert m.tpr_at_fpr[0.01] == pytest.approx(m.tpr[m.fpr == 0].max())  # the TPR at FPR 0
    s = m.summary()
    assert s["tpr_at_fpr_0.01_resolved"] is False
    assert "tpr_at_fpr_0.1_resolved" not in s
    # a level of exactly 1 / n_nonmembers is resolved
    assert attack_metrics(MEMBERS, NONMEMBERS, 0.5, fpr_levels=(0.25, 0.2)).fpr_resolved == {0.25: True, 0.2: False}


def test_ties_and_chance():
    m = attack_metrics(np.full(10, 0.5), np.full(10, 0.5), threshold=0.5)
    assert m.auc == pytest.approx(0.5)
    assert m.advantage == pytest.approx(0.0)
    assert m.tpr_at_fpr[0.01] == pytest.approx(0.0)
    assert m.accuracy == pytest.approx(0.5)  # everyone called a member
    assert m.balanced_accuracy == pytest.approx(0.5)
    assert m.auc_pvalue == pytest.approx(1.0)
    assert m.epsilon_lower_bound == 0.0


def test_perfect_separation():
    m = attack_metrics([0.9, 0.95], [0.1, 0.2, 0.3], threshold=0.5, fpr_levels=(0.01,))
    assert m.auc == 1.0 and m.advantage == 1.0 and m.accuracy == 1.0 and m.balanced_accuracy == 1.0
    assert m.tpr_at_fpr[0.01] == 1.0
    assert m.ppv == 1.0


def test_summary_is_plain_python():
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5, fpr_levels=(0.001, 0.01, 0.25))
    s = m.summary()
    assert list(s) == [
        "auc", "auc_leakage", "auc_ci_low", "auc_ci_high", "auc_pvalue",
        "tpr_at_fpr_0.001", "tpr_at_fpr_0.001_resolved", "tpr_at_fpr_0.01", "tpr_at_fpr_0.01_resolved",
        "tpr_at_fpr_0.25",
        "advantage", "accuracy", "balanced_accuracy", "tpr_at_threshold", "fpr_at_threshold", "ppv",
        "base_rate", "epsilon_lower_bound", "n_members", "n_nonmembers",
    ]
    assert all(type(v) in (float, int, bool) for v in s.values())  # exact types: no numpy scalars
    assert type(s["n_members"]) is int and type(s["tpr_at_fpr_0.01_resolved"]) is bool
    assert s["auc"] == pytest.approx(11 / 12) and s["tpr_at_fpr_0.25"] == pytest.approx(1.0)
    assert (s["n_members"], s["n_nonmembers"]) == (3, 4)
    assert s["auc_leakage"] == s["auc"]
    flipped = attack_metrics([-x for x in MEMBERS], [-x for x in NONMEMBERS], threshold=0.5, fpr_levels=(0.01,)).summary()
    assert flipped["auc"] == pytest.approx(1 / 12) and flipped["auc_leakage"] == pytest.approx(11 / 12)


def test_result_is_frozen():
    m = attack_metrics(MEMBERS, NONMEMBERS, threshold=0.5)
    assert isinstance(m, AttackMetrics)
    with pytest.raises(AttributeError):
        m.auc = 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(member_scores=[]), "no member scores"),
    (dict(nonmember_scores=np.array([])), "no non-member scores"),
    (dict(member_scores=[0.9, float("nan")]), "member scores contain NaN"),
    (dict(nonmember_scores=[0.1, float("inf")]), "non-member scores contain NaN or infinite"),
    (dict(member_scores=[[0.9, 0.8]]), "one-dimensional"),
    (dict(base_rate=0.0), "base_rate"),
    (dict(base_rate=1.0), "base_rate"),
    (dict(base_rate=float("nan")), "base_rate"),
    (dict(fpr_levels=(0.01, 0.0)), "FPR level"),
    (dict(fpr_levels=(1.5,)), "FPR level"),
    (dict(confidence=1.0), "confidence"),
])
def test_invalid_inputs_are_rejected(kwargs, message):
    args = dict(member_scores=MEMBERS, nonmember_scores=NONMEMBERS, threshold=0.5) | kwargs
    with pytest.raises(ValueError, match=message):
        attack_metrics(**args)


def test_fpr_level_one_is_valid():
    assert attack_metrics(MEMBERS, NONMEMBERS, 0.5, fpr_levels=(1.0,)).tpr_at_fpr == {1.0: 1.0}
