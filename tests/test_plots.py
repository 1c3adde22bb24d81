"""The figures' decisions: curves that coincide stay visible and are named, score axes resolve
both groups, sweep panels say what they show and which way is safer. Built in memory (no pixels
compared); one test draws every figure of a real suite run."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from mia_engine import plots
from mia_engine.metrics import attack_metrics
from mia_engine.scenario.results import AttackResult
from mia_engine.sweep_summary import metric_info, metrics_figure, pareto_figure, pareto_front, sweep_layout

RNG = np.random.default_rng(0)
MEMBERS = RNG.normal(1.0, 1.0, 200)
NONMEMBERS = RNG.normal(0.0, 1.0, 180)


def _attack(name, ins, outs, threshold=0.0, probability=False, upper_bound=False):
    ins, outs = np.asarray(ins, float), np.asarray(outs, float)
    return AttackResult(name, name, "score", probability, threshold, attack_metrics(ins, outs, threshold),
                        member_scores=ins, nonmember_scores=outs, upper_bound=upper_bound)


def _result(attacks, verdict, record=None):
    return SimpleNamespace(attacks={a.name: a for a in attacks}, verdict_attack=verdict, target_record=record)


def _legend(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    return legends[0]


# ---------------------------------------------------------------------------------------------
# ROC


def test_identical_roc_curves_are_detected_by_their_arrays():
    a = (np.array([0, 0.1, 1.0]), np.array([0, 0.5, 1.0]))
    b = (np.array([0, 0.1, 1.0]), np.array([0, 0.6, 1.0]))
    curves = {"a": a, "b": b, "a2": (a[0].copy(), a[1].copy()), "a3": a}
    assert plots.identical_roc_curves(curves) == {"a2": "a", "a3": "a"}
    assert plots.identical_roc_curves({"a": a, "b": b}) == {}


def test_identical_curves_are_named_in_the_roc_legend():
    base = _attack("loss_threshold", MEMBERS, NONMEMBERS)
    # The same scores under a monotone transform: the very same ROC arrays.
    twin = _attack("shadow_lr", 1 / (1 + np.exp(-MEMBERS)), 1 / (1 + np.exp(-NONMEMBERS)), 0.5, probability=True)
    other = _attack("lira", MEMBERS * 3 + RNG.normal(0, 1, 200), NONMEMBERS * 3, 0.0)
    fig = plots.roc_figure(_result([base, twin, other], "lira"))
    legend = _legend(fig)
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(t.startswith("shadow_lr") and t.endswith("= loss_threshold") for t in labels)
    assert not any(t.startswith(("loss_threshold", "lira")) and "=" in t.split("@")[-1] for t in labels)
    assert "identical curves: loss_threshold, shadow_lr" in legend.get_title().get_text()
    # The strongest attack is starred, and the title says what the star means.
    assert any(t.startswith("lira *:") for t in labels)
    assert "(* strongest)" in fig.axes[0].get_title()
    # Distinct curves: no note.
    legend = _legend(plots.roc_figure(_result([base, other], "lira")))
    assert "identical" not in legend.get_title().get_text()


def test_every_attack_line_has_its_own_style_thinned_markers_and_a_readable_legend():
    names = [f"attack_{i}" for i in range(9)]
    styles = plots.roc_styles(names)
    pairs = {(str(s["linestyle"]), s["marker"]) for s in styles.values()}
    assert len(pairs) == 9
    attacks = [_attack(n, MEMBERS + 0.1 * i, NONMEMBERS) for i, n in enumerate(names)]
    fig = plots.roc_figure(_result(attacks, "attack_8"))
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("attack")]
    assert len(lines) == 9
    assert len({(str(ln.get_linestyle()), ln.get_marker()) for ln in lines}) == 9
    assert len({ln.get_color() for ln in lines}) == 9
    assert all(ln.get_markevery() is not None for ln in lines)  # thinned, not a marker per ROC point
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert any(ln.get_label() == "chance" for ln in ax.get_lines())
    # Ten entries: a figure legend below the axes, at 9 pt, not an x-small box over the curves.
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend = fig.legends[0]
    assert len(legend.get_texts()) == 10 and all(t.get_fontsize() >= 9 for t in legend.get_texts())


def test_curves_within_a_pixel_of_each_other_are_noted():
    a = _attack("a", MEMBERS, NONMEMBERS)
    b = _attack("b", MEMBERS + 1e-9, NONMEMBERS)  # other arrays, same ranking: the same curve
    c = _attack("c", MEMBERS + 2.0, NONMEMBERS)
    curves = {x.name: (x.metrics.fpr, x.metrics.tpr) for x in (a, b, c)}
    near = plots.coinciding_roc_curves(curves, 1 / 360, 1 / 400)
    assert near.get("b") == "a" and "c" not in near


# ---------------------------------------------------------------------------------------------
# Score histograms

LIRA_IN = np.concatenate([RNG.normal(30, 15, 150), RNG.uniform(200, 1400, 50)])
LIRA_OUT = RNG.normal(-3.6, 1.2, 200)


def test_a_heavy_tailed_score_gets_a_symlog_axis_that_resolves_both_groups():
    linear = np.linspace(min(LIRA_IN.min(), LIRA_OUT.min()), max(LIRA_IN.max(), LIRA_OUT.max()), 31)
    assert plots.occupied_bins(LIRA_OUT, linear) == 1  # the finding: all non-members in one bar
    axis = plots.score_axis(LIRA_IN, LIRA_OUT, threshold=0.0, marked=27.8)
    assert axis.scale == "symlog" and axis.linthresh > 0 and "symmetric-log" in axis.note
    assert plots.occupied_bins(LIRA_OUT, axis.bins) >= 5
    assert plots.occupied_bins(LIRA_IN, axis.bins) >= 5
    # The threshold and the individual's score lie in different bins, both inside the range.
    assert axis.lo <= 0.0 < 27.8 <= axis.hi
    assert np.searchsorted(axis.bins, 0.0) != np.searchsorted(axis.bins, 27.8)


def test_probabilities_keep_a_linear_unit_axis_and_tame_scores_a_linear_one():
    ins, outs = RNG.beta(8, 2, 200), RNG.beta(2, 8, 180)
    axis = plots.score_axis(ins, outs, threshold=0.5, is_probability=True)
    assert (axis.scale, axis.lo, axis.hi, axis.note) == ("linear", 0.0, 1.0, "")
    # Even a squeezed probability stays linear on [0, 1].
    assert plots.score_axis(ins * 1e-3, outs * 1e-3, 0.5, is_probability=True).scale == "linear"
    assert plots.score_axis(MEMBERS, NONMEMBERS, 0.0).scale == "linear"
    assert min(plots.occupied_bins(v, plots.score_axis(MEMBERS, NONMEMBERS, 0.0).bins)
               for v in (MEMBERS, NONMEMBERS)) > 10


def test_the_lira_histogram_labels_the_threshold_and_the_individual_with_their_values():
    lira = _attack("lira", LIRA_IN, LIRA_OUT, threshold=0.0)
    record = SimpleNamespace(name="former_prime_minister", attack_scores={"lira": (27.8, True)})
    fig = plots.score_histogram_figure(_result([lira], "lira", record), lira)
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and "symmetric-log" in ax.get_xlabel()
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"threshold 0", "former_prime_minister 27.8"}
    # Side by side, not on top of each other: the lower line's label to its left.
    assert texts["threshold 0"].get_horizontalalignment() == "right"
    assert texts["former_prime_minister 27.8"].get_horizontalalignment() == "left"
    vlines = [ln.get_xdata()[0] for ln in ax.get_lines()]
    lo, hi = ax.get_xlim()
    assert sorted(vlines) == [0.0, 27.8] and all(lo <= x <= hi for x in vlines)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "decision threshold 0" in legend and "former_prime_minister: 27.8" in legend

    shadow = _attack("shadow_lr", RNG.beta(8, 2, 200), RNG.beta(2, 8, 180), 0.5, probability=True)
    ax = plots.score_histogram_figure(_result([shadow], "shadow_lr"), shadow).axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] <= 0 and ax.get_xlim()[1] >= 1


# ---------------------------------------------------------------------------------------------
# Sweep plots


def _row(i, params, metrics, verdict=None):
    return {"run_name": f"job{i}", "run_id": f"id{i}", "status": "FINISHED", "params": params, "metrics": metrics,
            "verdict": verdict}


GRID = [_row(i, {"model.gamma": str(g)}, {"attack/auc": 0.5 + 0.4 * g / (g + 0.3), "target/test_accuracy": 0.8 - g / 30,
                                          "target_record/membership_probability": 0.3 + 0.5 * g / (g + 0.3)}, v)
        for i, (g, v) in enumerate(zip([0.01, 0.1, 0.3, 1, 3], ["no_evidence", "needs_review", "do_not_release",
                                                                 "do_not_release", "do_not_release"]))]


def _random_search(n=24):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        g, c = 10 ** rng.uniform(-3, 1), 10 ** rng.uniform(-2, 2)
        auc = 0.5 + 0.45 * g / (g + 0.3) * c / (c + 1)
        rows.append(_row(i, {"model.gamma": repr(g), "model.C": repr(c)},
                         {"attack/auc": auc, "target/test_accuracy": 0.6 + 0.3 * c / (c + 1)}))
    return rows


def _hlines(ax, y):
    return [ln for ln in ax.get_lines() if len(ln.get_ydata()) == 2 and list(ln.get_ydata()) == [y, y]]


def test_metric_info_names_known_metrics_their_chance_and_safer_direction():
    auc = metric_info("attack/auc")
    assert (auc.label, auc.chance) == ("attack AUC", 0.5) and "lower = less leakage" in auc.note
    tpr = metric_info("attack/tpr_at_fpr_0.01")
    assert tpr.chance == 0.01 and "0.01" in tpr.label
    assert metric_info("target/test_accuracy").label == "accuracy on unseen rows"
    assert "higher = more useful" in metric_info("target/test_accuracy").note
    assert metric_info("target_record/membership_probability").chance == 0.5
    other = metric_info("something/else")
    assert (other.title, other.label, other.note, other.chance) == ("something/else", "something/else", "", None)


def test_sweep_panels_have_labels_chance_lines_and_a_safer_direction():
    fig, layout = metrics_figure(GRID, "model.gamma",
                                 ["target_record/membership_probability", "attack/auc", "target/test_accuracy"])
    assert layout.mode == "lines"
    prob, auc, acc = fig.axes[:3]
    assert prob.get_ylabel() == "membership probability of the named record"
    assert auc.get_ylabel() == "attack AUC" and acc.get_ylabel() == "accuracy on unseen rows"
    assert all(ax.get_title(loc="left") for ax in (prob, auc, acc))
    assert "/" not in "".join(ax.get_title(loc="left") for ax in (prob, auc, acc))  # not raw metric keys
    assert _hlines(auc, 0.5) and _hlines(prob, 0.5) and not _hlines(acc, 0.5)
    assert auc.get_ylim()[0] < 0.5  # the chance line is inside the frame, not on it
    assert "lower = less leakage" in auc.get_title(loc="right")
    assert "lower = less leakage" in prob.get_title(loc="right")
    assert "higher = more useful" in acc.get_title(loc="right")
    # Each job's recommendation is its marker, explained in a legend.
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"no evidence", "needs review", "do not release"}
    assert len(auc.collections) == 3  # one scatter per recommendation's marker


def test_a_random_search_is_a_scatter_with_a_colorbar_not_one_line_per_job():
    rows = _random_search()
    layout = sweep_layout(rows, "model.C", ["model.gamma", "model.C"])
    assert (layout.mode, layout.colour_param, layout.colour_log) == ("scatter", "model.gamma", True)
    fig, _ = metrics_figure(rows, "model.C", ["attack/auc", "target/test_accuracy"], others=["model.gamma", "model.C"])
    panels, extra = fig.axes[:2], fig.axes[2:]
    assert len(extra) == 1 and "model.gamma" in extra[0].get_ylabel()  # the colorbar, its parameter named
    for ax in panels:
        assert len([ln for ln in ax.get_lines() if ln.get_linestyle() != ":"]) == 0  # no per-job lines
        assert sum(len(c.get_offsets()) for c in ax.collections) == 24
    assert "colour = model.gamma" in fig.get_suptitle()
    # A grid with a few settings of the other parameter keeps one line per setting, with a legend.
    grid = [_row(i, {"model.gamma": str(g), "data.seed": str(s)}, {"attack/auc": 0.5 + g / 3})
            for i, (g, s) in enumerate((g, s) for g in (0.01, 0.1, 1) for s in (1, 2))]
    fig, layout = metrics_figure(grid, "model.gamma", ["attack/auc"], others=["model.gamma", "data.seed"])
    assert layout.mode == "lines" and len(layout.groups) == 2 and len(fig.axes) == 1
    assert fig.legends[0].get_title().get_text() == "data.seed"


def test_the_pareto_plot_says_which_way_is_better():
    rows = _random_search()
    objectives, directions = ["attack/auc", "target/test_accuracy"], ["minimize", "maximize"]
    fig = pareto_figure(rows, pareto_front(rows, objectives, directions), objectives, directions)
    ax = fig.axes[0]
    assert "attack AUC" in ax.get_xlabel() and "lower = less leakage" in ax.get_xlabel()
    assert "accuracy on unseen rows" in ax.get_ylabel() and "higher = more useful" in ax.get_ylabel()
    assert any(list(ln.get_xdata()) == [0.5, 0.5] for ln in ax.get_lines())
    assert "better: up and to the left" in ax.get_title()


# ---------------------------------------------------------------------------------------------
# A real run


@pytest.fixture(scope="module")
def suite_result():
    import warnings

    from conftest import compose_config
    from mia_engine.scenario import run_scenario

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*(converge|Maximum number of iteration).*")
        return run_scenario(compose_config(["tracking=none", "attack=suite", "reference.n_models=8"]))


def test_a_real_suite_runs_figures(suite_result, tmp_path):
    r = suite_result
    audited = [a for a in r.attacks.values() if a.metrics is not None]
    # A copy of an attack under another name: its curve is the same arrays, named in the legend.
    twin = dataclasses.replace(r.attacks["loss_threshold"], name="loss_copy")
    fig = plots.roc_figure(dataclasses.replace(r, attacks={**r.attacks, "loss_copy": twin}))
    legend = fig.legends[0]
    assert any(t.get_text().endswith("= loss_threshold") for t in legend.get_texts())
    assert "loss_threshold, loss_copy" in legend.get_title().get_text()
    assert plots.attack_roc(r, tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    for a in audited:
        ax = plots.score_histogram_figure(r, a).axes[0]
        if a.score_is_probability:
            assert ax.get_xscale() == "linear"
        assert min(plots.occupied_bins(v, plots.score_axis(a.member_scores, a.nonmember_scores, a.threshold, None,
                                                           a.score_is_probability).bins)
                   for v in (a.member_scores, a.nonmember_scores)) > 1
    assert plots.score_histogram_figure(r, r.attacks["lira"]).axes[0].get_xscale() == "symlog"
