"""What an attack reads off a model's class probabilities, one row per record.

``classes`` are the model's class labels (the columns of ``probabilities``, as in
scikit-learn's ``classes_``); ``y`` holds each record's true label.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("max_probability", "true_label_probability", "sorted_probabilities", "entropy", "true_label_logit")
_TINY = np.finfo(float).tiny


def label_columns(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Column of each record's true label in a probability matrix."""
    classes = np.asarray(classes)
    y = np.asarray(y)
    cols = np.searchsorted(classes, y)
    cols = np.clip(cols, 0, len(classes) - 1)
    bad = classes[cols] != y
    if np.any(bad):
        raise ValueError(f"label(s) {sorted(set(y[bad].tolist()))} are not among the model's classes "
                         f"{classes.tolist()}")
    return cols


def _true_column(probabilities: np.ndarray, cols: np.ndarray) -> np.ndarray:
    index = np.broadcast_to(cols[:, None], probabilities.shape[:-1] + (1,))
    return np.take_along_axis(probabilities, index, axis=-1)[..., 0]


def true_label_probability(probabilities: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """p_true: the probability the model gives each record's true label. Works on stacked
    ``(..., n_records, n_classes)`` arrays (one matrix per reference model)."""
    return _true_column(probabilities, label_columns(y, classes))


def true_label_logit(probabilities: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """log p_true - log(1 - p_true), with 1 - p_true taken as the sum of the other classes'
    probabilities (exact where p_true rounds to 1) and both logs floored at the smallest
    positive double, so the statistic is finite even for saturated outputs."""
    cols = label_columns(y, classes)
    p_true = _true_column(probabilities, cols)
    # Zero the true column and sum the rest (adding exact zeros loses nothing).
    is_true = np.arange(probabilities.shape[-1]) == cols[:, None]
    p_rest = np.where(is_true, 0.0, probabilities).sum(axis=-1)
    return np.log(np.maximum(p_true, _TINY)) - np.log(np.maximum(p_rest, _TINY))


def entropy(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, _TINY, 1.0)
    return 0.0 - (probabilities * np.log(p)).sum(axis=-1)  # 0.0 - : no negative zero


def attack_features(probabilities: np.ndarray, y: np.ndarray, classes: np.ndarray,
                    names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The named features side by side: ``(n_records, n_columns)``."""
    cols = []
    for name in names:
        if name == "max_probability":
            cols.append(probabilities.max(axis=1)[:, None])
        elif name == "true_label_probability":
            cols.append(true_label_probability(probabilities, y, classes)[:, None])
        elif name == "sorted_probabilities":
            cols.append(-np.sort(-probabilities, axis=1))
        elif name == "entropy":
            cols.append(entropy(probabilities)[:, None])
        elif name == "true_label_logit":
            cols.append(true_label_logit(probabilities, y, classes)[:, None])
        else:
            raise ValueError(f"unknown attack feature {name!r}; available: {', '.join(FEATURES)}")
    return np.hstack(cols)
