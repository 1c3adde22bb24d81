"""Scenarios beyond the tutorial: other populations, other models, the audit's behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import compose_config
from mia_engine.scenario import prepare_scenario, execute_scenario, run_scenario

THREE_CLASSES = {
    "name": "three_clinics",
    "sampler": "numpy",
    "seed": 0,
    "classes": {
        "a": {"label": 0, "size": 40, "features": {
            "x": {"dist": "normal", "mean": 0.0, "std": 1.0},
            "k": {"dist": "uniform_int", "low": 0, "high": 3}}},
        "b": {"label": 1, "size": 40, "features": {
            "x": {"dist": "normal", "mean": 1.5, "std": 1.0, "low": -1.0, "high": 5.0},
            "k": {"dist": "uniform_int", "low": 2, "high": 5}}},
        "c": {"label": 2, "size": 40, "features": {
            "x": {"dist": "normal", "mean": 3.0, "std": 1.0},
            "k": {"dist": "poisson", "mu": 4.0, "low": 0, "high": 12}}},
    },
    "target_record": {"name": "someone", "label": 2, "member": True, "features": {"x": 2.5, "k": 4}},
    "probe_records": {},
}


def _with_population(population, overrides=()):
    cfg = compose_config(["tracking=none", "shadow.size_per_class=60", *overrides])
    cfg["data"] = population
    return cfg


def test_three_class_numpy_population_runs_and_is_deterministic():
    cfg = _with_population(THREE_CLASSES, ["model.gamma=1"])
    plan = prepare_scenario(cfg)
    a, b = execute_scenario(plan), execute_scenario(plan)  # a plan can be executed again
    assert a.summary() == b.summary()
    assert a.labels == (0, 1, 2) and len(a.target_record.probabilities) == 3
    assert len(a.datasets["target_train"].y) == 121 and len(a.datasets["audit_nonmembers"].y) == 121
    assert sum(a.target_record.probabilities) == pytest.approx(1.0)
    # Another root seed draws another population sample.
    other = dict(THREE_CLASSES, seed=1)
    assert run_scenario(_with_population(other, ["model.gamma=1"])).summary() != a.summary()


def test_the_audit_tracks_memorisation():
    leaky = run_scenario(compose_config(["tracking=none", "model.gamma=100"])).audit
    smooth = run_scenario(compose_config(["tracking=none", "model.gamma=0.001"])).audit
    assert leaky.auc > 0.9 and leaky.advantage > 0.7
    assert abs(smooth.auc - 0.5) < 0.1 and smooth.advantage < 0.2


def test_csv_rows_keep_integer_features_integral(tmp_path):
    from mia_engine.outputs import write_dataset

    r = run_scenario(_with_population(THREE_CLASSES))
    path = write_dataset(tmp_path / "t.csv", r.datasets["target_train"])
    header, first, *_ = path.read_text().splitlines()
    assert header == "x,k,label"
    x, k, label = first.split(",")
    assert "." in x and k.isdigit() and label == "0"
    assert np.isclose(float(x), r.datasets["target_train"].X[0, 0])


def test_copies_of_members_are_counted_and_dropped_from_the_audit():
    dropped = run_scenario(compose_config(["tracking=none"]))
    kept = run_scenario(compose_config(["tracking=none", "audit.duplicates=keep"]))
    a, b = dropped.summary(), kept.summary()
    # The tutorial's 200 fresh non-members hold 20 exact copies of member rows.
    assert a["audit"] == {"n_members": 200, "n_nonmembers": 180, "n_nonmembers_drawn": 200, "duplicates": 20,
                          "duplicates_policy": "drop"}
    assert b["audit"]["n_nonmembers"] == 200 and b["audit"]["duplicates"] == 20
    # Kept, they are scored like the members they copy: the published audit (AUC 0.930).
    assert round(b["attack"]["auc"], 3) == 0.930 and a["attack"]["n_nonmembers"] == 180
    assert a["attack"]["auc"] > b["attack"]["auc"]
    # Nothing else moves: the individual, the shadow model, the drawn rows.
    assert a["target_record"] == b["target_record"] and a["shadow"] == b["shadow"]
    assert len(dropped.datasets["audit_nonmembers"].y) == 200


def test_copies_of_compares_features_nan_and_label():
    from mia_engine.data.source import Rows
    from mia_engine.scenario.execute import copies_of

    nan = float("nan")
    members = Rows(np.array([[1.0, 2.0], [3.0, nan]]), np.array([0, 1]))
    others = Rows(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, nan], [3.0, 4.0]]), np.array([0, 1, 1, 1]))
    assert copies_of(members, others).tolist() == [True, False, True, False]


def test_bad_duplicates_policy():
    from mia_engine.errors import ConfigError

    with pytest.raises(ConfigError, match="audit.duplicates"):
        prepare_scenario(compose_config(["tracking=none", "audit.duplicates=maybe"]))


@pytest.mark.parametrize("gamma,stored", [(3, 194), (0.1, 104)])
def test_the_tutorial_svc_keeps_the_mp_verbatim(gamma, stored):
    s = run_scenario(compose_config(["tracking=none", f"model.gamma={gamma}"])).summary()
    e = s["checks"]["embedded_rows"]
    assert e["n_rows_stored"] == stored and e["n_train"] == 200 and e["how"] == "support vectors"
    assert e["named"] == {"former_prime_minister": True}
    assert "tree_leaves" not in s["checks"] and s["checks"]["residual_dof"] == 200 - stored * 7
    g = s["checks"]["generalisation"]
    assert g["train_accuracy"] == s["target"]["train_accuracy"] and g["test_accuracy"] == s["target"]["test_accuracy"]


def test_tree_leaves_follow_the_minimum_cell_count():
    small = run_scenario(compose_config(["tracking=none", "model=decision_tree"])).summary()["checks"]
    assert small["embedded_rows"]["stores_rows"] is False and small["tree_leaves"]["min_leaf_size"] == 1
    assert small["tree_leaves"]["n_small_leaves"] > 0 and small["tree_leaves"]["min_cell"] == 10
    pruned = run_scenario(compose_config(["tracking=none", "model=decision_tree", "model.min_samples_leaf=10"]))
    assert pruned.summary()["checks"]["tree_leaves"]["n_small_leaves"] == 0
    five = run_scenario(compose_config(["tracking=none", "model=decision_tree", "risk.min_cell_count=5"]))
    assert five.summary()["checks"]["tree_leaves"]["min_cell"] == 5
    from mia_engine.errors import ConfigError

    with pytest.raises(ConfigError, match="risk.min_cell_count"):
        prepare_scenario(compose_config(["tracking=none", "risk.min_cell_count=0"]))


def test_hyperparameter_rules_from_the_risk_config():
    tree = run_scenario(compose_config(["tracking=none", "model=decision_tree"])).summary()["checks"]["rules"]
    assert tree == [{"estimator": "DecisionTreeClassifier", "param": "min_samples_leaf", "value": 1, "rule": ">= 10",
                     "passed": False, "source": tree[0]["source"]}] and "minimum cell count" in tree[0]["source"]
    ok = run_scenario(compose_config(["tracking=none", "model=decision_tree", "model.min_samples_leaf=12"]))
    assert ok.summary()["checks"]["rules"][0]["passed"] is True
    # The tutorial's SVC has no rule in the default risk file.
    assert "rules" not in run_scenario(compose_config(["tracking=none"])).summary()["checks"]
    from mia_engine.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        prepare_scenario(compose_config(["tracking=none", "risk.rules=[{estimator: SVC, param: C}]"]))
    assert e.value.key == "risk.rules.0" and "min, a max" in e.value.message
    with pytest.raises(ConfigError) as e:
        prepare_scenario(compose_config(["tracking=none", "risk.rules=[{estimator: SVC, param: C, min: x}]"]))
    assert e.value.key == "risk.rules.0.min"


def test_fractional_leaf_sizes_are_read_as_counts():
    from sklearn.tree import DecisionTreeClassifier

    from mia_engine.checks import hyperparameter_rules

    rng = np.random.default_rng(0)
    X, y = rng.random((200, 3)), rng.integers(0, 2, 200)
    model = DecisionTreeClassifier(min_samples_leaf=0.04).fit(X, y)   # 8 of 200 rows
    rule = [{"estimator": "DecisionTreeClassifier", "param": "min_samples_leaf", "min": 10, "source": "s"}]
    assert hyperparameter_rules(model, rule, 200)[0]["passed"] is False
    assert hyperparameter_rules(model, [{**rule[0], "min": 8}], 200)[0]["passed"] is True
    assert hyperparameter_rules(model, [{**rule[0], "estimator": "SVC"}], 200) == []
