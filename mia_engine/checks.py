"""Output checks a trusted research environment (TRE) runs on a fitted model before release.

Plain structural checks, no attack needed (the ideas follow SACRO-ML's; the code is our own):

- :func:`embedded_rows`: does the model keep training rows verbatim (support vectors, a kNN's
  fitted data)? Checkers treat such a model as disclosive on sight: publishing it publishes rows.
- :func:`tree_leaves`: how many training rows land in each leaf of a tree model; a leaf with
  fewer rows than the TRE's minimum cell size (and above all a class-pure one) describes a
  handful of individuals.
- :func:`generalisation_gap`: train vs test accuracy and log loss (overfitting).
- :func:`residual_dof`: training rows left over after the model's parameters.

Models are what the engine fits: a plain estimator, a ``Pipeline`` (preprocessing, then the
model) or a :class:`~mia_engine.models.FrameModel` around a researcher's own estimator; the
checks look through those wrappers (and calibration, bagging, voting, one-vs-rest, ...) to the
estimators that hold the fitted state. ``X_train`` is the engine's float matrix (categories as
codes, missing as NaN) the model was fitted on. Every result has ``summary()``: plain JSON-able
Python, which never includes rows or row positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["EmbeddedRows", "LeafCheck", "Gap", "embedded_rows", "tree_leaves", "generalisation_gap", "residual_dof",
           "final_estimators"]


# ---------------------------------------------------------------------------------------------
# Looking through wrappers


@dataclass
class _Leaf:
    """A fitted estimator inside the model. ``rows``: for each row it was fitted on, that row's
    position in ``X_train`` (None: not known). ``steps``: what turns ``X_train`` into the input
    it saw (preprocessing, a FrameModel's DataFrame, a bagged estimator's feature subset)."""

    estimator: Any
    rows: np.ndarray | None
    steps: tuple[Callable[[Any], Any], ...] = ()

    def represent(self, X: np.ndarray):
        """``X`` as this estimator saw it (dense, float)."""
        Z: Any = X
        for step in self.steps:
            Z = step(Z)
        if hasattr(Z, "toarray"):
            Z = Z.toarray()
        return np.asarray(Z, dtype=float)


def _module(est) -> str:
    return type(est).__module__ or ""


def _is_fitted(est) -> bool:
    try:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(est)
        return True
    except Exception:
        return False


def _columns(features):
    features = np.asarray(features)
    return lambda Z: Z[:, features]


def _walk(obj, rows: np.ndarray | None, steps: tuple, out: list[_Leaf]) -> None:
    from .models import FrameModel

    if obj is None or isinstance(obj, str):  # "passthrough" / "drop"
        return
    if isinstance(obj, FrameModel) or (hasattr(obj, "_frame") and hasattr(obj, "estimator")):
        _walk(obj.estimator, rows, steps + (obj._frame,), out)
        return
    pipeline_steps = getattr(obj, "steps", None)
    if isinstance(pipeline_steps, list) and pipeline_steps and hasattr(obj, "named_steps"):
        prefix = tuple(s.transform for _, s in pipeline_steps[:-1] if s is not None and not isinstance(s, str))
        _walk(pipeline_steps[-1][1], rows, steps + prefix, out)
        return
    calibrated = getattr(obj, "calibrated_classifiers_", None)
    if calibrated is not None:
        # ensemble=False: one classifier fitted on every row. ensemble=True: one per CV fold,
        # each fitted on that fold's training part (positions unknown here: matched later).
        for cc in calibrated:
            _walk(cc.estimator, rows if len(calibrated) == 1 else None, steps, out)
        return
    if _stored(obj) is not None or _trees(obj):
        out.append(_Leaf(obj, rows, steps))
        return
    members = getattr(obj, "estimators_", None)
    if members is not None and hasattr(obj, "estimators_samples_") and hasattr(obj, "estimators_features_"):
        # Bagging: estimator i saw rows estimators_samples_[i] (bootstrap: with repeats) and
        # columns estimators_features_[i].
        for est, samples, feats in zip(members, obj.estimators_samples_, obj.estimators_features_):
            _walk(est, None if rows is None else rows[np.asarray(samples)], steps + (_columns(feats),), out)
        return
    module = _module(obj)
    if members is not None and module.startswith(("sklearn.ensemble._voting", "sklearn.ensemble._stacking",
                                                  "sklearn.multiclass", "sklearn.multioutput")):
        # Each fitted on every row, except one-vs-one (the rows of two classes each).
        sub = None if type(obj).__name__ == "OneVsOneClassifier" else rows
        for est in members:
            _walk(est, sub, steps, out)
        return
    # A wrapper holding a fitted estimator (self-training, RFE, FrozenEstimator, ...); sklearn's
    # ensembles keep an unfitted template in ``estimator_`` / ``estimator``, skipped here.
    for attr in ("estimator_", "estimator"):
        inner = getattr(obj, attr, None)
        if inner is not None and hasattr(inner, "fit") and _is_fitted(inner):
            _walk(inner, None, steps, out)
            return
    out.append(_Leaf(obj, rows, steps))


def _leaves(model, n_train: int | None = None) -> list[_Leaf]:
    out: list[_Leaf] = []
    _walk(model, None if n_train is None else np.arange(n_train), (), out)
    return out


def final_estimators(model) -> list:
    """The fitted estimators inside ``model`` that hold its state (one for a plain estimator, a
    Pipeline or a FrameModel; one per fold for an ensemble calibration; ...)."""
    return [leaf.estimator for leaf in _leaves(model)]


# ---------------------------------------------------------------------------------------------
# 1. Training rows kept verbatim


@dataclass
class EmbeddedRows:
    """Which training rows the model keeps verbatim.

    ``n_rows_stored``: training rows whose values the fitted model holds; ``share`` of
    ``n_train``. ``named``: for each named individual, whether their row is among them (None:
    the model stores rows whose positions could not be told). ``indices``: the stored rows'
    positions in ``X_train`` (None when not known); never part of the summary."""

    family: str
    stores_rows: bool
    n_rows_stored: int
    n_train: int
    share: float
    how: str
    named: dict[str, bool | None] = field(default_factory=dict)
    indices: np.ndarray | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        return {"family": str(self.family), "stores_rows": bool(self.stores_rows),
                "n_rows_stored": int(self.n_rows_stored), "n_train": int(self.n_train), "share": float(self.share),
                "how": str(self.how), "named": {str(k): None if v is None else bool(v) for k, v in self.named.items()}}


def _stored(est):
    """``(how, positions, vectors, n_fit)`` for an estimator that keeps rows verbatim: the
    positions of the stored rows among the rows it was fitted on, the stored rows themselves
    (as it saw them) and how many rows it was fitted on. None for every other estimator."""
    name = type(est).__name__
    if _module(est).startswith("sklearn.svm") and hasattr(est, "support_") and hasattr(est, "support_vectors_"):
        shape = getattr(est, "shape_fit_", None)
        return ("support vectors", np.asarray(est.support_, dtype=np.int64), est.support_vectors_,
                int(shape[0]) if shape is not None else None)
    if hasattr(est, "_fit_X") and hasattr(est, "n_samples_fit_"):
        how = "the fitted data (radius neighbours)" if name.startswith("Radius") else "the fitted data (kNN)"
        n = int(est.n_samples_fit_)
        return how, np.arange(n), est._fit_X, n
    if name in ("LabelPropagation", "LabelSpreading") and hasattr(est, "X_"):
        n = int(np.shape(est.X_)[0])
        return "the fitted data (label propagation)", np.arange(n), est.X_, n
    if name == "GaussianProcessClassifier" and hasattr(est, "base_estimator_"):
        base = est.base_estimator_
        inner = getattr(base, "estimators_", None)
        X_ = getattr(inner[0] if inner else base, "X_train_", None)
        if X_ is not None:
            n = int(np.shape(X_)[0])
            return "the fitted data (Gaussian process)", np.arange(n), X_, n
    if hasattr(est, "X_train_") and _module(est).startswith("sklearn."):
        n = int(np.shape(est.X_train_)[0])
        return f"the fitted data ({name})", np.arange(n), est.X_train_, n
    return None


def _row_keys(Z: np.ndarray) -> list[bytes]:
    Z = np.ascontiguousarray(Z, dtype=np.float64) + 0.0      # -0.0 -> 0.0
    Z[np.isnan(Z)] = np.nan                                  # one NaN bit pattern
    return [r.tobytes() for r in Z]


def _match(vectors, Z: np.ndarray) -> np.ndarray | None:
    """Positions of the rows of ``Z`` equal (NaN-equal; to 1e-9 relative if not bit-equal) to
    one of ``vectors``; None when they cannot be compared."""
    if hasattr(vectors, "toarray"):
        vectors = vectors.toarray()
    V = np.asarray(vectors, dtype=float)
    if V.ndim != 2 or V.shape[1] != Z.shape[1]:
        return None
    where: dict[bytes, list[int]] = {}
    for i, k in enumerate(_row_keys(Z)):
        where.setdefault(k, []).append(i)
    found: set[int] = set()
    for v, k in zip(V, _row_keys(V)):
        hit = where.get(k)
        if hit is None:
            close = np.all(np.isclose(Z, v, rtol=1e-9, atol=1e-12, equal_nan=True), axis=1)
            hit = np.flatnonzero(close).tolist()
            if not hit:
                return None      # a stored row that is not a training row: not the same data
        found.update(hit)
    return np.asarray(sorted(found), dtype=np.int64)


def _same_row(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of ``B``: equal to ``a``, NaN equal to NaN."""
    return np.all((B == a) | (np.isnan(B) & np.isnan(a)), axis=1)


