"""Population validation (one error per bad value, naming its full key) and the samplers."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from mia_engine.errors import ConfigError
from mia_engine.data.population import NumpySampler, PythonRandomSampler, parse_population

RESP = "data.classes.responders.features"


@pytest.fixture(scope="module")
def data_cfg():
    from conftest import compose_config

    return compose_config(["tracking=none"])["data"]


def _with(cfg, path, value):
    """A copy of cfg with the dotted path set (value None deletes the key)."""
    cfg = copy.deepcopy(cfg)
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return cfg


BAD = [
    ("classes.responders.features.diabetes.p", 1.5, f"{RESP}.diabetes.p", "[0, 1]"),
    ("classes.responders.features.diabetes.p", -0.1, f"{RESP}.diabetes.p", "[0, 1]"),
    ("classes.responders.features.bmi_group.weights", [1, -2, 3, 4], f"{RESP}.bmi_group.weights", ">= 0"),
    ("classes.responders.features.bmi_group.weights", [0, 0, 0, 0], f"{RESP}.bmi_group.weights", "all zero"),
    ("classes.responders.features.bmi_group.weights", [1, 2], f"{RESP}.bmi_group.weights", "one weight per value"),
    ("classes.responders.features.age.mu", 0, f"{RESP}.age.mu", "> 0"),
    ("classes.responders.features.age.mu", -72, f"{RESP}.age.mu", "> 0"),
    ("classes.responders.features.age.low", 95, f"{RESP}.age.low", "above high"),
    ("classes.responders.features.age", {"dist": "poisson", "mu": 2, "low": 300, "high": 400},
     f"{RESP}.age", "no probability mass"),
    ("classes.responders.features.age", {"dist": "normal", "mean": 0, "std": 1, "low": 60, "high": 70},
     f"{RESP}.age", "no probability mass"),
    ("classes.responders.features.age", {"dist": "normal", "mean": 50, "std": 0}, f"{RESP}.age.std", "> 0"),
    ("classes.responders.features.age", {"dist": "uniform_int", "low": 5, "high": 2}, f"{RESP}.age.low", "above"),
    ("classes.responders.features.age", {"dist": "uniform_int", "low": 1.5, "high": 2},
     f"{RESP}.age.low", "integer"),
    ("classes.responders.features.age.dist", "gamma", f"{RESP}.age.dist", "unknown distribution"),
    ("classes.responders.features.age", {"dist": "poisson"}, f"{RESP}.age.mu", "needs mu"),
    ("classes.responders.features.age", {"dist": "bernoulli", "p": 0.5, "mu": 3}, f"{RESP}.age.mu",
     "not a parameter"),
    ("classes.responders.features.age", {"dist": "poisson", "mu": 3, "rate": 3}, f"{RESP}.age.rate", "unknown key"),
    ("classes.responders.size", 0, "data.classes.responders.size", "at least one row"),
    ("classes.responders.features", {}, "data.classes.responders.features", "at least one feature"),
    ("classes.non_responders.features.age", None, "data.classes.non_responders.features", "missing age"),
    ("classes.non_responders.features.height", {"dist": "normal", "mean": 170, "std": 10},
     "data.classes.non_responders.features", "extra height"),
    ("classes.non_responders.label", 1, "data.classes", "distinct"),
    ("classes.non_responders", None, "data.classes", "at least two classes"),
    ("target_record.features.age", None, "data.target_record.features.age", "missing"),
    ("target_record.features.height", 180, "data.target_record.features.height", "unknown feature"),
    ("target_record.features.age", 95, "data.target_record.features.age", "outside the feature's support"),
    ("target_record.features.bmi_group", 7, "data.target_record.features.bmi_group", "outside"),
    ("target_record.features.smoker", 0.5, "data.target_record.features.smoker", "outside"),
    ("target_record.features.age", 62.5, "data.target_record.features.age", "outside"),
    ("target_record.label", 3, "data.target_record.label", "not a class label"),
    ("probe_records.example_patient.asthma", 2, "data.probe_records.example_patient.asthma", "outside"),
    ("sampler", "mersenne", "data.sampler", "unknown sampler"),
    ("seed", -1, "data.seed", "non-negative"),
]


@pytest.mark.parametrize("path,value,key,fragment", BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_bad_population_names_the_key(data_cfg, path, value, key, fragment):
    with pytest.raises(ConfigError) as err:
        parse_population(_with(data_cfg, path, value))
    assert err.value.key == key
    assert fragment in err.value.message
    assert "\n" not in str(err.value)


def test_tutorial_population_parses(data_cfg):
    pop = parse_population(data_cfg)
    assert pop.feature_names == ("diabetes", "asthma", "bmi_group", "blood_pressure", "smoker", "age")
    assert pop.labels == (0, 1) and pop.class_names == ("responders", "non_responders")
    assert pop.target_record.values == (1, 1, 3, 2, 1, 62) and pop.target_record.member is True


def test_python_sampler_follows_the_notebook_draw_order(data_cfg):
    from scipy.stats import poisson

    pop = parse_population(data_cfg)
    s = PythonRandomSampler(pop).draw("target", {"responders": 4, "non_responders": 3})
    rnd = random.Random(12345)
    diabetes = [[1, 0][rnd.random() > 0.7] for _ in range(4)] + [[1, 0][rnd.random() > 0.2] for _ in range(3)]
    asthma = [[1, 0][rnd.random() > 0.7] for _ in range(4)] + [[1, 0][rnd.random() > 0.5] for _ in range(3)]
    bmi = [rnd.choices([1, 2, 3, 4], weights=[0.5, 5, 7, 5], k=1)[0] for _ in range(4)] + \
          [rnd.choices([1, 2, 3, 4], weights=[1, 7, 4, 1], k=1)[0] for _ in range(3)]
    bp = [rnd.choices(range(6), weights=[0.5, 1, 5, 6, 1, 0.5], k=1)[0] for _ in range(4)] + \
         [rnd.choices(range(6), weights=[0.5, 5, 5, 1, 1, 0.5], k=1)[0] for _ in range(3)]
    smoker = [[1, 0][rnd.random() > 0.8] for _ in range(4)] + [[1, 0][rnd.random() > 0.2] for _ in range(3)]
    x = np.arange(20, 90)
    age = [rnd.choices(x, weights=poisson.pmf(x, 72), k=1)[0] for _ in range(4)] + \
          [rnd.choices(x, weights=poisson.pmf(x, 55), k=1)[0] for _ in range(3)]
    expected = np.column_stack([diabetes, asthma, bmi, bp, smoker, age]).astype(float)
    np.testing.assert_array_equal(s.X, expected)
    np.testing.assert_array_equal(s.y, [1, 1, 1, 1, 0, 0, 0])


def _numpy_pop(features_0, features_1, seed=3):
    return parse_population({
        "name": "synthetic", "sampler": "numpy", "seed": seed,
        "classes": {"a": {"label": 0, "size": 10, "features": features_0},
                    "b": {"label": 1, "size": 10, "features": features_1}},
    })


FEATURES = {
    "flag": {"dist": "bernoulli", "p": 0.3},
    "cat": {"dist": "categorical", "values": [10, 20, 30], "weights": [1, 0, 3]},
    "count": {"dist": "poisson", "mu": 4.0},
    "bounded_count": {"dist": "poisson", "mu": 50.0, "low": 45, "high": 55},
    "height": {"dist": "normal", "mean": 170.0, "std": 10.0},
    "weight": {"dist": "normal", "mean": 70.0, "std": 15.0, "low": 60.0, "high": 75.0},
    "die": {"dist": "uniform_int", "low": 1, "high": 6},
}


@pytest.mark.parametrize("sampler_cls", [NumpySampler, PythonRandomSampler])
def test_samplers_respect_each_distribution(sampler_cls):
    pop = _numpy_pop(FEATURES, FEATURES)
    s = sampler_cls(pop).draw("target", {"a": 20000, "b": 10})
    cols = {f: s.X[:20000, i] for i, f in enumerate(pop.feature_names)}
    assert set(np.unique(cols["flag"])) == {0.0, 1.0} and cols["flag"].mean() == pytest.approx(0.3, abs=0.015)
    assert set(np.unique(cols["cat"])) == {10.0, 30.0} and (cols["cat"] == 30).mean() == pytest.approx(0.75, abs=0.015)
    assert cols["count"].mean() == pytest.approx(4.0, abs=0.06) and cols["count"].min() >= 0
    assert cols["bounded_count"].min() >= 45 and cols["bounded_count"].max() <= 55
    assert cols["height"].mean() == pytest.approx(170, abs=0.3) and cols["height"].std() == pytest.approx(10, abs=0.3)
    assert cols["weight"].min() >= 60 and cols["weight"].max() <= 75
    assert set(np.unique(cols["die"])) == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    assert list(np.unique(s.y)) == [0, 1] and len(s.y) == 20010


def test_numpy_streams_are_independent_per_feature_class_and_draw():
    base = _numpy_pop(FEATURES, FEATURES)
    changed = dict(FEATURES, height={"dist": "normal", "mean": 100.0, "std": 1.0})
    other = _numpy_pop(changed, FEATURES)
    a = NumpySampler(base).draw("target", {"a": 50, "b": 50})
    b = NumpySampler(other).draw("target", {"a": 50, "b": 50})
    hi = base.feature_names.index("height")
    keep = [i for i in range(len(base.feature_names)) if i != hi]
    np.testing.assert_array_equal(a.X[:, keep], b.X[:, keep])  # only the changed feature moves
    assert not np.array_equal(a.X[:50, hi], b.X[:50, hi])
    np.testing.assert_array_equal(a.X[50:, hi], b.X[50:, hi])  # ... and only in its class
    # Another class size leaves the other class untouched; another purpose is another stream.
    c = NumpySampler(base).draw("target", {"a": 50, "b": 7})
    np.testing.assert_array_equal(a.X[:50], c.X[:50])
    d = NumpySampler(base).draw("shadow", {"a": 50, "b": 50})
    assert not np.array_equal(a.X, d.X)
    # Same seed, same rows; another seed, other rows.
    np.testing.assert_array_equal(a.X, NumpySampler(base).draw("target", {"a": 50, "b": 50}).X)
    assert not np.array_equal(a.X, NumpySampler(_numpy_pop(FEATURES, FEATURES, seed=4)).draw(
        "target", {"a": 50, "b": 50}).X)


def test_seed_zero_is_a_seed():
    z1 = NumpySampler(_numpy_pop(FEATURES, FEATURES, seed=0)).draw("target", {"a": 5, "b": 5}).X
    z2 = NumpySampler(_numpy_pop(FEATURES, FEATURES, seed=0)).draw("target", {"a": 5, "b": 5}).X
    np.testing.assert_array_equal(z1, z2)
