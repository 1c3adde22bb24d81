"""TRE output checks: rows kept verbatim, small tree leaves, train/test gap, residual dof."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from conftest import compose_config
from mia_engine.checks import (EmbeddedRows, Gap, LeafCheck, embedded_rows, final_estimators, generalisation_gap,
                               residual_dof, tree_leaves)
from mia_engine.data.source import Feature
from mia_engine.models import FrameModel

MP = [1, 1, 3, 2, 1, 62]      # the tutorial's named individual, the last target training row


pytestmark = pytest.mark.usefixtures("quiet_sklearn")


def _plain(value) -> bool:
    """Only JSON's own Python types, all the way down."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def _check_summary(result):
    s = result.summary()
    assert _plain(s), s
    json.dumps(s)
    return s


def _data(n=120, d=4, classes=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    y = rng.randint(0, classes, n)
    return X, y


# ---------------------------------------------------------------------------------------------
# embedded_rows


def test_knn_embeds_every_row_and_finds_a_named_row():
    X, y = _data(60)
    knn = KNeighborsClassifier(n_neighbors=3).fit(X, y)
    fresh = np.full(X.shape[1], 9.5)
    r = embedded_rows(knn, X, named={"member": X[7], "stranger": fresh})
    assert isinstance(r, EmbeddedRows)
    assert (r.family, r.stores_rows, r.n_rows_stored, r.n_train, r.share) == ("KNeighborsClassifier", True, 60, 60, 1.0)
    assert "kNN" in r.how
    assert r.named == {"member": True, "stranger": False}
    assert np.array_equal(r.indices, np.arange(60))
    s = _check_summary(r)
    assert "indices" not in s and s["named"] == {"member": True, "stranger": False}


def test_named_rows_compare_nan_equal():
    X, y = _data(30)
    X[4, 1] = np.nan
    X2 = np.nan_to_num(X)  # kNN cannot fit NaN: fit on a copy, check against the NaN rows
    knn = KNeighborsClassifier(n_neighbors=3).fit(X2, y)
    r = embedded_rows(knn, X, named={"gap": X[4].copy(), "wrong": np.where(np.isnan(X[4]), 0.0, X[4])})
    assert r.named == {"gap": True, "wrong": False}
    with pytest.raises(ValueError, match="named row"):
        embedded_rows(knn, X, named={"short": X[0, :2]})


def test_logistic_regression_embeds_no_rows():
    X, y = _data()
    r = embedded_rows(LogisticRegression().fit(X, y), X, named={"someone": X[0]})
    assert (r.family, r.stores_rows, r.n_rows_stored, r.share) == ("LogisticRegression", False, 0, 0.0)
    assert r.named == {"someone": False}
    assert tree_leaves(LogisticRegression().fit(X, y), X, y) is None
    _check_summary(r)


@pytest.fixture(scope="module")
def tutorial():
    """The tutorial's target SVC at gamma=3 and gamma=0.1, built by the engine."""
    from mia_engine.scenario import run_scenario

    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        for gamma in (3, 0.1):
            r = run_scenario(compose_config(["tracking=none", f"model.gamma={gamma}"]))
            out[gamma] = (r.models["target"], r.datasets["target_train"])
    return out


@pytest.mark.parametrize("gamma, stored", [(3, 194), (0.1, 104)])
def test_tutorial_svc_stores_the_mp(tutorial, gamma, stored):
    model, train = tutorial[gamma]
    X = train.X
    assert X.shape == (200, 6) and X[-1].tolist() == MP
    r = embedded_rows(model, X, named={"MP": np.asarray(MP, dtype=float)})
    assert (r.family, r.how, r.stores_rows) == ("SVC", "support vectors", True)
    assert (r.n_rows_stored, r.n_train, r.share) == (stored, 200, stored / 200)
    assert r.named == {"MP": True}
    assert np.array_equal(r.indices, np.sort(model.support_))
    assert np.array_equal(X[model.support_], model.support_vectors_)   # no preprocessing: rows as given
    # 6 features: every support vector's coordinates plus its dual coefficient
    assert residual_dof(model, 200) == 200 - stored * 7
    assert tree_leaves(model, X, train.y) is None


def test_pipeline_wrapped_svc_uses_training_positions():
    X, y = _data(80)
    model = Pipeline([("preprocess", StandardScaler()), ("model", SVC(C=1.0, gamma=0.5))]).fit(X, y)
    sv = model[-1].support_
    outside = np.setdiff1d(np.arange(80), sv)
    assert len(outside)  # some rows are not support vectors
    r = embedded_rows(model, X, named={"in": X[sv[0]], "out": X[outside[0]]})
    assert (r.family, r.n_rows_stored, r.share) == ("SVC", len(sv), len(sv) / 80)
    assert r.named == {"in": True, "out": False}
    assert np.array_equal(r.indices, np.sort(sv))
    assert final_estimators(model) == [model[-1]]


def test_calibrated_ensemble_of_svcs_finds_each_folds_rows():
    """ensemble=True: each fold's SVC stores rows of its fold; positions found by matching."""
    X, y = _data(90)
    model = CalibratedClassifierCV(SVC(gamma=0.3), cv=3, ensemble=True).fit(X, y)
    expected = set()
    for (train_idx, _), cc in zip(StratifiedKFold(3).split(X, y), model.calibrated_classifiers_):
        expected |= set(train_idx[cc.estimator.support_].tolist())
    r = embedded_rows(model, X)
    assert r.family == "SVC" and len(model.calibrated_classifiers_) == 3
    assert r.n_rows_stored == len(expected)
    assert set(r.indices.tolist()) == expected
    assert residual_dof(model, 90) is None       # three fold models: no single parameter count
    single = CalibratedClassifierCV(SVC(gamma=0.3), cv=3, ensemble=False).fit(X, y)
    inner = single.calibrated_classifiers_[0].estimator
    assert embedded_rows(single, X).n_rows_stored == len(inner.support_)
    assert residual_dof(single, 90) == 90 - len(inner.support_) * 5 - 2   # + Platt's slope and offset


def _researcher_frame(n=50, seed=1):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({"age": rng.randint(20, 90, n).astype(float), "bmi": np.round(rng.normal(27, 4, n), 1)})
    labels = np.where(frame["age"] + 5 * rng.randn(n) > 55, "Yes", "No")
    return frame, labels


def _frame_model(final):
    frame, labels = _researcher_frame()
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "bmi"])])
    est = Pipeline([("pre", pre), ("clf", final)]).fit(frame, labels)
    features = (Feature("age", "numeric"), Feature("bmi", "numeric"))
    model = FrameModel(est, features, ["age", "bmi"], ["No", "Yes"])
    X = frame.to_numpy(dtype=float)
    y = (labels == "Yes").astype(np.int64)
    return model, X, y


