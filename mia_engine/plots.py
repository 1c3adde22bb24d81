"""Figures of a scenario result, drawn with Matplotlib's object API (no pyplot global state).

Each figure is built by a ``*_figure`` function that returns the :class:`matplotlib.figure.Figure`
(the tests read it) and saved by the public function of the same name; the plotting decisions
(styles, which curves coincide, the score axis) are plain functions of their inputs.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.92)  # fixed: no layout engine per save
    return fig, fig.add_subplot()


def confidence_histogram(result, path: Path) -> Path:
    """Shadow-train (members) vs shadow-test (non-members) max confidences, the individual marked."""
    fig, ax = _figure()
    lo = 1.0 / max(len(result.labels), 1)
    bins = np.linspace(lo, 1.0, 26)
    ax.hist(result.shadow_train_confidences, bins=bins, alpha=0.6, color="tab:red",
            label=f"shadow members (mean {result.shadow_train_mean_confidence:.2f})")
    ax.hist(result.shadow_test_confidences, bins=bins, alpha=0.6, color="tab:blue",
            label=f"shadow non-members (mean {result.shadow_test_mean_confidence:.2f})")
    rec = result.target_record
    if rec is not None and result.verdict_attack is not None:
        score, _ = rec.attack_scores[result.verdict_attack]
        ax.axvline(rec.max_confidence, color="black", linestyle="--",
                   label=f"{rec.name}: {rec.max_confidence:.2f} ({result.verdict_attack} score {score:.2f})")
    ax.set_xlabel("maximum class probability")
    ax.set_ylabel("records")
    ax.set_title(f"Shadow model confidences · {result.population}")
    ax.legend(loc="upper left", fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def _text_width(text: str, size: float) -> float:
    """The width in inches of ``text`` set at ``size`` points in the default font."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    w, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return w / 72.0


# --------------------------------------------------------------------------------------------
# ROC of every attack

_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
            "tab:cyan", "black")
_LINESTYLES = ("-", "--", "-.", (0, (1, 1)))  # the chance line is grey ":"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
_LEGEND_INSIDE_MAX = 4  # more entries than this: the legend goes below the axes


def roc_styles(names: Sequence[str]) -> dict[str, dict]:
    """One line style per attack: colour, a (linestyle, marker) pair no other attack shares (for
    up to 20 attacks), markers thinned and staggered so coinciding curves still show each
    marker, and widths falling from first to last so a curve drawn over another leaves a rim."""
    n = len(names)
    every = 0.1  # a marker per tenth of the axes' diagonal
    out = {}
    for i, name in enumerate(names):
        out[name] = {
            "color": _COLOURS[i % len(_COLOURS)],
            "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)],
            "linewidth": 2.8 - 1.5 * i / (n - 1) if n > 1 else 2.0,
            "markevery": (every * (i + 0.5) / max(n, 1), every),
        }
    return out


def identical_roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """name -> the first earlier name whose ROC curve has the same FPR and TPR arrays."""
    same: dict[str, str] = {}
    names = list(curves)
    for j, b in enumerate(names):
        fb, tb = (np.asarray(v, dtype=float) for v in curves[b])
        for a in names[:j]:
            if a in same:
                continue
            fa, ta = (np.asarray(v, dtype=float) for v in curves[a])
            if fa.shape == fb.shape and ta.shape == tb.shape and np.array_equal(fa, fb) and np.array_equal(ta, tb):
                same[b] = a
                break
    return same


def _upper_envelope(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The ROC curve's TPR at each grid FPR (the highest TPR at repeated FPRs, linear between)."""
    xs, idx = np.unique(np.asarray(fpr, dtype=float), return_inverse=True)
    ys = np.full(len(xs), -np.inf)
    np.maximum.at(ys, idx, np.asarray(tpr, dtype=float))
    return np.interp(grid, xs, ys)


def coinciding_roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], fpr_floor: float,
                          tpr_floor: float, tolerance: float = 0.01) -> dict[str, str]:
    """name -> an earlier name whose curve differs from it by less than ``tolerance`` decades of
    TPR everywhere on the log-log axes (a pixel or so): curves one would hide under the other."""
    grid = np.logspace(np.log10(fpr_floor), 0, 400)
    logs = {k: np.log10(np.maximum(_upper_envelope(f, t, grid), tpr_floor)) for k, (f, t) in curves.items()}
    near: dict[str, str] = {}
    names = list(curves)
    for j, b in enumerate(names):
        for a in names[:j]:
            if a not in near and np.max(np.abs(logs[a] - logs[b])) < tolerance:
                near[b] = a
                break
    return near


