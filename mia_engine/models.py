"""Estimators built from ``_target_`` config nodes, with config-key error messages."""

from __future__ import annotations

import re
import threading
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError

# scikit-learn 1.9 deprecates SVC(probability=True) and warns on every fit; exact replay of
# the tutorial needs it, so the warning is silenced around our own fits only.
PROBABILITY_DEPRECATION = r"The `probability` parameter was deprecated"
#: libsvm's warning when it hits ``max_iter``: the engine's configs bound every SVC fit (a C of
#: 1e20 otherwise never converges, and a fit inside libsvm cannot be interrupted).
LIBSVM_STOPPED = "Solver terminated early"


def calibrated_svc(C: float = 1.0, gamma: float = 3.0, kernel: str = "rbf", random_state: Any = None,
                   method: str = "sigmoid", cv: int = 5, ensemble: bool = False, max_iter: int = -1):
    """The scikit-learn 1.11 replacement for ``SVC(probability=True)``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(C=C, gamma=gamma, kernel=kernel, random_state=random_state, max_iter=max_iter),
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
    check_target(str(target), key)
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
        with _NATIVE_RNG_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", message=PROBABILITY_DEPRECATION, category=FutureWarning)
            try:
                return _fit(est, X, y, key)
            finally:
                stopped = [w for w in caught if LIBSVM_STOPPED in str(w.message)]
                for w in caught:
                    if w not in stopped:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if stopped:
                    limit = next((v for k, v in est.get_params(deep=True).items() if k.endswith("max_iter")), None)
                    raise ConfigError(f"{key}.max_iter", f"{type(_final_step(est)).__name__} stopped after "
                                                         f"max_iter={limit:,} iterations without converging (an "
                                                         "extreme C or gamma?); raise it (-1: no limit) or change "
                                                         "the parameters") from None
    return _fit(est, X, y, key)


def _fit(est, X: np.ndarray, y: np.ndarray, key: str):
    try:
        _interruptible(est.fit, X, y)
    except ValueError as e:
        raise ConfigError(key, f"fitting {type(est).__name__} failed: {e}") from None
    return est


_openmp = None  # threadpoolctl's controller of the OpenMP runtimes, made at the first fit


def _openmp_controller():
    """threadpoolctl's controller of the loaded OpenMP runtimes, made once per process (making
    one scans every loaded library: milliseconds, as long as a small fit)."""
    global _openmp
    if _openmp is None:
        from threadpoolctl import ThreadpoolController

        _openmp = ThreadpoolController().select(user_api="openmp")
    return _openmp


def openmp_limit(threads: int):
    """A context in which the calling thread's OpenMP runtimes use at most ``threads`` threads."""
    return _openmp_controller().limit(limits=threads)


def _openmp_threads() -> int | None:
    """The calling thread's OpenMP thread count (the smallest over the loaded runtimes), or None."""
    try:
        counts = [lib["num_threads"] for lib in _openmp_controller().info()]
        return min(counts) if counts else None
    except Exception:  # no OpenMP runtime, or threadpoolctl cannot read it
        return None


