"""Leakage per slice of the audited records: is a group of people more exposed than the whole?

An attack's headline figures average over everyone it scored. Output checkers also need to see
whether some people are easier to pick out: the records of one class, those with one value of a
categorical column (a region, a sex, a diagnosis), or those the target model fits best (lowest
loss, where memorisation shows first). :func:`subgroup_slices` scores each such slice with the
same metrics as the whole audit (:func:`mia_engine.metrics.attack_metrics`), restricted to the
slice's members and non-members.

A slice is listed even when it cannot be measured: one with no members or no non-members gets
``None`` for every figure, and one with fewer than the minimum cell count of either is flagged
``small`` rather than hidden, so the checker sees where the evidence is thin.

scipy, scikit-learn and pandas are imported inside the functions (through ``attack_metrics``
and :func:`_missing_mask`): the package keeps start-up light.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["subgroup_slices", "subgroup_summary", "MISSING"]

MISSING = "missing"  # the value of the slice of records with no value (None, NaN) in a column

# The figures a slice reports, taken from AttackMetrics.summary() (plus the TPR-at-FPR keys).
_METRIC_KEYS = ("auc", "auc_ci_low", "auc_ci_high", "auc_pvalue")


def subgroup_slices(member: np.ndarray, scores: np.ndarray, *, label: np.ndarray, label_names: Mapping[int, str],
                    columns: Mapping[str, np.ndarray], loss: np.ndarray | None, fpr_levels: Sequence[float],
                    threshold: float, min_cell_count: int, loss_bins: int = 4) -> list[dict]:
    """The attack's metrics per class, per value of each column in ``columns`` and per loss bin.

    Arguments, one entry per audited record where an array:

    * ``member``: True for a member (a training row of the target), False for a non-member.
    * ``scores``: the attack's score (higher = more likely a member); finite.
    * ``label``: the record's encoded class; ``label_names`` maps each code to the data's label.
      Every class in ``label_names`` gets a slice (in order of its code), even one with no
      records; a code in ``label`` missing from ``label_names`` is an error.
    * ``columns``: column name -> the records' values, read as categories (strings or numbers).
      One slice per distinct value, named ``str(value)`` (values with the same string form share
      a slice), in sorted order of those names; records with no value (None, NaN, pandas' NA)
      form one more slice, ``"missing"``, listed last.
    * ``loss``: the target model's loss per record (-log p of the true label), or None for no
      loss slices. The records are cut into ``loss_bins`` bins at the quantiles of the loss over
      all audited records, members and non-members together (``np.quantile``'s default linear
      interpolation): bin k holds loss in (q_k, q_{k+1}], the first bin also its lower end, as
      in ``pandas.qcut``. Records of equal loss always share a bin; when many tie (say a mass
      of near-zero loss on an overfitted model) quantiles coincide and a bin can be empty --
      it is listed all the same, with zero counts. Bins are named by their quantile range,
      ``"0-25%"``, ``"25-50%"``, ... (percentages to two decimals at most).
    * ``fpr_levels``, ``threshold``: as for :func:`~mia_engine.metrics.attack_metrics`.
    * ``min_cell_count``: the TRE's minimum cell count (a whole number >= 1).

    Returns one dict per slice -- classes first, then each column in the order given, then the
    loss bins -- with plain Python values::

        {"by": "class" | "feature:<name>" | "loss_percentile", "value": str,
         "n_members": int, "n_nonmembers": int,
         "auc", "auc_ci_low", "auc_ci_high", "auc_pvalue": float | None,
         "tpr_at_fpr_<level>": float | None,  # plus "tpr_at_fpr_<level>_resolved": False when
                                              # the slice's non-members cannot resolve the level
         "advantage": float | None, "small": bool}

    The figures are those of ``attack_metrics`` on the slice's members vs its non-members; NaN
    becomes None (so a slice with a single member or non-member has no AUC interval). A slice
    with no members or no non-members has nothing to compare: every figure is None and no
    ``_resolved`` flag is added.

    ``small`` is ``min(n_members, n_nonmembers) < min_cell_count``. A slice's figures rest on
    its members and non-members; when either group has fewer people than the minimum cell
    count, the figures describe that handful -- as a table cell below the threshold would --
    and are both unreliable and potentially disclosive about them. Small slices are flagged,
    not dropped, so that their existence is visible to the checker.

    Raises ValueError for arrays of different lengths (naming them), an empty audit, scores or
    loss that are NaN or infinite, members that are not booleans, a code without a name, and
    settings out of range.
    """
    member_arr = _members(member)
    n = len(member_arr)
    if n == 0:
        raise ValueError("no audited records: member is empty")
    score_arr = _one_d(scores, "scores", n, dtype=float)
    if not np.all(np.isfinite(score_arr)):
        raise ValueError("scores contain NaN or infinite values")
    label_arr = _one_d(label, "label", n)
    column_arrs = {str(name): _one_d(values, f"column {name!r}", n, dtype=object)
                   for name, values in columns.items()}
    loss_arr = None
    if loss is not None:
        loss_arr = _one_d(loss, "loss", n, dtype=float)
        if not np.all(np.isfinite(loss_arr)):
            raise ValueError("loss contains NaN or infinite values (clip the probabilities before taking -log)")
    levels = _levels(fpr_levels)
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("the decision threshold is NaN")
    min_cell_count = _whole(min_cell_count, "min_cell_count")
    loss_bins = _whole(loss_bins, "loss_bins")

    def measure(by: str, value: str, mask: np.ndarray) -> dict:
        return _slice(by, value, score_arr[mask & member_arr], score_arr[mask & ~member_arr],
                      levels, threshold, min_cell_count)

    slices = []
    for code, name in _classes(label_arr, label_names):
        slices.append(measure("class", name, label_arr == code))
    for name, values in column_arrs.items():
        for value, mask in _categories(values):
            slices.append(measure(f"feature:{name}", value, mask))
    if loss_arr is not None:
        for value, mask in _loss_bins(loss_arr, loss_bins):
            slices.append(measure("loss_percentile", value, mask))
    return slices


def subgroup_summary(attack: str, slices: list[dict], min_cell_count: int, fpr_levels) -> dict:
    """The slices of one attack as one JSON-able record, with the count of small slices."""
    return {
        "attack": str(attack),
        "min_cell_count": int(min_cell_count),
        "fpr_levels": [float(level) for level in fpr_levels],
        "slices": slices,
        "n_small": sum(1 for s in slices if s["small"]),
    }


# ---------------------------------------------------------------------------------------------
# One slice


def _slice(by: str, value: str, members: np.ndarray, nonmembers: np.ndarray, levels: tuple[float, ...],
           threshold: float, min_cell_count: int) -> dict:
    n_m, n_n = int(members.size), int(nonmembers.size)
    out: dict = {"by": by, "value": value, "n_members": n_m, "n_nonmembers": n_n}
    if n_m and n_n:
        from mia_engine.metrics import attack_metrics

        summary = attack_metrics(members, nonmembers, threshold, levels).summary()
        out.update({key: summary[key] for key in _METRIC_KEYS})
        for level in levels:
            key = f"tpr_at_fpr_{level:g}"
            out[key] = summary[key]
            if f"{key}_resolved" in summary:
                out[f"{key}_resolved"] = summary[f"{key}_resolved"]
        out["advantage"] = summary["advantage"]
    else:  # attack_metrics needs both groups: nothing to compare
        out.update(dict.fromkeys(_METRIC_KEYS))
        out.update({f"tpr_at_fpr_{level:g}": None for level in levels})
        out["advantage"] = None
    out["small"] = min(n_m, n_n) < min_cell_count
    return out


# ---------------------------------------------------------------------------------------------
# The slices of each kind: (value, mask over records)


def _classes(label: np.ndarray, label_names: Mapping[int, str]) -> list[tuple[object, str]]:
    names = {}
    for code, name in label_names.items():
        names[_code(code)] = str(name)
    present = {_code(v) for v in np.unique(label).tolist()}
    unknown = sorted(present - names.keys(), key=str)
    if unknown:
        raise ValueError(f"label code(s) {unknown} have no entry in label_names (known: {sorted(names, key=str)})")
    return [(code, names[code]) for code in sorted(names, key=_sort_key)]


def _code(value):
    # Integral floats (labels read back as 0.0, 1.0) compare equal to ints; keep them as ints.
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _categories(values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    missing = _missing_mask(values)
    names = np.array([MISSING if gone else str(v) for v, gone in zip(values.tolist(), missing)], dtype=object)
    distinct = sorted(set(names.tolist()) - {MISSING})
    if np.any(names == MISSING):
        distinct.append(MISSING)  # the records with no value (and any literal "missing") come last
    return [(value, names == value) for value in distinct]


def _missing_mask(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _loss_bins(loss: np.ndarray, bins: int) -> list[tuple[str, np.ndarray]]:
    inner = np.quantile(loss, np.arange(1, bins) / bins)  # the edges between bins
    # side="left": a loss equal to an edge goes to the bin below it, so bin k is (q_k, q_{k+1}]
    # and the first bin starts at the minimum; equal losses always land together.
    index = np.searchsorted(inner, loss, side="left")
    return [(f"{_percent(100 * k / bins)}-{_percent(100 * (k + 1) / bins)}%", index == k) for k in range(bins)]


def _percent(x: float) -> str:
    return f"{round(x, 2):g}"


# ---------------------------------------------------------------------------------------------
# Input checks


def _members(member) -> np.ndarray:
    a = np.asarray(member)
    if a.ndim != 1:
        raise ValueError(f"member must be one-dimensional, got shape {a.shape}")
    if a.dtype == bool:
        return a
    if a.size == 0 or (a.dtype.kind in "iuf" and np.all((a == 0) | (a == 1))):
        return a.astype(bool)
    raise ValueError(f"member must hold booleans (True for a member), got dtype {a.dtype}")


def _one_d(values, what: str, n: int, dtype=None) -> np.ndarray:
    a = np.asarray(values, dtype=dtype)
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"{what} has {len(a)} entries but member has {n}: one per audited record")
    return a


def _levels(fpr_levels) -> tuple[float, ...]:
    levels = tuple(float(v) for v in fpr_levels)
    for level in levels:
        if not 0 < level <= 1:
            raise ValueError(f"an FPR level must lie in (0, 1], got {level}")
    return levels


def _whole(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)