def roc_figure(result):
    """The figure :func:`attack_roc` saves: every audited attack's ROC on log-log axes."""
    from matplotlib.figure import Figure

    audited = [a for a in result.attacks.values() if a.metrics is not None]
    first = audited[0].metrics
    floor = 1.0 / (2 * first.n_nonmembers)
    tfloor = 1.0 / (2 * first.n_members)
    curves = {a.name: (a.metrics.fpr, a.metrics.tpr) for a in audited}
    same = identical_roc_curves(curves)
    near = {k: v for k, v in coinciding_roc_curves(curves, floor, tfloor).items() if k not in same}
    styles = roc_styles([a.name for a in audited])

    labels, handles = {}, []
    for a in audited:
        m = a.metrics
        best = " *" if a.name == result.verdict_attack else (" (upper bound)" if a.upper_bound else "")
        level = min(m.tpr_at_fpr) if m.tpr_at_fpr else None
        at = f", TPR {m.tpr_at_fpr[level]:.2f} @ {level:g}" if level is not None else ""
        labels[a.name] = f"{a.name}{best}: AUC {m.auc:.3f}{at}" + (f" = {same[a.name]}" if a.name in same else "")
    notes = []
    for what, pairs, sep in (("identical curves", same, ", "), ("overlapping within a pixel", near, " ≈ ")):
        groups: dict[str, list[str]] = {}
        for b, a in pairs.items():
            groups.setdefault(a, [a]).append(b)
        if groups:
            notes.append(f"{what}: " + "; ".join(sep.join(g) for g in groups.values()))
    n_entries = len(audited) + 1
    below = n_entries > _LEGEND_INSIDE_MAX
    col_w = 0.75 + max(_text_width(t, 9) for t in labels.values())  # inches, the handle included
    ncol = 2 if below and 2 * col_w + 0.4 <= 10.0 else 1
    width = max(8.0, ncol * col_w + 0.4) if below else 6.4
    title = "\n".join(textwrap.fill(n, int((width - 0.6) / 0.065), subsequent_indent="  ") for n in notes) or None
    legend_rows = -(-n_entries // ncol) + (title.count("\n") + 1 if title else 0)
    legend_h = 0.22 * legend_rows + 0.15 if below else 0.0
    axes_h, top_h, bottom_h = 3.4, 0.4, 0.6
    height = top_h + axes_h + bottom_h + legend_h
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.25 / width, bottom=(bottom_h + legend_h) / height,
                        top=1 - top_h / height)
    ax = fig.add_subplot()

    for a in audited:
        m, s = a.metrics, styles[a.name]
        (line,) = ax.plot(np.maximum(m.fpr, floor), np.maximum(m.tpr, tfloor), color=s["color"],
                          linestyle=s["linestyle"], linewidth=s["linewidth"], alpha=0.9, marker=s["marker"],
                          markevery=s["markevery"], markersize=6, markerfacecolor="none", markeredgewidth=1.4,
                          label=labels[a.name])
        handles.append(line)
    grid = np.logspace(np.log10(floor), 0, 100)
    (chance,) = ax.plot(grid, grid, color="grey", linestyle=":", linewidth=1.2, label="chance")
    handles.append(chance)
    for level in first.tpr_at_fpr:
        ax.axvline(level, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(tfloor, 1.05)
    ax.set_xlabel(f"false positive rate ({first.n_nonmembers} non-members)")
    ax.set_ylabel(f"true positive rate ({first.n_members} training members)")
    ax.set_title("Attacks on the target model" + (" (* strongest)" if len(audited) > 1 else ""))

    if below:
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.01), ncol=ncol, fontsize=9,
                   title=title, title_fontsize=9, alignment="left", frameon=False, handlelength=3.2,
                   columnspacing=1.5)
    else:
        ax.legend(handles=handles, loc="lower right", fontsize=9, title=title, title_fontsize=9, alignment="left",
                  handlelength=3.2)
    return fig


def attack_roc(result, path: Path) -> Path:
    """ROC of every attack on the real target (members vs fresh non-members) on log-log axes,
    with the chance line: the low-FPR corner, where a confident attack lives, gets the room.
    Curves that coincide stay visible (own line style and marker) and are named in the legend."""
    roc_figure(result).savefig(path, dpi=100)
    return path


# --------------------------------------------------------------------------------------------
# Score histograms

_BINS = 30
_RESOLVED = 4.0  # a group whose middle 80% spans this many bins is resolved; fewer: try a symlog axis