def test_frame_model_wrapping_a_researchers_knn_pipeline():
    model, X, y = _frame_model(KNeighborsClassifier(n_neighbors=3))
    r = embedded_rows(model, X, named={"member": X[11], "stranger": np.array([150.0, 5.0])})
    assert (r.family, r.stores_rows, r.n_rows_stored, r.share) == ("KNeighborsClassifier", True, 50, 1.0)
    assert r.named == {"member": True, "stranger": False}
    g = generalisation_gap(model, X, y, X[:10], y[:10])
    assert g.train_accuracy == pytest.approx(np.mean(model.predict(X) == y))


def test_frame_model_wrapping_a_calibrated_ensemble_matches_through_the_dataframe():
    model, X, y = _frame_model(CalibratedClassifierCV(SVC(gamma=1.0), cv=2, ensemble=True))
    cal = model.estimator[-1]
    expected = set()
    folds = StratifiedKFold(2).split(X, np.where(y == 1, "Yes", "No"))
    for (train_idx, _), cc in zip(folds, cal.calibrated_classifiers_):
        expected |= set(train_idx[cc.estimator.support_].tolist())
    r = embedded_rows(model, X)
    assert set(r.indices.tolist()) == expected and r.n_rows_stored == len(expected)


# ---------------------------------------------------------------------------------------------
# tree_leaves


def test_unpruned_tree_on_random_labels_has_single_row_leaves():
    X, y = _data(200, 5, seed=3)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    c = tree_leaves(tree, X, y, min_cell=10)
    assert isinstance(c, LeafCheck)
    sizes = np.bincount(tree.apply(X))
    sizes = sizes[sizes > 0]                       # rows per leaf, counted by hand
    assert (c.n_trees, c.n_leaves, c.min_cell) == (1, tree.get_n_leaves(), 10)
    assert c.n_leaves == len(sizes)
    assert c.min_leaf_size == 1 == sizes.min()
    assert c.n_small_leaves == int((sizes < 10).sum()) > 0
    assert c.share_small == pytest.approx(c.n_small_leaves / c.n_leaves)
    # grown to purity: every leaf holds one class
    assert c.n_pure_small_leaves == c.n_small_leaves > 0
    _check_summary(c)


def test_min_samples_leaf_leaves_no_small_leaves():
    X, y = _data(200, 5, seed=3)
    tree = DecisionTreeClassifier(min_samples_leaf=10, random_state=0).fit(X, y)
    c = tree_leaves(tree, X, y, min_cell=10)
    assert c.min_leaf_size >= 10
    assert (c.n_small_leaves, c.share_small, c.n_pure_small_leaves) == (0, 0.0, 0)
    wrapped = tree_leaves(Pipeline([("scale", StandardScaler()), ("tree", tree)]).fit(X, y), X, y)
    assert wrapped.n_leaves == tree_leaves(tree).n_leaves


