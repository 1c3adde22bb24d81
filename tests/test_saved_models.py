"""Loading a fitted model file a researcher wants to release (skops, or joblib with trust)."""

from __future__ import annotations

import importlib
import logging
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import (FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler,
                                   StandardScaler)
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from mia_engine.errors import ConfigError
from mia_engine.saved_models import DEFAULT_TRUSTED_TYPES, check_saved_model, load_saved_model

TREE = "sklearn.tree._tree.Tree"
HGB_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


pytestmark = pytest.mark.usefixtures("quiet_sklearn")


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    n = 80
    X = pd.DataFrame({"age": rng.randint(18, 80, n).astype(float), "income": rng.lognormal(3, 1, n),
                      "city": rng.choice(["Oslo", "Lima", "Pune"], n)})
    X.loc[[2, 7], "income"] = np.nan
    y = np.where(X["age"] + 10 * rng.randn(n) > 48, "Yes", "No")
    return X, y


def _preprocess():
    return ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age", "income"]),
    ])


def _pipe(clf):
    return Pipeline([("pre", _preprocess()), ("clf", clf)])


def _save(est, path):
    sio.dump(est, path)
    return path


def _error(excinfo) -> ConfigError:
    err = excinfo.value
    assert "\n" not in str(err)
    return err


# ---------------------------------------------------------------- skops


