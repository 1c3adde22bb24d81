"""Leakage per slice: classes, values of categorical columns, loss percentiles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mia_engine.subgroups import subgroup_slices, subgroup_summary

# No warnings from tiny or one-sided slices (DeLong with one score, Mann-Whitney, 0/0).
pytestmark = pytest.mark.filterwarnings("error")

LEVELS = (0.1, 0.5)
NAMES = {0: "No", 1: "Yes", 2: "Maybe", 3: "Unknown", 4: "Empty"}

# (class, member, score, region, band): made-up records with hand-countable answers.
ROWS = [
    # class 0: members 0.2 0.4 0.6 0.8 vs non-members 0.1 0.3 0.5 0.7 -> member wins 1+2+3+4 of 16
    (0, True, 0.2, "north", 1), (0, True, 0.4, "south", 2), (0, True, 0.6, "north", 10), (0, True, 0.8, None, 1),
    (0, False, 0.1, "east", 2), (0, False, 0.3, "north", 1), (0, False, 0.5, "south", 10), (0, False, 0.7, "east", 2),
    # class 1: every member above every non-member -> AUC 1
    (1, True, 0.91, "north", 1), (1, True, 0.92, "south", 2), (1, True, 0.93, "east", 10),
    (1, True, 0.94, "north", None), (1, True, 0.95, float("nan"), 1),
    (1, False, 0.05, "south", 2), (1, False, 0.15, "east", 1), (1, False, 0.25, "north", 10),
    (1, False, 0.35, "south", 2),
    # class 2: members 0.55 0.65 vs non-members 0.6 0.4 0.45 -> 2 + 3 of 6; two members: small at 3
    (2, True, 0.55, "east", 1), (2, True, 0.65, "north", 2),
    (2, False, 0.6, "south", 10), (2, False, 0.4, "east", 1), (2, False, 0.45, "north", 2),
    # class 3: members only -> nothing to compare
    (3, True, 0.5, "south", 1), (3, True, 0.52, "east", 2),
    # class 4 ("Empty") has a name but no records
]
N = len(ROWS)
N_MEMBERS = sum(r[1] for r in ROWS)
N_NONMEMBERS = N - N_MEMBERS


def _arrays():
    label, member, scores, region, band = (list(c) for c in zip(*ROWS))
    return (np.array(member), np.array(scores, dtype=float), np.array(label),
            np.array(region, dtype=object), np.array(band, dtype=object))


def _slices(min_cell_count=3, loss="default", **kw):
    member, scores, label, region, band = _arrays()
    if isinstance(loss, str):
        loss = np.arange(N, dtype=float)[::-1] / 10  # distinct losses, record 0 highest
    return subgroup_slices(member, scores, label=label, label_names=NAMES,
                           columns={"region": region, "band": band}, loss=loss, fpr_levels=LEVELS,
                           threshold=0.5, min_cell_count=min_cell_count, **kw)


def _by(slices, by):
    return {s["value"]: s for s in slices if s["by"] == by}


def test_class_slices_known_answers():
    classes = _by(_slices(), "class")
    assert list(classes) == ["No", "Yes", "Maybe", "Unknown", "Empty"]  # in order of the codes

    no, yes, maybe = classes["No"], classes["Yes"], classes["Maybe"]
    assert (no["n_members"], no["n_nonmembers"]) == (4, 4)
    assert no["auc"] == pytest.approx(10 / 16)
    assert no["advantage"] == pytest.approx(0.25)  # TPR - FPR is 1/4 at every member's score
    assert (yes["n_members"], yes["n_nonmembers"]) == (5, 4)
    assert yes["auc"] == 1.0 and yes["advantage"] == 1.0
    assert yes["tpr_at_fpr_0.1"] == 1.0 and yes["tpr_at_fpr_0.5"] == 1.0
    assert yes["auc_pvalue"] < 0.05 and no["auc_pvalue"] > 0.05
    # four non-members cannot resolve FPR 0.1 (< 1/4): flagged; 0.5 is resolved: no flag
    assert yes["tpr_at_fpr_0.1_resolved"] is False and "tpr_at_fpr_0.5_resolved" not in yes
    assert maybe["auc"] == pytest.approx(5 / 6)
    assert maybe["auc_ci_low"] <= maybe["auc"] <= maybe["auc_ci_high"]

    # small: fewer than 3 members or non-members
    assert [s["small"] for s in classes.values()] == [False, False, True, True, True]
    assert not _by(_slices(min_cell_count=2), "class")["Maybe"]["small"]
    assert _by(_slices(min_cell_count=5), "class")["No"]["small"]


def test_no_band_tpr_value_by_hand():
    # class 0 ROC: 0.8 (TPR 1/4, FPR 0), 0.7 (FPR 1/4), 0.6 (TPR 2/4), 0.5 (FPR 2/4), 0.4 (TPR 3/4),
    # 0.3 (FPR 3/4), 0.2 (TPR 1) -> at FPR <= 0.1 the best TPR is 1/4, at FPR <= 0.5 it is 3/4
    no = _by(_slices(), "class")["No"]
    assert no["tpr_at_fpr_0.1"] == pytest.approx(0.25)
    assert no["tpr_at_fpr_0.5"] == pytest.approx(0.75)


def test_one_sided_and_empty_slices_are_listed_without_figures():
    classes = _by(_slices(), "class")
    only_members, empty = classes["Unknown"], classes["Empty"]
    assert (only_members["n_members"], only_members["n_nonmembers"]) == (2, 0)
    assert (empty["n_members"], empty["n_nonmembers"]) == (0, 0)
    for s in (only_members, empty):
        for key in ("auc", "auc_ci_low", "auc_ci_high", "auc_pvalue", "tpr_at_fpr_0.1", "tpr_at_fpr_0.5",
                    "advantage"):
            assert s[key] is None, key
        assert s["small"] is True
        assert not any(k.endswith("_resolved") for k in s)


def test_single_member_slice_has_no_interval():
    member, scores, label, region, band = _arrays()
    # column "tiny": slice "a" is the first three records, one member (0.2) and two non-members
    tiny = np.array(["a"] * 3 + ["b"] * (N - 3), dtype=object)
    member = np.array([True, False, False] + member[3:].tolist())
    slices = subgroup_slices(member, scores, label=label, label_names=NAMES, columns={"tiny": tiny}, loss=None,
                             fpr_levels=LEVELS, threshold=0.5, min_cell_count=1)
    a = _by(slices, "feature:tiny")["a"]
    assert (a["n_members"], a["n_nonmembers"]) == (1, 2)
    assert a["auc"] == 0.0  # the member's 0.2 is below both non-members (0.4, 0.6)
    assert a["auc_ci_low"] is None and a["auc_ci_high"] is None
    assert a["small"] is False  # min_cell_count 1: one of each is enough


def test_column_slices_sorted_with_missing_last():
    slices = _slices()
    region = _by(slices, "feature:region")
    assert list(region) == ["east", "north", "south", "missing"]
    # None and NaN both count as missing: class 0's member 0.8 and class 1's member 0.95
    assert (region["missing"]["n_members"], region["missing"]["n_nonmembers"]) == (2, 0)
    assert region["missing"]["auc"] is None
    assert (region["north"]["n_members"], region["north"]["n_nonmembers"]) == (5, 3)
    # numbers are categories named str(value), sorted as strings
    band = _by(slices, "feature:band")
    assert list(band) == ["1", "10", "2", "missing"]
    assert band["missing"]["n_members"] == 1 and band["missing"]["n_nonmembers"] == 0


def test_counts_per_kind_sum_to_the_totals_and_order_of_kinds():
    slices = _slices()
    kinds = [s["by"] for s in slices]
    assert kinds == sorted(kinds, key=["class", "feature:region", "feature:band", "loss_percentile"].index)
    for by in ("class", "feature:region", "feature:band", "loss_percentile"):
        group = [s for s in slices if s["by"] == by]
        assert sum(s["n_members"] for s in group) == N_MEMBERS, by
        assert sum(s["n_nonmembers"] for s in group) == N_NONMEMBERS, by


def test_loss_bins_partition_the_records():
    bins = _by(_slices(), "loss_percentile")
    assert list(bins) == ["0-25%", "25-50%", "50-75%", "75-100%"]
    assert [b["n_members"] + b["n_nonmembers"] for b in bins.values()] == [6, 6, 6, 6]
    # the lowest-loss quarter is the last six records, ROWS[18:]: class 2's member 0.65 and its
    # three non-members, class 3's two members; the highest is the first six, class 0's
    # four members and its non-members 0.1, 0.3
    assert (bins["0-25%"]["n_members"], bins["0-25%"]["n_nonmembers"]) == (3, 3)
    assert (bins["75-100%"]["n_members"], bins["75-100%"]["n_nonmembers"]) == (4, 2)
    assert bins["75-100%"]["auc"] == pytest.approx(7 / 8)  # 0.2 beats 0.1; 0.4, 0.6, 0.8 beat both
    three = _by(_slices(loss_bins=3), "loss_percentile")
    assert list(three) == ["0-33.33%", "33.33-66.67%", "66.67-100%"]
    assert sum(b["n_members"] + b["n_nonmembers"] for b in three.values()) == N


def test_tied_losses_share_a_bin_and_empty_bins_are_listed():
    # 14 of 24 records at loss 0 (a perfectly fitted model's favourites): the 25% and 50%
    # quantiles are both 0, so every zero lands in the first bin and 25-50% is empty.
    loss = np.where(np.arange(N) < 14, 0.0, np.arange(N) + 1.0)
    bins = _by(_slices(loss=loss), "loss_percentile")
    totals = {k: b["n_members"] + b["n_nonmembers"] for k, b in bins.items()}
    assert totals == {"0-25%": 14, "25-50%": 0, "50-75%": 4, "75-100%": 6}
    assert bins["25-50%"]["auc"] is None and bins["25-50%"]["small"] is True
    assert sum(r[1] for r in ROWS[:14]) == bins["0-25%"]["n_members"]


def test_no_loss_no_loss_slices():
    slices = _slices(loss=None)
    assert not any(s["by"] == "loss_percentile" for s in slices)


def test_slice_auc_matches_sklearn_on_the_same_subset():
    rng = np.random.default_rng(7)
    n = 400
    member = rng.random(n) < 0.5
    region = rng.choice(["north", "south", "east"], n).astype(object)
    label = rng.integers(0, 2, n)
    # members of the north score higher on average, with ties from rounding
    scores = np.round(rng.normal(0, 1, n) + 0.8 * (member & (region == "north")), 1)
    slices = subgroup_slices(member, scores, label=label, label_names={0: "a", 1: "b"}, columns={"region": region},
                             loss=rng.exponential(1, n), fpr_levels=(0.01,), threshold=0.0, min_cell_count=10)
    for value in ("north", "south"):
        mask = region == value
        expected = roc_auc_score(member[mask], scores[mask])
        assert _by(slices, "feature:region")[value]["auc"] == pytest.approx(expected, abs=1e-12)
    assert _by(slices, "feature:region")["north"]["auc"] > 0.65 > _by(slices, "feature:region")["south"]["auc"]
    b = _by(slices, "class")["b"]
    assert b["auc"] == pytest.approx(roc_auc_score(member[label == 1], scores[label == 1]), abs=1e-12)


def test_values_are_plain_python():
    slices = _slices()
    allowed = (type(None), bool, int, float, str)
    for s in slices:
        for key, value in s.items():
            assert type(value) in allowed, (key, type(value))
            assert not (isinstance(value, float) and math.isnan(value)), key
    json.dumps(slices, allow_nan=False)


def test_summary_counts_small_slices():
    slices = _slices()
    out = subgroup_summary("lira", slices, 3, np.array(LEVELS))
    assert out["attack"] == "lira" and out["min_cell_count"] == 3
    assert out["fpr_levels"] == [0.1, 0.5] and all(type(v) is float for v in out["fpr_levels"])
    assert out["slices"] is slices
    assert out["n_small"] == sum(s["small"] for s in slices)
    # classes Maybe, Unknown, Empty; region "missing" (no non-members); band "10" (2 members)
    # and "missing"; loss bins 25-50% (2 members), 50-75% and 75-100% (2 non-members each)
    assert out["n_small"] == 9
    assert [s["value"] for s in slices if s["small"] and s["by"] == "feature:band"] == ["10", "missing"]
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("change, match", [
    ({"scores": np.zeros(N - 1)}, "scores has 23 entries but member has 24"),
    ({"label": np.zeros(N + 1, dtype=int)}, "label has 25 entries"),
    ({"columns": {"region": np.array(["x"] * 3, dtype=object)}}, "column 'region' has 3 entries"),
    ({"loss": np.zeros(5)}, "loss has 5 entries"),
    ({"scores": np.r_[np.nan, np.zeros(N - 1)]}, "scores contain NaN"),
    ({"loss": np.r_[np.inf, np.zeros(N - 1)]}, "loss contains NaN or infinite"),
    ({"label": np.full(N, 9)}, r"label code\(s\) \[9\] have no entry in label_names"),
    ({"member": np.array(["yes"] * N)}, "member must hold booleans"),
    ({"member": np.array([], dtype=bool)}, "no audited records"),
    ({"fpr_levels": (0.0,)}, "FPR level must lie in"),
    ({"min_cell_count": 0}, "min_cell_count must be a whole number"),
    ({"loss_bins": 2.5}, "loss_bins must be a whole number"),
])
def test_invalid_inputs(change, match):
    member, scores, label, region, band = _arrays()
    kwargs = dict(member=member, scores=scores, label=label, label_names=NAMES, columns={"region": region},
                  loss=np.zeros(N), fpr_levels=LEVELS, threshold=0.5, min_cell_count=3)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        subgroup_slices(kwargs.pop("member"), kwargs.pop("scores"), **kwargs)


def test_member_as_zero_one_is_accepted():
    member, scores, label, region, band = _arrays()
    a = subgroup_slices(member.astype(int), scores, label=label, label_names=NAMES, columns={}, loss=None,
                        fpr_levels=LEVELS, threshold=0.5, min_cell_count=3)
    b = subgroup_slices(member, scores, label=label, label_names=NAMES, columns={}, loss=None,
                        fpr_levels=LEVELS, threshold=0.5, min_cell_count=3)
    assert a == b


def test_classes_follow_their_codes_whatever_the_mapping_order():
    member, scores, label, region, band = _arrays()
    shuffled = {code: NAMES[code] for code in (3, 1, 4, 0, 2)}
    slices = subgroup_slices(member, scores, label=label.astype(float), label_names=shuffled, columns={},
                             loss=None, fpr_levels=LEVELS, threshold=0.5, min_cell_count=3)
    assert [s["value"] for s in slices] == ["No", "Yes", "Maybe", "Unknown", "Empty"]
    assert slices == _slices(loss=None)[:5]  # float codes 0.0, 1.0 ... read as the same classes


# ---- in a scenario: report.subgroups ------------------------------------------------------------

def test_a_scenarios_subgroups_partition_its_audit(quiet_sklearn):
    from conftest import compose_config
    from mia_engine.scenario import run_scenario

    r = run_scenario(compose_config(["tracking=none", "report.subgroups.columns=[bmi_group,smoker]"]))
    sub = r.summary()["subgroups"]
    audit = r.summary()["audit"]
    assert sub["attack"] == r.verdict_attack == "shadow_lr" and sub["min_cell_count"] == 10
    by = {}
    for s in sub["slices"]:
        by.setdefault(s["by"], []).append(s)
    assert list(by) == ["class", "feature:bmi_group", "feature:smoker", "loss_percentile"]
    for slices in by.values():  # each way of slicing covers every audited record once
        assert sum(s["n_members"] for s in slices) == audit["n_members"] == 200
        assert sum(s["n_nonmembers"] for s in slices) == audit["n_nonmembers"] == 180
    # The tutorial population's smoker flag and BMI group are numbers: sliced by value.
    assert [s["value"] for s in by["feature:smoker"]] == ["0", "1"]
    assert [s["value"] for s in by["loss_percentile"]] == ["0-25%", "25-50%", "50-75%", "75-100%"]
    assert sub["n_small"] == sum(s["small"] for s in sub["slices"])
    assert all(s["small"] == (min(s["n_members"], s["n_nonmembers"]) < 10) for s in sub["slices"])


@pytest.mark.parametrize("override,key,message", [
    ("report.subgroups.columns=[height]", "report.subgroups.columns.0", "no feature 'height'"),
    ("report.subgroups.columns=[age]", "report.subgroups.columns.0", "is numeric"),
    ("report.subgroups.loss_bins=-1", "report.subgroups.loss_bins", ">= 0"),
])
def test_bad_subgroup_settings_name_their_key(override, key, message):
    from conftest import compose_config
    from mia_engine.errors import ConfigError
    from mia_engine.scenario import prepare_scenario

    with pytest.raises(ConfigError, match=message) as err:
        prepare_scenario(compose_config(["tracking=none", override]))
    assert err.value.key == key