def test_random_forest_counts_distinct_in_bag_rows():
    X, y = _data(150, 4, seed=5)
    forest = RandomForestClassifier(n_estimators=7, bootstrap=True, random_state=0).fit(X, y)
    c = tree_leaves(forest, X, y, min_cell=5)
    expected = []
    for est, samples in zip(forest.estimators_, forest.estimators_samples_):
        in_bag = np.unique(samples)
        assert est.tree_.n_node_samples[0] == len(in_bag) < 150       # distinct rows, not draws
        counts = np.bincount(est.apply(X[in_bag]), minlength=est.tree_.node_count)
        leaves = est.tree_.children_left == -1
        assert np.array_equal(counts[leaves], est.tree_.n_node_samples[leaves])
        expected.append(counts[leaves])
    expected = np.concatenate(expected)
    assert (c.n_trees, c.n_leaves) == (7, len(expected))
    assert c.n_small_leaves == int((expected < 5).sum())
    assert c.min_leaf_size == expected.min()
    assert "in-bag" in c.counted
    assert c.n_pure_small_leaves is not None and c.n_pure_small_leaves <= c.n_small_leaves


def test_boosting_leaf_sizes():
    X, y = _data(300, 4, seed=7)
    hgb = HistGradientBoostingClassifier(max_iter=15, min_samples_leaf=15, early_stopping=False,
                                         random_state=0).fit(X, y)
    c = tree_leaves(hgb, X, y, min_cell=10)
    assert c.n_trees == hgb.n_iter_ * hgb.n_trees_per_iteration_ == 15
    assert c.min_leaf_size >= 15 and c.n_small_leaves == 0
    assert c.n_pure_small_leaves is None
    for per_iteration in hgb._predictors:       # every row lands in exactly one leaf
        nodes = per_iteration[0].nodes
        assert nodes["count"][nodes["is_leaf"].astype(bool)].sum() == 300
    gb = GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    g = tree_leaves(gb, X, y)
    assert g.n_trees == 5 and g.n_pure_small_leaves is None
    assert g.n_leaves == sum(t.get_n_leaves() for t in gb.estimators_.ravel())
    _check_summary(g)


# ---------------------------------------------------------------------------------------------
# generalisation_gap


class _Fixed:
    """A model whose answers are written down: classes 3 and 7."""

    classes_ = np.array([3, 7])

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return self.proba[np.asarray(X, dtype=int).ravel()]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def test_generalisation_gap_by_hand():
    model = _Fixed([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [1.0, 0.0]])
    X_train, y_train = np.array([[0], [1], [2]]), np.array([3, 7, 7])      # right, right, wrong
    X_test, y_test = np.array([[2], [3]]), np.array([3, 7])                # right, wrong with p=0
    g = generalisation_gap(model, X_train, y_train, X_test, y_test)
    assert isinstance(g, Gap)
    train_loss = -(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3
    test_loss = -(np.log(0.6) + np.log(1e-15)) / 2
    assert g.train_accuracy == pytest.approx(2 / 3) and g.test_accuracy == pytest.approx(0.5)
    assert g.accuracy_gap == pytest.approx(2 / 3 - 0.5)
    assert g.train_log_loss == pytest.approx(train_loss) and g.test_log_loss == pytest.approx(test_loss)
    assert g.log_loss_gap == pytest.approx(test_loss - train_loss)
    assert (g.n_train, g.n_test) == (3, 2)
    assert _check_summary(g)["n_test"] == 2
    with pytest.raises(ValueError, match="not among"):
        generalisation_gap(model, X_train, np.array([3, 7, 5]), X_test, y_test)


def test_generalisation_gap_of_a_fitted_model():
    X, y = _data(100, 3, classes=3, seed=2)
    model = LogisticRegression().fit(X[:70], y[:70])
    g = generalisation_gap(model, X[:70], y[:70], X[70:], y[70:])
    p = model.predict_proba(X[70:])
    assert g.test_log_loss == pytest.approx(-np.mean(np.log(p[np.arange(30), y[70:]])))
    assert g.test_accuracy == pytest.approx(np.mean(model.predict(X[70:]) == y[70:]))


# ---------------------------------------------------------------------------------------------
# residual_dof


def test_residual_dof_known_shapes():
    X3, y3 = _data(100, 4, classes=3)
    X2, y2 = _data(100, 4, classes=2)
    assert residual_dof(LogisticRegression().fit(X3, y3), 100) == 100 - (3 * 4 + 3)
    assert residual_dof(LogisticRegression().fit(X2, y2), 100) == 100 - (4 + 1)
    assert residual_dof(LogisticRegression(fit_intercept=False).fit(X2, y2), 100) == 96
    assert residual_dof(Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(X3, y3), 100) == 85
    assert residual_dof(GaussianNB().fit(X3, y3), 100) == 100 - (12 + 12 + 3)
    mlp = MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X3, y3)
    assert residual_dof(mlp, 100) == 100 - (4 * 5 + 5 + 5 * 3 + 3)
    assert residual_dof(RandomForestClassifier(n_estimators=3, random_state=0).fit(X3, y3), 100) is None
    assert residual_dof(KNeighborsClassifier().fit(X3, y3), 100) is None