def _interruptible(fn, *args):
    """``fn(*args)``, from the main thread in a helper thread, so that Ctrl-C is felt at once
    (Python only sees a signal between bytecodes, and libsvm can compute for minutes in one
    call). The abandoned fit ends with the process. Off the main thread: a plain call.

    OpenMP's thread limit is per thread: the helper gets the caller's, so a fit limited to one
    thread (a reference model, see mia_engine.reference) stays at one."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    box: dict[str, Any] = {}
    threads = _openmp_threads()

    def work():
        try:
            if threads is None:
                box["value"] = fn(*args)
            else:
                with openmp_limit(threads):
                    box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    t = threading.Thread(target=work, name="mia-fit", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.1)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def require_probabilities(est, key: str, attacks: str = "the attack") -> None:
    """Every attack reads class probabilities; a model without them is a config error."""
    if not hasattr(est, "predict_proba"):
        hint = "; set probability: true" if "probability" in est.get_params() else ""
        k = f"{key}.probability" if hint else key
        raise ConfigError(k, f"{type(est).__name__} gives no class probabilities, which attack {attacks} needs{hint}")


# ---------------------------------------------------------------------------------------------
# Model recipes: what the target, the shadow and the reference models are built from

#: Estimators a config may name in ``_target_``: scikit-learn classifiers and the engine's own
#: factory. A config is not code: anything else is refused before it is imported.
_ENGINE_FACTORIES = ("mia_engine.models.calibrated_svc",)
#: Model-node keys the engine reads itself; never passed to the estimator.
ENGINE_KEYS = ("preprocess",)
#: Families whose inputs should be on one scale (distances, gradients, kernels).
_SCALED = ("LogisticRegression", "SVC", "KNeighborsClassifier", "MLPClassifier", "calibrated_svc",
           "SGDClassifier", "LinearSVC", "NuSVC", "RidgeClassifier")


#: Further ``_target_`` names the user allowed (``security.allowed_targets``): exact dotted
#: names, or prefixes ending in "." (a package). Set for a scenario by :func:`allowed_targets`.
_EXTRA_TARGETS: ContextVar[tuple[str, ...]] = ContextVar("mia_engine_allowed_targets", default=())


@contextmanager
def allowed_targets(names: Sequence[str]):
    """Within the block, ``_target_`` may also name ``names`` (see :data:`_EXTRA_TARGETS`)."""
    token = _EXTRA_TARGETS.set(tuple(names))
    try:
        yield
    finally:
        _EXTRA_TARGETS.reset(token)


def check_allowed_targets(names: Any, key: str = "security.allowed_targets") -> tuple[str, ...]:
    """``security.allowed_targets``, checked: dotted names (``xgboost.XGBClassifier``) or package
    prefixes ending in a dot (``lightgbm.``); never a bare top-level prefix that allows everything."""
    if names is None:
        return ()
    if not isinstance(names, (list, tuple)):
        raise ConfigError(key, f"a list of dotted names or package prefixes, got {names!r}")
    out = []
    for i, name in enumerate(names):
        parts = str(name).rstrip(".").split(".") if isinstance(name, str) else []
        if not parts or not all(p.isidentifier() for p in parts):
            raise ConfigError(f"{key}.{i}", f"a dotted name such as xgboost.XGBClassifier or a prefix such as "
                                            f"lightgbm., got {name!r}")
        out.append(name)
    return tuple(out)


def check_target(target: str, key: str, allowed: Sequence[str] | None = None) -> None:
    """Refuse a ``_target_`` outside scikit-learn's estimators, the engine's factories and the
    names the user allowed (``allowed``; None: :func:`allowed_targets`'s). Nothing is imported
    for a refused name; an allowed name outside scikit-learn must be an estimator class (``fit``
    and ``get_params``), so no plain function or other class runs from a config."""
    if target in _ENGINE_FACTORIES:
        return
    extra = _EXTRA_TARGETS.get() if allowed is None else tuple(allowed)
    if any(target == name or (name.endswith(".") and target.startswith(name)) for name in extra):
        obj = _locate(target, key)
        if not (isinstance(obj, type) and callable(getattr(obj, "fit", None))
                and callable(getattr(obj, "get_params", None))):
            raise ConfigError(f"{key}._target_", f"{target!r} is not an estimator class (fit, get_params)")
        return
    parts = target.split(".")
    if parts[0] != "sklearn" or len(parts) < 3:
        raise ConfigError(f"{key}._target_", f"{target!r} is not a scikit-learn estimator; a config may only name "
                                             "classes under sklearn.*, the engine's calibrated_svc, or names listed "
                                             "in security.allowed_targets")
    obj = _locate(target, key)
    from sklearn.base import BaseEstimator

    if not (isinstance(obj, type) and issubclass(obj, BaseEstimator)):
        raise ConfigError(f"{key}._target_", f"{target!r} is not a scikit-learn estimator class")


@dataclass(frozen=True)
class Preprocessing:
    """Column roles in the engine's feature matrix and what to do with each."""

    numeric: tuple[int, ...]
    binary: tuple[int, ...]
    categorical: tuple[int, ...]
    impute: bool
    scale: bool

    def build(self):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        def chain(*steps):
            steps = [s for s in steps if s is not None]
            if not steps:
                return "passthrough"
            return steps[0][1] if len(steps) == 1 else Pipeline(steps)

        blocks = []
        if self.numeric:
            blocks.append(("numeric", chain(("impute", SimpleImputer(strategy="median")) if self.impute else None,
                                            ("scale", StandardScaler()) if self.scale else None), list(self.numeric)))
        if self.binary:
            blocks.append(("binary", chain(("impute", SimpleImputer(strategy="most_frequent")) if self.impute
                                           else None), list(self.binary)))
        if self.categorical:
            blocks.append(("categorical", chain(
                ("impute", SimpleImputer(strategy="most_frequent")) if self.impute else None,
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))), list(self.categorical)))
        return ColumnTransformer(blocks, sparse_threshold=0.0)

    def describe(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "binary": list(self.binary), "categorical": list(self.categorical),
                "impute": self.impute, "scale": self.scale}


