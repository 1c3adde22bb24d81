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
    if rec is not None:
        ax.axvline(rec.max_confidence, color="black", linestyle="--",
                   label=f"{rec.name}: {rec.max_confidence:.2f} (membership p={rec.membership_probability:.2f})")
    ax.set_xlabel("maximum class probability")
    ax.set_ylabel("records")
    ax.set_title(f"Shadow model confidences · {result.population}")
    ax.legend(loc="upper left", fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def attack_roc(result, path: Path) -> Path:
    """ROC of the attack on the real target (members vs fresh non-members), log-scaled FPR."""
    a = result.audit
    fig, ax = _figure()
    floor = 1.0 / (2 * a.n_nonmembers)
    fpr = np.maximum(a.fpr, floor)
    ax.plot(fpr, a.tpr, color="tab:red", label=f"shadow attack (AUC {a.auc:.3f})")
    grid = np.logspace(np.log10(floor), 0, 100)
    ax.plot(grid, grid, color="grey", linestyle=":", label="chance")
    for level, tpr in a.tpr_at_fpr.items():
        ax.plot([level], [tpr], "o", color="black", markersize=4)
        ax.annotate(f"TPR {tpr:.2f} @ FPR {level:g}", (level, tpr), textcoords="offset points",
                    xytext=(5, -12), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(f"false positive rate (log; {a.n_nonmembers} fresh non-members)")
    ax.set_ylabel(f"true positive rate ({a.n_members} training members)")
    ax.set_title("Attack on the target model")
    ax.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=100)
    return path