@dataclass(frozen=True)
class ScoreAxis:
    """How a score histogram's x axis is drawn."""

    scale: str                  # "linear" or "symlog"
    lo: float                   # the drawn range (data units)
    hi: float
    bins: np.ndarray            # bin edges in data units, equally wide on the drawn scale
    linthresh: float | None = None  # symlog only: linear within +-linthresh

    @property
    def note(self) -> str:
        """The transform, for the axis label ("" for a plain linear axis)."""
        if self.scale == "symlog":
            return f"symmetric-log scale, linear within ±{self.linthresh:g}"
        return ""


def _finite(values) -> np.ndarray:
    v = np.asarray(values if values is not None else [], dtype=float).ravel()
    return v[np.isfinite(v)]


def occupied_bins(values, bins: np.ndarray) -> int:
    """How many of the bins hold at least one of the (finite) values."""
    v = _finite(values)
    counts, _ = np.histogram(np.clip(v, bins[0], bins[-1]), bins=bins)
    return int(np.count_nonzero(counts))


def _bulk_in_bins(values, axis: "ScoreAxis") -> float:
    """How many bin widths the middle 80% of the values (10th to 90th percentile) spans on the
    drawn scale: below about one, the group is a single bar."""
    v = _finite(values)
    if len(v) < 2:
        return float("inf")
    q = np.quantile(v, [0.1, 0.9])
    if axis.scale == "symlog":
        from matplotlib.scale import SymmetricalLogTransform

        t = SymmetricalLogTransform(10, axis.linthresh, 1.0).transform
        a, b, lo, hi = t(np.array([q[0], q[1], axis.lo, axis.hi]))
    else:
        a, b, lo, hi = q[0], q[1], axis.lo, axis.hi
    return float((b - a) / ((hi - lo) / (len(axis.bins) - 1)))


def _symlog_edges(lo: float, hi: float, linthresh: float, n: int) -> np.ndarray:
    from matplotlib.scale import SymmetricalLogTransform

    t = SymmetricalLogTransform(10, linthresh, 1.0)
    a, b = t.transform(np.array([lo, hi]))
    edges = t.inverted().transform(np.linspace(a, b, n + 1))
    edges[0], edges[-1] = lo, hi
    return edges


def score_axis(ins, outs, threshold: float | None = None, marked: float | None = None,
               is_probability: bool = False, n_bins: int = _BINS) -> ScoreAxis:
    """The x axis of a members-vs-non-members score histogram.

    Probabilities: linear over [0, 1]. Other scores: linear over their range, unless a group's
    bulk (its central 90%) would then sit in fewer than a handful of bins, as a LiRA ratio's
    heavy member tail squeezes the non-members into one; then a symmetric-log axis, with the
    linear half-width (a power of ten) that best resolves the worse-resolved group."""
    extra = [x for x in (threshold, marked) if x is not None]
    pooled = _finite(np.concatenate([_finite(ins), _finite(outs), _finite(extra)]))
    if is_probability:
        lo = min(0.0, float(pooled.min())) if len(pooled) else 0.0
        hi = max(1.0, float(pooled.max())) if len(pooled) else 1.0
        return ScoreAxis("linear", lo, hi, np.linspace(lo, hi, n_bins + 1))
    lo, hi = (float(pooled.min()), float(pooled.max())) if len(pooled) else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    linear = ScoreAxis("linear", lo, hi, np.linspace(lo, hi, n_bins + 1))

    def worst(axis):
        return min(_bulk_in_bins(ins, axis), _bulk_in_bins(outs, axis))

    lin = worst(linear)
    if lin >= _RESOLVED:
        return linear
    top = max(abs(lo), abs(hi))
    best, best_w = linear, max(2 * lin, lin + 1.0)  # symlog must at least double the worse group's spread
    for k in range(int(np.floor(np.log10(top))), int(np.floor(np.log10(top))) - 6, -1):
        lt = 10.0 ** k
        cand = ScoreAxis("symlog", lo, hi, _symlog_edges(lo, hi, lt, n_bins), lt)
        w = worst(cand)
        if w > best_w:
            best, best_w = cand, w
    if best.scale == "symlog":  # a third more bins: the log decades hold the detail a linear axis lost
        n = n_bins + n_bins // 3
        best = ScoreAxis("symlog", lo, hi, _symlog_edges(lo, hi, best.linthresh, n), best.linthresh)
    return best