def preprocessing_for(node: Mapping[str, Any], key: str, features, *, default: bool, impute: bool):
    """The preprocessing a model node gets on data with ``features`` (None: the raw matrix).

    ``model.preprocess``: true / false, or null: the source's ``default`` (tables are
    preprocessed; declared populations, whose values are already the numbers the scenario
    declares, are fed as drawn, as the tutorial's SVC was)."""
    flag = node.get("preprocess")
    if flag is None:
        flag = default
    if not flag:
        if impute:
            raise ConfigError(f"{key}.preprocess", "data.missing=impute needs the model's preprocessing (it imputes); "
                                                   "set it true or null")
        return None
    target = str(node.get("_target_", ""))
    scale = target.rsplit(".", 1)[-1] in _SCALED
    kinds = [f.kind for f in features]
    spec = Preprocessing(tuple(i for i, k in enumerate(kinds) if k == "numeric"),
                         tuple(i for i, k in enumerate(kinds) if k == "binary"),
                         tuple(i for i, k in enumerate(kinds) if k == "categorical"), bool(impute), scale)
    if not (spec.categorical or spec.impute or spec.scale):
        return None  # nothing to do: the raw matrix
    return spec


class FrameModel:
    """A researcher's estimator behind the engine's interface: it is handed a DataFrame with the
    data's own columns and values (what it was trained on) and its own label values, and it
    answers with probability columns in the engine's label order."""

    def __init__(self, estimator, features, columns, label_values):
        self.estimator = estimator
        self.features = tuple(features)
        self.columns = list(columns)
        self.label_values = list(label_values)
        if hasattr(estimator, "classes_"):
            self._order()

    def _frame(self, X):
        from .data.table import decode_frame

        return decode_frame(np.asarray(X, dtype=float), self.features, self.columns)

    def _order(self):
        classes = [v.item() if isinstance(v, np.generic) else v for v in self.estimator.classes_]
        self.order_ = np.asarray([classes.index(v) for v in self.label_values])
        self.classes_ = np.arange(len(self.label_values))

    def fit(self, X, y):
        values = np.asarray(self.label_values, dtype=object)[np.asarray(y, dtype=int)]
        if all(isinstance(v, (int, np.integer)) for v in self.label_values):
            values = values.astype(np.int64)
        self.estimator.fit(self._frame(X), values)
        self._order()
        return self

    def predict_proba(self, X):
        return np.asarray(self.estimator.predict_proba(self._frame(X)), dtype=np.float64)[:, self.order_]

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def get_params(self, deep=True):
        return self.estimator.get_params(deep=deep)


def _final_step(est):
    steps = getattr(est, "steps", None)
    return steps[-1][1] if steps else est


def estimator_name(est) -> str:
    """The class name of the estimator doing the work: inside a saved model's wrapper
    (:class:`FrameModel`) or a Pipeline, its last step."""
    if isinstance(est, FrameModel):
        est = est.estimator
    return type(_final_step(est)).__name__


