"""Fitted scikit-learn models loaded from a file (``model=saved model.path=<file>``).

A researcher points the engine at the model they want to release. skops files load without
running code from the file: every type the file holds must be on skops' own trusted list, on
:data:`DEFAULT_TRUSTED_TYPES`, or on the user's ``trusted_types``. Pickle and joblib files run
code when loaded, so they load only with an explicit ``trust_pickle``.

:func:`check_saved_model` then checks the model against the data the scenario uses.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ConfigError

log = logging.getLogger("mia_engine")

FORMATS = ("auto", "skops", "pickle")
_EXTENSIONS = {".skops": "skops", ".joblib": "pickle", ".pkl": "pickle", ".pickle": "pickle"}

# Found by fitting each model below (bare, and after a ColumnTransformer of OneHotEncoder,
# SimpleImputer and StandardScaler), saving it with skops 0.16 and reading
# ``skops.io.get_untrusted_types`` (scikit-learn 1.9). The estimators themselves are trusted by
# skops already and are listed so the engine's list does not depend on skops' defaults.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    # composition and preprocessing
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._label.LabelEncoder",  # inside GradientBoosting/HistGradientBoosting
    "sklearn.preprocessing._label.LabelBinarizer",  # inside MLPClassifier
    "sklearn.impute._base.SimpleImputer",
    "numpy.dtype",  # SimpleImputer._fit_dtype; skops does not trust it by default
    # classifiers
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.SVC",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.dummy.DummyClassifier",
    # tree ensembles: the fitted trees. skops leaves Tree and TreePredictor untrusted on purpose:
    # scikit-learn indexes their node arrays without bounds checks, so a crafted file can crash
    # the process at predict time (it cannot run code through them).
    "sklearn.tree._tree.Tree",
    "sklearn.tree._classes.DecisionTreeRegressor",  # GradientBoostingClassifier.estimators_
    "sklearn.tree._classes.ExtraTreeClassifier",  # ExtraTreesClassifier.estimators_
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    # HistGradientBoostingClassifier with categorical features (e.g. a pandas "category" column)
    # keeps FunctionTransformer(func=partial(check_array, ...)). skops audits a partial's function,
    # args and keywords as nodes of their own, so trusting functools.partial admits only partials
    # of functions that are trusted themselves.
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # gradient boosting losses and links (trusted by skops 0.16 already)
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.ExponentialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.HalfLogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    # KNeighborsClassifier: the neighbour index and its metric (euclidean/minkowski p=2, manhattan,
    # chebyshev, minkowski with another p)
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    # MLPClassifier optimizers (solver="adam", "sgd")
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    # CalibratedClassifierCV: its fitted (classifier, calibrators) pairs, method="sigmoid",
    # "isotonic", "temperature"
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.isotonic.IsotonicRegression",
)


def load_saved_model(path: str | os.PathLike, *, key: str = "model", fmt: str = "auto",
                     trusted_types: Iterable[str] = (), trust_pickle: bool = False):
    """The fitted estimator saved in ``path``.

    ``fmt`` is "skops", "pickle" (joblib or plain pickle) or "auto" (by the file's extension).
    A skops file loads only if every type it holds is trusted (skops' defaults,
    :data:`DEFAULT_TRUSTED_TYPES`, ``trusted_types``); a pickle only with ``trust_pickle``.
    Errors name ``key.path``, ``key.format``, ``key.trust_pickle`` or ``key.trusted_types``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"{key}.format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    extra = _type_names(trusted_types, key)
    if not isinstance(trust_pickle, (bool, np.bool_)):
        raise ConfigError(f"{key}.trust_pickle", f"must be true or false, not {trust_pickle!r}")
    p = _readable_file(path, key)
    if fmt == "auto":
        fmt = _format_from_extension(p, key)
    if fmt == "skops":
        return _load_skops(p, key, extra)
    return _load_pickle(p, key, bool(trust_pickle))


def _type_names(trusted_types: Any, key: str) -> tuple[str, ...]:
    if trusted_types is None:
        return ()
    if isinstance(trusted_types, str):  # `model.trusted_types=a.B` on the command line
        trusted_types = [trusted_types]
    names = []
    for name in trusted_types:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{key}.trusted_types",
                              f"{name!r} is not a type name; list fully qualified names such as "
                              "sklearn.tree._tree.Tree")
        names.append(name.strip())
    return tuple(names)