def test_skops_round_trip_of_a_pipeline_with_string_column_and_labels(tmp_path, data):
    X, y = data
    est = _pipe(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    path = _save(est, tmp_path / "released.skops")
    assert TREE in sio.get_untrusted_types(file=path)  # skops alone would refuse this file

    loaded = load_saved_model(path)

    assert type(loaded) is Pipeline and loaded is not est
    assert list(loaded.classes_) == ["No", "Yes"]
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    new = pd.DataFrame({"age": [30.0], "income": [np.nan], "city": ["Rome"]})  # unseen category
    np.testing.assert_array_equal(loaded.predict_proba(new), est.predict_proba(new))
    assert check_saved_model(loaded, labels=y, feature_names=["city", "age", "income"]) == ["age", "income", "city"]


# Each model family a tabular release plausibly holds, with the internal types skops reports as
# untrusted for it (which DEFAULT_TRUSTED_TYPES must cover).
FAMILIES = {
    "logistic": (lambda: _pipe(LogisticRegression()), {"numpy.dtype"}),
    "svc": (lambda: _pipe(SVC(probability=True, random_state=0)), {"numpy.dtype"}),
    "tree": (lambda: _pipe(DecisionTreeClassifier(max_depth=4, random_state=0)), {TREE}),
    "forest": (lambda: _pipe(RandomForestClassifier(n_estimators=5, random_state=0)), {TREE}),
    "extra_trees": (lambda: _pipe(ExtraTreesClassifier(n_estimators=5, random_state=0)), {TREE}),
    "gradient_boosting": (lambda: _pipe(GradientBoostingClassifier(n_estimators=5, random_state=0)), {TREE}),
    "gradient_boosting_exp": (lambda: _pipe(GradientBoostingClassifier(loss="exponential", n_estimators=5)),
                              {TREE}),
    "hist_gradient_boosting": (lambda: _pipe(HistGradientBoostingClassifier(max_iter=5, random_state=0)),
                               {HGB_TREE}),
    "knn": (lambda: _pipe(KNeighborsClassifier(n_neighbors=3)),
            {"sklearn.neighbors._kd_tree.KDTree", "sklearn.metrics._dist_metrics.EuclideanDistance64"}),
    "knn_ball_manhattan": (lambda: _pipe(KNeighborsClassifier(algorithm="ball_tree", metric="manhattan")),
                           {"sklearn.neighbors._ball_tree.BallTree",
                            "sklearn.metrics._dist_metrics.ManhattanDistance64"}),
    "mlp_adam": (lambda: _pipe(MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0)),
                 {"sklearn.neural_network._stochastic_optimizers.AdamOptimizer"}),
    "mlp_sgd": (lambda: _pipe(MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=30, random_state=0)),
                {"sklearn.neural_network._stochastic_optimizers.SGDOptimizer"}),
    "naive_bayes": (lambda: _pipe(GaussianNB()), {"numpy.dtype"}),
    "calibrated_sigmoid": (lambda: _pipe(CalibratedClassifierCV(SVC(random_state=0), cv=3)),
                           {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"}),
    "calibrated_isotonic": (lambda: _pipe(CalibratedClassifierCV(DecisionTreeClassifier(max_depth=3), cv=3,
                                                                 method="isotonic")),
                            {"sklearn.calibration._CalibratedClassifier", TREE}),
    "calibrated_temperature": (lambda: _pipe(CalibratedClassifierCV(LogisticRegression(), cv=3,
                                                                    method="temperature", ensemble=False)),
                               {"sklearn.calibration._CalibratedClassifier",
                                "sklearn.calibration._TemperatureScaling"}),
    "dummy": (lambda: _pipe(DummyClassifier(strategy="prior")), {"numpy.dtype"}),
    "feature_union_scalers": (lambda: Pipeline([
        ("ct", ColumnTransformer([("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                                   ["city"])], remainder=SimpleImputer())),
        ("fu", FeatureUnion([("mm", MinMaxScaler()), ("rb", RobustScaler())])),
        ("clf", LogisticRegression()),
    ]), {"numpy.dtype"}),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_model_family_loads_with_the_default_trusted_list(tmp_path, data, family):
    X, y = data
    make, needs = FAMILIES[family]
    est = make().fit(X, y)
    path = _save(est, tmp_path / f"{family}.skops")
    untrusted = set(sio.get_untrusted_types(file=path))
    assert needs <= untrusted, "the file no longer holds the types this case exercises"
    assert untrusted <= set(DEFAULT_TRUSTED_TYPES)

    loaded = load_saved_model(path)

    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), rtol=0, atol=1e-12)


def test_hist_gradient_boosting_on_a_pandas_category_column_loads(tmp_path, data):
    """HistGradientBoosting keeps partial(check_array, ...) for categorical features."""
    X, y = data
    Xc = X.assign(city=X["city"].astype("category"))
    est = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(Xc, y)
    path = _save(est, tmp_path / "hgb_cat.skops")
    assert {"functools.partial", "sklearn.utils.validation.check_array", HGB_TREE} <= set(
        sio.get_untrusted_types(file=path))

    loaded = load_saved_model(path)

    np.testing.assert_array_equal(loaded.predict_proba(Xc), est.predict_proba(Xc))


def test_trusted_names_are_real_types_and_no_general_callables():
    assert len(set(DEFAULT_TRUSTED_TYPES)) == len(DEFAULT_TRUSTED_TYPES)
    for name in DEFAULT_TRUSTED_TYPES:
        module, attr = name.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), attr)
        assert f"{obj.__module__}.{obj.__name__}" == name
        assert callable(obj)
        assert not module.startswith(("builtins", "operator", "_operator", "os", "posix", "subprocess", "sys",
                                      "importlib", "pickle", "runpy", "shutil", "io")), name
    # The one function on the list only validates arrays.
    assert [n for n in DEFAULT_TRUSTED_TYPES if not isinstance(_resolve(n), type)] == [
        "sklearn.utils.validation.check_array"]


def _resolve(name):
    module, attr = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attr)


def shift_by_one(X):
    return X + 1.0


class Doubler(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X * 2.0


SHIFT = f"{__name__}.shift_by_one"
DOUBLER = f"{__name__}.Doubler"


@pytest.fixture
def untrusted_file(tmp_path):
    rng = np.random.RandomState(1)
    X = rng.rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    est = Pipeline([("shift", FunctionTransformer(func=shift_by_one)), ("double", Doubler()),
                    ("clf", LogisticRegression())]).fit(X, y)
    path = _save(est, tmp_path / "custom.skops")
    return path, est, X


def test_a_file_with_untrusted_types_is_refused_naming_them(untrusted_file):
    path, _, _ = untrusted_file
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, key="target_model")
    err = _error(excinfo)
    assert err.key == "target_model.path"
    names = ", ".join(sorted([SHIFT, DOUBLER]))
    assert err.message == (f"{path} holds types outside the trusted list: {names}; if you trust this file, "
                           "add them to target_model.trusted_types")


def test_trusting_only_some_untrusted_types_still_refuses(untrusted_file):
    path, _, _ = untrusted_file
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, trusted_types=[DOUBLER])
    err = _error(excinfo)
    assert err.key == "model.path"
    assert SHIFT in err.message and DOUBLER not in err.message