@dataclass
class ModelRecipe:
    """How to build a fresh, unfitted copy of a model: from a config node (``_target_`` plus
    keyword arguments, with the data's preprocessing in a Pipeline) or as a clone of a saved
    model. ``fitted`` holds the saved model itself (the target, not refitted)."""

    key: str
    node: dict | None = None
    preprocessing: Preprocessing | None = None
    prototype: Any = None
    features: tuple = ()
    columns: tuple = ()
    label_values: tuple = ()
    fitted: Any = None
    path: str | None = None
    allowed: tuple = ()              # security.allowed_targets, for builds in worker processes

    @property
    def saved(self) -> bool:
        return self.prototype is not None

    @property
    def random_state_seed(self):
        return None if self.node is None else self.node.get("random_state")

    def build(self, random_state: Any = None):
        """A fresh estimator; ``random_state`` (a seed or RandomState) goes to the estimator
        that takes one (the last step of a Pipeline)."""
        if self.saved:
            from sklearn.base import clone

            est = clone(self.prototype)
            final = _final_step(est)
            if random_state is not None and "random_state" in final.get_params(deep=False):
                final.set_params(random_state=random_state)
            return FrameModel(est, self.features, self.columns, self.label_values)
        kwargs = {k: v for k, v in self.node.items() if k not in ENGINE_KEYS}
        with allowed_targets(self.allowed):
            est = build_estimator(kwargs, self.key, **_random_state_kwarg(kwargs, random_state))
        if self.preprocessing is None:
            return est
        from sklearn.pipeline import Pipeline

        return Pipeline([("preprocess", self.preprocessing.build()), ("model", est)])

    def build_seeded(self):
        """A fresh estimator with a fresh ``RandomState(random_state)`` from the node, as the
        notebook passed (saved models keep their own setting)."""
        return self.build(random_state_from(self.node) if self.node is not None else None)

    def describe(self) -> dict[str, Any]:
        """Everything that defines the recipe, for cache keys and reports."""
        if self.saved:
            return {"saved": self.path, "params": repr(sorted(self.prototype.get_params(deep=True).items(),
                                                                 key=lambda kv: kv[0]))}
        return {"node": dict(self.node), "preprocessing": None if self.preprocessing is None
                else self.preprocessing.describe()}

    def label(self) -> str:
        """A short name for reports: the class and its key knobs."""
        if self.saved:
            return f"saved {estimator_name(self.prototype)} ({self.path})"
        name = str(self.node.get("_target_", "model")).rsplit(".", 1)[-1]
        knobs = ", ".join(f"{k}={self.node[k]}" for k in ("C", "gamma", "n_estimators", "max_depth", "n_neighbors")
                          if k in self.node)
        return f"{name}({knobs})"


def _random_state_kwarg(kwargs: Mapping[str, Any], random_state: Any) -> dict[str, Any]:
    """``random_state`` as a keyword for factories that take one (KNN and naive Bayes do not)."""
    import inspect

    if random_state is None:
        return {}
    target = kwargs.get("_target_")
    try:
        from hydra.utils import get_object

        params = inspect.signature(get_object(str(target))).parameters
    except Exception:  # reported by build_estimator with the config key
        return {"random_state": random_state}
    return {"random_state": random_state} if "random_state" in params else {}


def model_recipe(node: Mapping[str, Any], key: str, source, launch_dir=None) -> ModelRecipe:
    """Validate a model node against the data source and turn it into a recipe."""
    node = dict(node)
    table = bool(source.preprocess_by_default)
    impute = bool(source.impute)
    if node.get("path") is not None and "_target_" not in node:
        return _saved_recipe(node, key, source, launch_dir)
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{key}._target_", "missing: name the estimator class to build")
    check_target(str(target), key)
    if node.get("kernel") == "precomputed":
        raise ConfigError(f"{key}.kernel", "'precomputed' takes a kernel matrix, but the engine feeds feature rows; "
                                           "choose rbf, linear, poly or sigmoid")
    pre = preprocessing_for(node, key, source.features, default=table, impute=impute)
    recipe = ModelRecipe(key=key, node=node, preprocessing=pre, allowed=_EXTRA_TARGETS.get())
    recipe.build()  # validates the parameters under the config key
    return recipe


def _saved_recipe(node: Mapping[str, Any], key: str, source, launch_dir) -> ModelRecipe:
    from pathlib import Path

    from sklearn.base import clone

    from .saved_models import check_saved_model, load_saved_model

    if not source.training_rows_given:
        raise ConfigError(f"{key}.path", "a saved model needs the rows it was trained on: use data=table with "
                                         "data.train_path (the members) and data.test_path (held-out rows)")
    path = Path(str(node["path"])).expanduser()
    if not path.is_absolute() and launch_dir is not None:
        path = Path(launch_dir) / path
    est = load_saved_model(path, key=key, fmt=node.get("format") or "auto",
                           trusted_types=tuple(node.get("trusted_types") or ()),
                           trust_pickle=bool(node.get("trust_pickle")))
    columns = check_saved_model(est, key=key, labels=list(source.label_values), feature_names=list(source.feature_names))
    try:
        prototype = clone(est)
    except Exception as e:
        raise ConfigError(f"{key}.path", f"the model cannot be cloned, so the attacker cannot copy its recipe: {e}") \
            from None
    fitted = FrameModel(est, source.features, columns, source.label_values)
    return ModelRecipe(key=key, prototype=prototype, features=tuple(source.features), columns=tuple(columns),
                       label_values=tuple(source.label_values), fitted=fitted, path=str(path))