def embedded_rows(model, X_train, named: Mapping[str, Any] | None = None) -> EmbeddedRows:
    """Which of ``X_train``'s rows the fitted ``model`` keeps verbatim.

    - SVC / NuSVC (any ``sklearn.svm`` model with ``support_``): the support vectors.
      ``support_`` gives the positions of the rows the SVC was fitted on, so behind
      preprocessing the stored rows are still ``X_train[support_]`` (nothing is inverted).
    - KNeighbors / RadiusNeighbors: every row they were fitted on (``n_samples_fit_``); likewise
      label propagation and Gaussian processes.
    - Anything else (linear models, trees, forests, boosting, naive Bayes, MLP): no rows.

    When an estimator was fitted on part of the rows (one fold of an ensemble calibration,
    one-vs-one) its stored rows are found by comparing them with ``X_train`` brought into the
    estimator's input space (forward through the preprocessing). Bagged estimators' rows are
    known from ``estimators_samples_``. Several estimators: the union of their rows.

    ``named``: name -> a row in ``X_train``'s encoding; ``named[name]`` in the result says
    whether that row equals (NaN-equal) one of the stored training rows.
    """
    X = np.asarray(X_train, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X_train must be a 2-D matrix, got shape {X.shape}")
    n_train = len(X)
    leaves = _leaves(model, n_train)
    families = list(dict.fromkeys(type(leaf.estimator).__name__ for leaf in leaves))
    hows: list[str] = []
    located: set[int] = set()
    unlocated = 0
    stores = False
    for leaf in leaves:
        found = _stored(leaf.estimator)
        if found is None:
            continue
        stores = True
        how, positions, vectors, n_fit = found
        if how not in hows:
            hows.append(how)
        idx = None
        if leaf.rows is not None and n_fit is not None and len(leaf.rows) == n_fit:
            idx = leaf.rows[positions]
        elif leaf.rows is None and n_fit == n_train:
            idx = positions          # fitted on the training rows as given
        else:
            try:
                idx = _match(vectors, leaf.represent(X))
            except Exception:
                idx = None
        if idx is None:
            unlocated += len(positions)
        else:
            located.update(int(i) for i in idx)
    n_stored = min(n_train, len(located) + unlocated)
    checked: dict[str, bool | None] = {}
    rows_stored = X[sorted(located)] if located else X[:0]
    for name, row in (named or {}).items():
        r = np.asarray(row, dtype=float).ravel()
        if r.shape[0] != X.shape[1]:
            raise ValueError(f"named row {name!r} has {r.shape[0]} values; X_train has {X.shape[1]} columns")
        hit = bool(_same_row(r, rows_stored).any())
        checked[str(name)] = True if hit else (None if unlocated else False)
    return EmbeddedRows(
        family=" + ".join(families) if families else type(model).__name__,
        stores_rows=stores and n_stored > 0,
        n_rows_stored=int(n_stored),
        n_train=int(n_train),
        share=float(n_stored / n_train) if n_train else 0.0,
        how="; ".join(hows) if hows else "none (keeps no training rows verbatim)",
        named=checked,
        indices=None if unlocated else np.asarray(sorted(located), dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# 2. Small leaves of tree models


@dataclass
class LeafCheck:
    """Leaf sizes of a tree model against a minimum cell size.

    ``n_small_leaves``: leaves with fewer than ``min_cell`` training rows (``share_small`` of
    ``n_leaves``, over all ``n_trees``); ``n_pure_small_leaves``: those whose rows are all of
    one class (None when no tree has class counts, as with boosting); ``min_leaf_size``: the
    smallest leaf. ``counted``: which rows a leaf's size counts."""

    family: str
    n_trees: int
    n_leaves: int
    n_small_leaves: int
    share_small: float
    n_pure_small_leaves: int | None
    min_leaf_size: int
    min_cell: int
    counted: str = "training rows"

    def summary(self) -> dict[str, Any]:
        return {"family": str(self.family), "n_trees": int(self.n_trees), "n_leaves": int(self.n_leaves),
                "n_small_leaves": int(self.n_small_leaves), "share_small": float(self.share_small),
                "n_pure_small_leaves": None if self.n_pure_small_leaves is None else int(self.n_pure_small_leaves),
                "min_leaf_size": int(self.min_leaf_size), "min_cell": int(self.min_cell), "counted": str(self.counted)}


def _trees(est) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``(leaf sizes, leaf purity or None)`` per tree of ``est``; empty for non-tree models."""
    tree = getattr(est, "tree_", None)
    if tree is not None and hasattr(tree, "n_node_samples"):
        leaf = tree.children_left == -1
        sizes = np.asarray(tree.n_node_samples)[leaf]
        pure = None
        if hasattr(est, "classes_") and getattr(tree, "value", None) is not None:
            value = np.asarray(tree.value)[leaf]                 # (leaves, outputs, classes)
            pure = np.all(np.count_nonzero(value > 0, axis=2) <= 1, axis=1)
        return [(sizes, pure)]
    predictors = getattr(est, "_predictors", None)
    if predictors is not None:          # HistGradientBoosting: per iteration, per class
        out = []
        for per_iteration in predictors:
            for p in per_iteration:
                nodes = p.nodes
                out.append((np.asarray(nodes["count"][nodes["is_leaf"].astype(bool)], dtype=np.int64), None))
        return out
    members = getattr(est, "estimators_", None)
    if members is not None and _module(est).startswith("sklearn.ensemble"):
        flat = np.asarray(members, dtype=object).ravel() if isinstance(members, np.ndarray) else members
        if len(flat) and all(getattr(m, "tree_", None) is not None for m in flat):
            boosting = "gradient_boosting" in _module(est)
            out = []
            for m in flat:
                for sizes, pure in _trees(m):
                    out.append((sizes, None if boosting else pure))
            return out
    return []


def _counted(est) -> str:
    name = type(est).__name__
    if getattr(est, "bootstrap", False) and hasattr(est, "estimators_"):
        return "distinct in-bag training rows (bootstrap)"
    if "HistGradientBoosting" in name:
        return "training rows (the fitting part when early stopping holds some out)"
    if "GradientBoosting" in name and getattr(est, "subsample", 1.0) < 1.0:
        return "training rows in each round's subsample"
    return "training rows"


def tree_leaves(model, X_train=None, y_train=None, min_cell: int = 10) -> LeafCheck | None:
    """Leaf sizes of a tree model (None for any other model).

    Sizes come from the fitted trees, so ``X_train`` and ``y_train`` are not needed (they are
    accepted so every check takes the same arguments) and preprocessing before the tree does
    not matter:

    - decision / extra trees: ``tree_.n_node_samples`` of each leaf;
    - random forests and extra trees ensembles: the same per tree. With ``bootstrap`` each tree
      is fitted on a bootstrap sample (as sample weights), and ``n_node_samples`` counts the
      *distinct in-bag* rows in a leaf; out-of-bag rows did not shape the tree;
    - gradient boosting: each round's regression trees (``estimators_``), in-bag rows of the
      round's subsample; histogram gradient boosting: the predictors' node ``count``.

    A small leaf has fewer than ``min_cell`` rows; it is class-pure when its class counts
    (``tree_.value``) hold one class only. Boosting trees fit gradients, not classes: their
    purity is not defined and ``n_pure_small_leaves`` is None (with a mix of models, only
    trees with class counts are counted).
    """
    if int(min_cell) < 1:
        raise ValueError(f"min_cell must be at least 1, got {min_cell}")
    trees: list[tuple[np.ndarray, np.ndarray | None]] = []
    families = []
    counted = []
    for leaf in _leaves(model):
        found = _trees(leaf.estimator)
        if found:
            trees.extend(found)
            families.append(type(leaf.estimator).__name__)
            counted.append(_counted(leaf.estimator))
    if not trees:
        return None
    sizes = np.concatenate([s for s, _ in trees])
    small = sizes < int(min_cell)
    with_purity = [(s, p) for s, p in trees if p is not None]
    pure_small = None
    if with_purity:
        pure_small = int(sum(int(np.sum((s < int(min_cell)) & p)) for s, p in with_purity))
    return LeafCheck(
        family=" + ".join(dict.fromkeys(families)),
        n_trees=len(trees),
        n_leaves=int(sizes.size),
        n_small_leaves=int(small.sum()),
        share_small=float(small.mean()) if sizes.size else 0.0,
        n_pure_small_leaves=pure_small,
        min_leaf_size=int(sizes.min()) if sizes.size else 0,
        min_cell=int(min_cell),
        counted="; ".join(dict.fromkeys(counted)),
    )


# ---------------------------------------------------------------------------------------------
# 3. Generalisation gap


@dataclass
class Gap:
    """Train vs test performance. ``accuracy_gap`` = train − test accuracy and
    ``log_loss_gap`` = test − train log loss: positive when the model does better on the rows
    it was trained on."""

    train_accuracy: float
    test_accuracy: float
    accuracy_gap: float
    train_log_loss: float
    test_log_loss: float
    log_loss_gap: float
    n_train: int
    n_test: int

    def summary(self) -> dict[str, Any]:
        return {k: (int(v) if k.startswith("n_") else float(v)) for k, v in self.__dict__.items()}


_EPS = 1e-15


def _accuracy_and_loss(model, X, y) -> tuple[float, float]:
    y = np.asarray(y)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    classes = list(np.asarray(model.classes_).tolist())
    try:
        col = np.asarray([classes.index(v) for v in y.tolist()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"labels {sorted(set(y.tolist()) - set(classes))} are not among the model's classes "
                         f"{classes}") from None
    p = np.clip(proba[np.arange(len(y)), col], _EPS, 1.0)
    predicted = np.asarray(model.predict(X)) if hasattr(model, "predict") else np.asarray(classes)[proba.argmax(1)]
    return float(np.mean(predicted == y)), float(-np.mean(np.log(p)))


def generalisation_gap(model, X_train, y_train, X_test, y_test) -> Gap:
    """Accuracy (of ``model.predict``) and log loss (of ``model.predict_proba``: the mean of
    −log p(true class), p clipped to [1e-15, 1]) on the training and the test rows."""
    train_acc, train_loss = _accuracy_and_loss(model, X_train, y_train)
    test_acc, test_loss = _accuracy_and_loss(model, X_test, y_test)
    return Gap(train_accuracy=train_acc, test_accuracy=test_acc, accuracy_gap=train_acc - test_acc,
               train_log_loss=train_loss, test_log_loss=test_loss, log_loss_gap=test_loss - train_loss,
               n_train=len(np.asarray(y_train)), n_test=len(np.asarray(y_test)))


# ---------------------------------------------------------------------------------------------
# 4. Residual degrees of freedom


def _size(*arrays) -> int:
    return int(sum(np.size(a) for a in arrays))


def _calibrator_parameters(cc) -> int | None:
    total = 0
    for cal in getattr(cc, "calibrators", []):
        if hasattr(cal, "a_") and hasattr(cal, "b_"):
            total += 2                                                 # Platt: slope, offset
        elif hasattr(cal, "X_thresholds_"):
            total += _size(cal.X_thresholds_, cal.y_thresholds_)       # isotonic steps
        else:
            return None
    return total


def _parameters(est) -> int | None:
    from .models import FrameModel

    if isinstance(est, FrameModel):
        return _parameters(est.estimator)
    steps = getattr(est, "steps", None)
    if isinstance(steps, list) and steps and hasattr(est, "named_steps"):
        return _parameters(steps[-1][1])
    calibrated = getattr(est, "calibrated_classifiers_", None)
    if calibrated is not None:
        if len(calibrated) != 1:
            return None
        inner, cal = _parameters(calibrated[0].estimator), _calibrator_parameters(calibrated[0])
        return None if inner is None or cal is None else inner + cal
    name = type(est).__name__
    if name == "LogisticRegression" and hasattr(est, "coef_"):
        return _size(est.coef_) + (_size(est.intercept_) if getattr(est, "fit_intercept", True) else 0)
    if name == "GaussianNB" and hasattr(est, "theta_"):
        return _size(est.theta_, est.var_, est.class_prior_)
    if name == "MLPClassifier" and hasattr(est, "coefs_"):
        return _size(*est.coefs_) + _size(*est.intercepts_)
    if name in ("SVC", "NuSVC") and hasattr(est, "support_"):
        n_sv = len(est.support_)
        n_features = int(np.shape(est.support_vectors_)[1]) if np.size(est.support_vectors_) else \
            int(getattr(est, "n_features_in_", 0))
        return n_sv * (n_features + 1)
    return None


def residual_dof(model, n_train: int) -> int | None:
    """``n_train`` minus the model's parameter count, for models where that count is well
    defined (None for every other model). Negative: more parameters than training rows.

    - LogisticRegression: ``coef_`` and ``intercept_`` (when fitted) entries;
    - GaussianNB: ``theta_``, ``var_`` and ``class_prior_`` entries;
    - MLPClassifier: every weight and bias (``coefs_``, ``intercepts_``);
    - SVC / NuSVC: ``n_support_vectors × (n_features + 1)`` — every coordinate of every stored
      support vector plus its dual coefficient, counted as a parameter. It is an *upper bound*
      convention, not an exact count: the vectors are copied training rows, not fitted values,
      so it overstates the effective degrees of freedom (intercepts and the extra dual
      coefficients of multi-class models are left out);
    - behind a Pipeline or FrameModel: the final estimator only (preprocessing statistics are
      not counted); CalibratedClassifierCV with one calibrated classifier: it plus its
      calibrator (2 per Platt sigmoid); an ensemble of fold classifiers: None.
    """
    p = _parameters(model)
    return None if p is None else int(n_train) - int(p)


# ---------------------------------------------------------------------------------------------
# 5. Hyperparameter rules


def hyperparameter_rules(model, rules, n_train: int) -> list[dict[str, Any]]:
    """Each rule (``{estimator, param, min and/or max, source}``, from the risk config) that
    applies to an estimator inside ``model``, with the value found and whether it passes. A
    fractional ``min_samples_leaf``-style value (0 < v < 1) is read as that share of ``n_train``
    rows. Rules for estimators the model does not hold are left out."""
    import math

    out: list[dict[str, Any]] = []
    seen = set()
    for est in final_estimators(model):
        name = type(est).__name__
        params = est.get_params(deep=False)
        for rule in rules or ():
            if rule.get("estimator") != name or rule.get("param") not in params:
                continue
            key = (name, rule["param"], rule.get("min"), rule.get("max"))
            if key in seen:  # one line per rule, whatever the number of fitted copies
                continue
            seen.add(key)
            value = params[rule["param"]]
            count = value
            if isinstance(value, float) and 0 < value < 1:
                count = math.ceil(value * n_train)
            lo, hi = rule.get("min"), rule.get("max")
            numeric = isinstance(count, (int, float)) and not isinstance(count, bool)
            passed = numeric and (lo is None or count >= lo) and (hi is None or count <= hi)
            bound = " and ".join(b for b in (f">= {lo}" if lo is not None else "",
                                             f"<= {hi}" if hi is not None else "") if b)
            out.append({"estimator": name, "param": str(rule["param"]),
                        "value": value if isinstance(value, (int, float, str, bool)) or value is None else repr(value),
                        "rule": bound, "passed": bool(passed), "source": str(rule.get("source", ""))})
    return out
