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
