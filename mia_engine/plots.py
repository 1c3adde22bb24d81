"""Figures of a scenario result, drawn with Matplotlib's object API (no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

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


_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def attack_roc(result, path: Path) -> Path:
    """ROC of every attack on the real target (members vs fresh non-members) on log-log axes,
    with the chance line: the low-FPR corner, where a confident attack lives, gets the room."""
    audited = [a for a in result.attacks.values() if a.metrics is not None]
    first = audited[0].metrics
    fig, ax = _figure()
    floor = 1.0 / (2 * first.n_nonmembers)
    tfloor = 1.0 / (2 * first.n_members)
    for i, a in enumerate(audited):
        m = a.metrics
        best = " *" if a.name == result.verdict_attack else (" (upper bound)" if a.upper_bound else "")
        level = min(m.tpr_at_fpr) if m.tpr_at_fpr else None
        at = f", TPR {m.tpr_at_fpr[level]:.2f} @ {level:g}" if level is not None else ""
        ax.plot(np.maximum(m.fpr, floor), np.maximum(m.tpr, tfloor), color=_COLOURS[i % len(_COLOURS)],
                label=f"{a.name}{best} (AUC {m.auc:.3f}{at})")
    grid = np.logspace(np.log10(floor), 0, 100)
    ax.plot(grid, grid, color="grey", linestyle=":", label="chance")
    for level in first.tpr_at_fpr:
        ax.axvline(level, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(tfloor, 1.05)
    ax.set_xlabel(f"false positive rate ({first.n_nonmembers} non-members)")
    ax.set_ylabel(f"true positive rate ({first.n_members} training members)")
    ax.set_title("Attacks on the target model" + (" (* strongest)" if len(audited) > 1 else ""))
    ax.legend(loc="lower right", fontsize="x-small")
    fig.savefig(path, dpi=100)
    return path


def _scores_in_out(ax, ins, outs, labels, threshold, marked, marked_label, xlabel) -> None:
    """Two score histograms on shared bins, the decision threshold and one score marked.
    Infinite scores are left out of the range and clipped to its edges."""
    both = np.concatenate([ins, outs, [marked] if marked is not None else []])
    finite = both[np.isfinite(both)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    ax.hist(np.clip(ins, lo, hi), bins=bins, alpha=0.6, color="tab:red", label=labels[0])
    ax.hist(np.clip(outs, lo, hi), bins=bins, alpha=0.6, color="tab:blue", label=labels[1])
    ax.axvline(threshold, color="grey", linestyle=":", label=f"decision threshold {threshold:.3g}")
    if marked is not None:
        ax.axvline(min(max(marked, lo), hi), color="black", linestyle="--", label=f"{marked_label}: {marked:.3g}")
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper center", fontsize="small")


def score_histogram(result, attack, path: Path) -> Path:
    """One attack's scores, members vs non-members, with the individual's score marked."""
    fig, ax = _figure()
    rec = result.target_record
    marked = rec.attack_scores[attack.name][0] if rec is not None and attack.name in rec.attack_scores else None
    _scores_in_out(ax, attack.member_scores, attack.nonmember_scores,
                   (f"members ({len(attack.member_scores)})", f"fresh non-members ({len(attack.nonmember_scores)})"),
                   attack.threshold, marked, rec.name if rec is not None else "", attack.score_label)
    ax.set_ylabel("records")
    ax.set_title(f"{attack.name} ({attack.kind}): AUC {attack.metrics.auc:.3f}")
    fig.savefig(path, dpi=100)
    return path


def game_scores(result, record: str, attack: str, path: Path) -> Path:
    """The individual game: the attack's score for one record over the trials, IN vs OUT,
    with the single run's score (the scenario's own target) marked."""
    rows = [r for r in result.trials if r["record"] == record and r["attack"] == attack]
    ins = np.array([r["score"] for r in rows if r["included"]])
    outs = np.array([r["score"] for r in rows if not r["included"]])
    m = result.metrics[record][attack]
    fig, ax = _figure()
    _scores_in_out(ax, ins, outs, (f"IN ({len(ins)} trials)", f"OUT ({len(outs)} trials)"),
                   result.thresholds[attack], result.single_run[record][attack], "single run",
                   result.score_labels[attack])
    ax.set_ylabel("trials")
    ax.set_title(f"{record} · {attack}: AUC {m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}], "
                 f"accuracy {m.accuracy:.2f}", fontsize="medium")
    fig.savefig(path, dpi=100)
    return path
