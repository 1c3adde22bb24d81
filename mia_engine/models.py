"""Estimators built from ``_target_`` config nodes, with config-key error messages."""

from __future__ import annotations

import re
import threading
import warnings
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError

# scikit-learn 1.9 deprecates SVC(probability=True) and warns on every fit; exact replay of
# the tutorial needs it, so the warning is silenced around our own fits only.
_PROBABILITY_DEPRECATION = r"The `probability` parameter was deprecated"


def calibrated_svc(C: float = 1.0, gamma: float = 3.0, kernel: str = "rbf", random_state: Any = None,
                   method: str = "sigmoid", cv: int = 5, ensemble: bool = False):
    """The scikit-learn 1.11 replacement for ``SVC(probability=True)``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(C=C, gamma=gamma, kernel=kernel, random_state=random_state),
                                  method=method, cv=cv, ensemble=ensemble)


def _locate(target: str, key: str):
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:
        raise ConfigError(f"{key}._target_", f"cannot import {target!r}") from None


def build_estimator(node: Mapping[str, Any], key: str, **overrides: Any):
    """Build the estimator a ``{_target_: ..., **kwargs}`` node names and check its parameters.

    ``overrides`` replace keyword arguments (e.g. a ``RandomState`` object for ``random_state``).
    Parameter errors scikit-learn raises are reported under ``key.<parameter>``.
    """
    kwargs = dict(node)
    target = kwargs.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key}._target_", "missing: name the estimator class to build")
    factory = _locate(str(target), key)
    kwargs.update(overrides)
    try:
        est = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(key, f"cannot build {target}: {e}") from None
    if hasattr(est, "_validate_params"):
        _check_params(est, key)
    return est


def _check_params(est, key: str) -> None:
    from sklearn.utils._param_validation import InvalidParameterError

    inner = getattr(est, "estimator", None)
    try:
        if inner is not None and hasattr(inner, "_validate_params"):
            inner._validate_params()
        est._validate_params()
    except InvalidParameterError as e:
        m = re.search(r"The '(\w+)' parameter", str(e))
        raise ConfigError(f"{key}.{m.group(1)}" if m else key, str(e)) from None


def random_state_from(node: Mapping[str, Any]) -> np.random.RandomState | None:
    """A fresh ``RandomState(seed)`` for a model node's ``random_state``, as the notebook passed."""
    seed = node.get("random_state")
    return None if seed is None else np.random.RandomState(seed)


# libsvm (SVC, NuSVC, ...) and liblinear (LinearSVC, LogisticRegression(solver="liblinear"))
# draw their random numbers from one C-level generator per process, re-seeded at the start of
# each fit and used with the GIL released. Two threads fitting such models at once interleave
# their draws and the result depends on timing (1 of 20 repeated 64-model runs on 2 threads
# differed from the serial run), so those fits take turns; predictions still overlap.
_NATIVE_RNG_LOCK = threading.Lock()


def _uses_native_rng(est) -> bool:
    """Whether fitting ``est`` (or an estimator inside it) draws from libsvm's/liblinear's RNG."""
    from sklearn.base import BaseEstimator

    for e in [est] + [v for v in est.get_params(deep=True).values() if isinstance(v, BaseEstimator)]:
        if type(e).__module__.startswith("sklearn.svm"):
            return True
        if type(e).__name__ == "LogisticRegression" and getattr(e, "solver", None) == "liblinear":
            return True
    return False


def fit_model(est, X: np.ndarray, y: np.ndarray, key: str):
    """Fit ``est``, turning scikit-learn's data errors into a one-line error under ``key``.
    Safe to call from several threads (see ``_NATIVE_RNG_LOCK``)."""
    if _uses_native_rng(est):
        # Under the lock, so the process-wide warning filters change one thread at a time too;
        # the silenced deprecation only concerns libsvm models.
        with _NATIVE_RNG_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PROBABILITY_DEPRECATION, category=FutureWarning)
            return _fit(est, X, y, key)
    return _fit(est, X, y, key)


def _fit(est, X: np.ndarray, y: np.ndarray, key: str):
    try:
        est.fit(X, y)
    except ValueError as e:
        raise ConfigError(key, f"fitting {type(est).__name__} failed: {e}") from None
    return est


def require_probabilities(est, key: str, attacks: str = "the attack") -> None:
    """Every attack reads class probabilities; a model without them is a config error."""
    if not hasattr(est, "predict_proba"):
        hint = "; set probability: true" if "probability" in est.get_params() else ""
        k = f"{key}.probability" if hint else key
        raise ConfigError(k, f"{type(est).__name__} gives no class probabilities, which attack {attacks} needs{hint}")