def _line_labels(ax, lines: Sequence[tuple[float, str, str]]) -> None:
    """Write each vertical line's label beside it at the top of the axes, the lower line's to
    its left and the higher's to its right, so two lines on (almost) the same spot stay legible."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    order = sorted(lines, key=lambda t: t[0])
    for i, (x, text, colour) in enumerate(order):
        left = i == 0 and len(order) > 1
        ax.annotate(text, (x, 0.97), xycoords=trans, xytext=(-4 if left else 4, 0), textcoords="offset points",
                    rotation=90, ha="right" if left else "left", va="top", fontsize="small", color=colour,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


def _scores_in_out(ax, ins, outs, labels, threshold, marked, marked_label, xlabel,
                   is_probability: bool = False) -> ScoreAxis:
    """Two score histograms on shared bins, the decision threshold and one score marked, both
    labelled with their values. Infinite scores are drawn at the range's edges (counted in the
    legend). Returns the axis decision."""
    axis = score_axis(ins, outs, threshold, marked, is_probability)
    lo, hi = axis.lo, axis.hi
    for values, label, colour in ((ins, labels[0], "tab:red"), (outs, labels[1], "tab:blue")):
        v = np.asarray(values, dtype=float)
        n_inf = int(np.count_nonzero(np.isinf(v)))
        if n_inf:
            label += f"; {n_inf} infinite, drawn at the edge"
        ax.hist(np.clip(v[~np.isnan(v)], lo, hi), bins=axis.bins, alpha=0.6, color=colour, label=label)
    if axis.scale == "symlog":
        ax.set_xscale("symlog", linthresh=axis.linthresh, linscale=1.0)
    pad = 0.01 * (hi - lo) if axis.scale == "linear" else 0.0
    ax.set_xlim(lo - pad, hi + pad)
    lines = []
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="dimgrey", linestyle=":", linewidth=2, zorder=3,
                   label=f"decision threshold {threshold:.3g}")
        lines.append((float(threshold), f"threshold {threshold:.3g}", "dimgrey"))
    if marked is not None:
        x = min(max(marked, lo), hi)
        ax.axvline(x, color="black", linestyle="--", linewidth=2, zorder=3, label=f"{marked_label}: {marked:.3g}")
        lines.append((float(x), f"{marked_label} {marked:.3g}", "black"))
    _line_labels(ax, lines)
    ax.set_xlabel(f"{xlabel} ({axis.note})" if axis.note else xlabel)
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    return axis


def score_histogram_figure(result, attack):
    """The figure :func:`score_histogram` saves."""
    fig, ax = _figure(height=4.4)
    rec = result.target_record
    marked = rec.attack_scores[attack.name][0] if rec is not None and attack.name in rec.attack_scores else None
    _scores_in_out(ax, attack.member_scores, attack.nonmember_scores,
                   (f"members ({len(attack.member_scores)})", f"fresh non-members ({len(attack.nonmember_scores)})"),
                   attack.threshold, marked, rec.name if rec is not None else "", attack.score_label,
                   is_probability=bool(getattr(attack, "score_is_probability", False)))
    ax.set_ylabel("records")
    ax.set_title(f"{attack.name} ({attack.kind}): AUC {attack.metrics.auc:.3f}")
    return fig


def score_histogram(result, attack, path: Path) -> Path:
    """One attack's scores, members vs non-members, with the individual's score marked; a
    heavy-tailed score gets a symmetric-log axis so both groups are resolved."""
    score_histogram_figure(result, attack).savefig(path, dpi=100)
    return path


def game_scores(result, record: str, attack: str, path: Path) -> Path:
    """The individual game: the attack's score for one record over the trials, IN vs OUT,
    with the single run's score (the scenario's own target) marked."""
    rows = [r for r in result.trials if r["record"] == record and r["attack"] == attack]
    ins = np.array([r["score"] for r in rows if r["included"]])
    outs = np.array([r["score"] for r in rows if not r["included"]])
    m = result.metrics[record][attack]
    label = result.score_labels[attack]
    single = result.single_run[record][attack]
    values = _finite(np.concatenate([ins, outs, [single]]))
    probability = "probability" in label and bool(len(values)) and values.min() >= 0 and values.max() <= 1
    fig, ax = _figure(height=4.4)
    _scores_in_out(ax, ins, outs, (f"IN ({len(ins)} trials)", f"OUT ({len(outs)} trials)"),
                   result.thresholds[attack], single, "single run", label, is_probability=probability)
    ax.set_ylabel("trials")
    ax.set_title(f"{record} · {attack}: AUC {m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}], "
                 f"accuracy {m.accuracy:.2f}", fontsize="medium")
    fig.savefig(path, dpi=100)
    return path