def test_a_file_with_untrusted_types_loads_once_they_are_trusted(untrusted_file):
    path, est, X = untrusted_file
    loaded = load_saved_model(path, trusted_types=[SHIFT, DOUBLER, "some.other.Type"])
    assert loaded.named_steps["shift"].func is shift_by_one
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_a_single_trusted_type_name_given_as_a_string(tmp_path):
    X = np.random.RandomState(2).rand(30, 2)
    est = Pipeline([("d", Doubler()), ("clf", GaussianNB())]).fit(X, (X[:, 1] > 0.5).astype(int))
    path = _save(est, tmp_path / "one.skops")
    with pytest.raises(ConfigError, match="Doubler"):
        load_saved_model(path)
    loaded = load_saved_model(path, trusted_types=DOUBLER)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_a_bad_trusted_types_entry_is_a_config_error(untrusted_file):
    path, _, _ = untrusted_file
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, trusted_types=[DOUBLER, 3])
    assert excinfo.value.key == "model.trusted_types"


def test_format_can_be_forced_for_any_extension(tmp_path, data):
    X, y = data
    est = _pipe(LogisticRegression()).fit(X, y)
    path = _save(est, tmp_path / "model.bin")
    np.testing.assert_array_equal(load_saved_model(path, fmt="skops").predict_proba(X), est.predict_proba(X))


# ---------------------------------------------------------------- pickle / joblib


@pytest.fixture
def joblib_file(tmp_path, data):
    X, y = data
    est = _pipe(GradientBoostingClassifier(n_estimators=5, random_state=0)).fit(X, y)
    path = tmp_path / "released.joblib"
    joblib.dump(est, path)
    return path, est, X


def test_a_joblib_file_is_refused_without_trust_pickle(joblib_file):
    path, _, _ = joblib_file
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    err = _error(excinfo)
    assert err.key == "model.trust_pickle"
    assert str(err) == (f"model.trust_pickle: {path} is a pickle (joblib) file; loading a pickle runs code "
                        "inside it. Set model.trust_pickle=true only for a file you trust, or save the model "
                        "with skops")


def test_the_pickle_refusal_uses_the_key_prefix_given(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression()))
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, key="scenario.model")
    assert excinfo.value.key == "scenario.model.trust_pickle"
    assert "Set scenario.model.trust_pickle=true" in excinfo.value.message


def test_a_joblib_file_loads_with_trust_pickle_and_warns(joblib_file, caplog):
    path, est, X = joblib_file
    with caplog.at_level(logging.WARNING, logger="mia_engine"):
        loaded = load_saved_model(path, trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    warned = [r for r in caplog.records if r.name == "mia_engine" and r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert str(path) in warned[0].getMessage() and "runs code" in warned[0].getMessage()


def test_a_plain_pickle_file_loads_with_trust_pickle(tmp_path, data):
    X, y = data
    est = _pipe(GaussianNB()).fit(X, y)
    path = tmp_path / "m.pickle"
    path.write_bytes(pickle.dumps(est))
    np.testing.assert_array_equal(load_saved_model(path, trust_pickle=True).predict_proba(X), est.predict_proba(X))


def test_trust_pickle_must_be_a_boolean(joblib_file):
    path, _, _ = joblib_file
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, trust_pickle="false")
    assert excinfo.value.key == "model.trust_pickle"


# ---------------------------------------------------------------- bad files and formats


def test_a_missing_file(tmp_path):
    path = tmp_path / "nope.skops"
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    err = _error(excinfo)
    assert err.key == "model.path" and str(path) in err.message and "no such file" in err.message


def test_a_directory_is_not_a_model_file(tmp_path):
    folder = tmp_path / "model.skops"
    folder.mkdir()
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(folder)
    err = _error(excinfo)
    assert err.key == "model.path" and "directory" in err.message and str(folder) in err.message


def test_an_empty_path(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model("")
    assert excinfo.value.key == "model.path"


@pytest.mark.parametrize("content", [b"this is not a zip archive", b""], ids=["text", "empty"])
def test_a_corrupt_skops_file(tmp_path, content):
    path = tmp_path / "bad.skops"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    err = _error(excinfo)
    assert err.key == "model.path" and str(path) in err.message
    assert "Traceback" not in err.message and len(err.message) < 300


def test_a_zip_that_is_not_a_skops_file(tmp_path):
    path = tmp_path / "bad.skops"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    err = _error(excinfo)
    assert err.key == "model.path" and "schema.json" in err.message


def test_a_truncated_skops_file(tmp_path, data):
    X, y = data
    good = _save(_pipe(LogisticRegression()).fit(X, y), tmp_path / "good.skops")
    path = tmp_path / "cut.skops"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    assert _error(excinfo).key == "model.path"


@pytest.mark.parametrize("content", [b"garbage, not a pickle", b""], ids=["text", "empty"])
def test_a_corrupt_joblib_file(tmp_path, content):
    path = tmp_path / "bad.joblib"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, trust_pickle=True)
    err = _error(excinfo)
    assert err.key == "model.path" and str(path) in err.message


def test_a_truncated_joblib_file(tmp_path, joblib_file):
    good, _, _ = joblib_file
    path = tmp_path / "cut.joblib"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, trust_pickle=True)
    assert _error(excinfo).key == "model.path"