def _readable_file(path: Any, key: str) -> Path:
    if path is None or not str(path).strip():
        raise ConfigError(f"{key}.path", "missing: name the fitted model file to load")
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            raise ConfigError(f"{key}.path", f"{p} is a directory, not a model file")
        with p.open("rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(f"{key}.path", f"{p}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{key}.path", f"cannot read {p}: {e.strerror or e}") from None
    return p


def _format_from_extension(p: Path, key: str) -> str:
    ext = p.suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    what = f"extension {p.suffix!r}" if p.suffix else "no extension"
    raise ConfigError(f"{key}.format",
                      f"cannot tell the format of {p} from its {what}: name it .skops, .joblib, .pkl "
                      f"or .pickle, or set {key}.format to one of {', '.join(FORMATS[1:])}")


def _load_skops(p: Path, key: str, extra: tuple[str, ...]):
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    allowed = set(DEFAULT_TRUSTED_TYPES) | set(extra)
    try:
        held = set(sio.get_untrusted_types(file=p))
    except Exception as e:
        raise ConfigError(f"{key}.path", f"{p} is not a readable skops file: {_reason(e)}") from None
    outside = sorted(held - allowed)
    if outside:
        raise _untrusted(p, key, outside)
    try:
        return sio.load(p, trusted=sorted(held & allowed))
    except UntrustedTypesFoundException:  # skops' own audit at load time; the file changed since
        raise ConfigError(f"{key}.path", f"{p} changed while it was loaded and now holds types outside "
                                         "the trusted list") from None
    except Exception as e:
        raise ConfigError(f"{key}.path", f"cannot load the skops file {p}: {_reason(e)}") from None


def _untrusted(p: Path, key: str, names: Sequence[str]) -> ConfigError:
    return ConfigError(f"{key}.path", f"{p} holds types outside the trusted list: {', '.join(names)}; "
                                      f"if you trust this file, add them to {key}.trusted_types")


def _load_pickle(p: Path, key: str, trust_pickle: bool):
    if not trust_pickle:
        raise ConfigError(f"{key}.trust_pickle",
                          f"{p} is a pickle (joblib) file; loading a pickle runs code inside it. "
                          f"Set {key}.trust_pickle=true only for a file you trust, or save the model "
                          "with skops")
    import joblib

    log.warning("Loading %s with joblib: loading a pickle runs code inside it (%s.trust_pickle=true)",
                p, key)
    try:
        return joblib.load(p)
    except Exception as e:
        raise ConfigError(f"{key}.path", f"cannot load the pickle (joblib) file {p}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    """A short, one-line account of ``e`` (no traceback text)."""
    text = e.args[0] if isinstance(e, KeyError) and e.args else e
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if len(first) > 200:
        first = first[:197] + "..."
    name = type(e).__name__
    if name.islower():  # struct.error, zlib.error, ...
        name = f"{type(e).__module__}.{name}"
    return f"{name}: {first}" if first else name


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _sorted(values: Iterable[Any]) -> list[Any]:
    return sorted(values, key=lambda v: (type(v).__name__, v))


def _describe(est: Any) -> str:
    steps = getattr(est, "steps", None)
    if type(est).__name__ == "Pipeline" and steps:
        return f"Pipeline ending in {type(steps[-1][1]).__name__}"
    return type(est).__name__


def check_saved_model(est: Any, *, key: str = "model", labels: Iterable[Any],
                      feature_names: Sequence[str]) -> list[str]:
    """Check a loaded model fits the data; returns the feature columns in the model's order.

    The model must give class probabilities, be fitted, have the data's label values as its
    classes and have been fitted on the data's feature columns (by name if it recorded them,
    else by count).
    """
    if not hasattr(est, "predict_proba"):
        raise ConfigError(key, f"{_describe(est)} gives no class probabilities (predict_proba), "
                               "which every attack needs")
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise ConfigError(f"{key}.path", f"the saved {_describe(est)} is not fitted (it has no classes_): "
                                         "save it after calling fit")
    try:
        model_classes = {_py(c) for c in classes}
    except TypeError:  # a multi-output model has one array of classes per output
        raise ConfigError(f"{key}.path", f"the saved {_describe(est)} predicts several outputs; "
                                         "the engine needs a single-label classifier") from None
    data_labels = {_py(v) for v in labels}
    if model_classes != data_labels:
        raise ConfigError(f"{key}.path", f"the model's classes {_sorted(model_classes)} differ from the "
                                         f"label values {_sorted(data_labels)} in the data")
    feature_names = [_py(f) for f in feature_names]
    names_in = getattr(est, "feature_names_in_", None)
    if names_in is not None:
        model_names = [_py(f) for f in names_in]
        in_data, in_model = set(feature_names), set(model_names)
        missing = [f for f in model_names if f not in in_data]
        unexpected = [f for f in feature_names if f not in in_model]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"columns the model needs but the data lacks: {missing}")
            if unexpected:
                parts.append(f"data columns the model was not fitted on: {unexpected}")
            raise ConfigError(f"{key}.path", "the model's feature names differ from the data's feature "
                                             f"columns: {'; '.join(parts)}")
        return model_names
    n_in = getattr(est, "n_features_in_", None)
    if n_in is not None and int(n_in) != len(feature_names):
        raise ConfigError(f"{key}.path", f"the model was fitted on {int(n_in)} features, but the data has "
                                         f"{len(feature_names)} feature columns")
    return list(feature_names)