@pytest.mark.parametrize("name,shown", [("model.onnx", "'.onnx'"), ("model", "no extension")])
def test_an_unknown_extension(tmp_path, name, shown):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path)
    err = _error(excinfo)
    assert err.key == "model.format"
    assert shown in err.message and ".skops" in err.message and ".joblib" in err.message
    assert "skops, pickle" in err.message


def test_an_unknown_format_value(tmp_path):
    path = tmp_path / "m.skops"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError) as excinfo:
        load_saved_model(path, fmt="onnx", key="m")
    assert excinfo.value.key == "m.format" and "'onnx'" in excinfo.value.message


# ---------------------------------------------------------------- check_saved_model


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _pipe(LogisticRegression()).fit(X, y)


def test_check_returns_the_models_feature_order(fitted, data):
    _, y = data
    order = check_saved_model(fitted, labels=list(y), feature_names=("income", "city", "age"))
    assert order == ["age", "income", "city"] and all(type(f) is str for f in order)


def test_check_accepts_numpy_integer_classes_against_python_labels():
    X = np.random.RandomState(3).rand(40, 2)
    y = (X[:, 0] > 0.5).astype(np.int64)
    est = LogisticRegression().fit(X, y)
    assert check_saved_model(est, labels=[0, 1, 1, 0], feature_names=["u", "v"]) == ["u", "v"]


@pytest.mark.parametrize("labels,shown", [([0, 1], "[0, 1]"), (["No", "Yes", "Maybe"], "['Maybe', 'No', 'Yes']"),
                                          (["Yes"], "['Yes']")])
def test_check_refuses_classes_that_differ_from_the_labels(fitted, labels, shown):
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(fitted, labels=labels, feature_names=["age", "income", "city"])
    err = _error(excinfo)
    assert err.key == "model.path"
    assert err.message == f"the model's classes ['No', 'Yes'] differ from the label values {shown} in the data"


def test_check_names_missing_and_unexpected_feature_columns(fitted, data):
    _, y = data
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(fitted, key="target", labels=y, feature_names=["age", "income", "zip"])
    err = _error(excinfo)
    assert err.key == "target.path"
    assert "needs but the data lacks: ['city']" in err.message
    assert "not fitted on: ['zip']" in err.message


def test_check_names_only_missing_columns(fitted, data):
    _, y = data
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(fitted, labels=y, feature_names=["age", "income"])
    assert "lacks: ['city']" in excinfo.value.message and "not fitted on" not in excinfo.value.message


def test_check_counts_features_when_the_model_has_no_names():
    X = np.random.RandomState(4).rand(40, 3)
    est = DecisionTreeClassifier(random_state=0).fit(X, np.where(X[:, 0] > 0.5, "a", "b"))
    assert not hasattr(est, "feature_names_in_")
    assert check_saved_model(est, labels=["a", "b"], feature_names=["x", "y", "z"]) == ["x", "y", "z"]
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(est, labels=["a", "b"], feature_names=["x", "y", "z", "w"])
    err = _error(excinfo)
    assert err.key == "model.path" and "fitted on 3 features" in err.message and "has 4" in err.message


@pytest.mark.parametrize("make,name", [
    (lambda: LinearSVC(), "LinearSVC"),
    (lambda: Pipeline([("s", StandardScaler()), ("svc", SVC())]), "Pipeline ending in SVC"),
])
def test_check_refuses_a_model_without_probabilities(make, name):
    X = np.random.RandomState(5).rand(40, 2)
    est = make().fit(X, (X[:, 0] > 0.5).astype(int))
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(est, key="model", labels=[0, 1], feature_names=["u", "v"])
    err = _error(excinfo)
    assert err.key == "model"
    assert err.message == f"{name} gives no class probabilities (predict_proba), which every attack needs"


@pytest.mark.parametrize("est", [LogisticRegression(), _pipe(RandomForestClassifier())], ids=["bare", "pipeline"])
def test_check_refuses_an_unfitted_model(est):
    with pytest.raises(ConfigError) as excinfo:
        check_saved_model(est, labels=["No", "Yes"], feature_names=["age", "income", "city"])
    err = _error(excinfo)
    assert err.key == "model.path" and "not fitted" in err.message
