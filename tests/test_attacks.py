"""The attack family on cases whose answer is known, and the arithmetic of each score."""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from conftest import compose_config
from mia_engine import attacks as attacks_mod
from mia_engine.attacks import (REGISTRY, Attack, Boolean, Candidates, Choice, Classifier, FeatureList, Integer,
                                Interval, Knowledge, LiraAttack, OrNone, Real, RmiaAttack, build_attack, build_attacks,
                                validate_params)
from mia_engine.errors import ConfigError
from mia_engine.scenario import run_scenario
from mia_engine.signals import FEATURES, attack_features, entropy, true_label_logit, true_label_probability

# Labels that carry no signal: both classes draw the same continuous features, so a model
# can only fit its training rows by memorising them, and anything it gets right on fresh
# rows is chance. The individual is a member.
NOISE = {
    "name": "noise_labels",
    "sampler": "numpy",
    "seed": 7,
    "classes": {
        name: {"label": label, "size": 60, "features": {
            "x1": {"dist": "normal", "mean": 0.0, "std": 1.0},
            "x2": {"dist": "normal", "mean": 0.0, "std": 1.0},
            "x3": {"dist": "uniform_int", "low": 0, "high": 50}}}
        for name, label in (("a", 0), ("b", 1))
    },
    "target_record": {"name": "someone", "label": 1, "member": True, "features": {"x1": 0.3, "x2": -1.2, "x3": 17}},
    "probe_records": {},
}
MEMORISER = {"_target_": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 40, "bootstrap": False,
             "max_features": 1, "random_state": 3}
IGNORES_INPUT = {"_target_": "sklearn.dummy.DummyClassifier", "strategy": "prior"}
ALL = ["shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline", "lira_population",
       "rmia_population", "worst_case"]


def _noise_scenario(model, extra=()):
    cfg = compose_config(["tracking=none", "attack=suite", "reference.n_models=16", "reference.cache=false",
                          "shadow.size_per_class=60", "attack.worst_case.n_repeats=2",
                          "attack.worst_case.classifier.n_estimators=30", *extra])
    cfg["data"] = NOISE
    cfg["model"] = dict(model)
    return run_scenario(cfg)


@pytest.fixture(scope="module")
def memorised():
    return _noise_scenario(MEMORISER)


@pytest.mark.parametrize("name", ALL)
def test_a_memorising_target_is_caught(memorised, name):
    m = memorised.attacks[name].metrics
    assert m.n_members == 121 and m.n_nonmembers == 121
    # Fresh rows are classified at chance, training rows remembered: every attack sees it.
    assert m.auc > 0.9, (name, m.auc)
    assert m.auc_ci[0] > 0.8 and m.auc_pvalue < 1e-20


def test_a_memorising_target_gives_itself_away_at_low_fpr(memorised):
    assert memorised.target_test_accuracy == pytest.approx(0.5, abs=0.12)
    assert memorised.attacks["lira"].metrics.tpr_at_fpr[0.01] > 0.5
    # The individual is a member and every attack says so.
    assert all(pm for _, pm in memorised.target_record.attack_scores.values())


@pytest.mark.parametrize("name", ALL)
def test_a_target_that_ignores_its_input_leaks_nothing(name):
    r = _ignoring()
    m = r.attacks[name].metrics
    if name == "worst_case":
        # Constant features: each fold's classifier returns its own training fold's share of
        # members, which stratified folds keep within a row or two of one half.
        assert m.auc == pytest.approx(0.5, abs=0.02) and m.epsilon_lower_bound < 0.2
        return
    # The prior classifier answers every record alike: every score ties, AUC exactly 0.5.
    assert m.auc == pytest.approx(0.5, abs=1e-12)
    assert m.advantage == pytest.approx(0.0, abs=1e-12) and m.epsilon_lower_bound == 0.0


_cache = {}


def _ignoring():
    if "r" not in _cache:
        _cache["r"] = _noise_scenario(IGNORES_INPUT)
    return _cache["r"]


def test_suite_trains_reference_models_once(monkeypatch):
    import mia_engine.reference as reference

    calls = []
    real = reference.train_reference_models
    monkeypatch.setattr(reference, "train_reference_models", lambda *a, **k: calls.append(k) or real(*a, **k))
    r = _noise_scenario(IGNORES_INPUT, ["reference.n_models=8", "attack.worst_case.n_repeats=1"])
    # Six attacks read reference models; one set per pool serves them all: the candidates
    # pool (online and offline) and the population rows only (the *_population attacks).
    assert sum(a.reference_models > 0 for a in r.attacks.values()) == 6
    assert len(calls) == 2 and [c["n_models"] for c in calls] == [8, 8]
    pools = r.reference["pools"]
    assert list(pools) == ["candidates", "population"]
    # The population pool is the attacker's rows alone: no scored record in any model.
    assert pools["population"]["pool_rows"] == r.summary()["shadow"]["n_train"] + r.summary()["shadow"]["n_test"]


def test_suite_names_the_strongest(memorised):
    assert memorised.reference["n_models"] == 16 and memorised.reference["from_cache"] is False
    # The 121 + 121 scored records are twice the target's 121 rows: a half matches the
    # target's size without the attacker's 60 + 60 population rows (pool_population=auto).
    assert memorised.reference["pool_rows"] == 242 and memorised.reference["population_in_pool"] is False
    s = memorised.summary()
    assert set(s["attacks"]) == set(ALL)
    best = s["attack"]["name"]
    # The headline comes from the attacks an attacker could run; worst_case, trained on the
    # audit's membership labels, reports apart as the upper bound.
    others = [a["tpr_at_fpr_0.01"] for a in s["attacks"].values() if not a["upper_bound"]]
    assert s["attack"]["tpr_at_fpr_0.01"] == max(others) and best != "worst_case"
    assert s["target_record"]["attack"] == best
    assert s["upper_bound"]["name"] == "worst_case" and s["attacks"]["worst_case"]["upper_bound"] is True
    assert s["upper_bound"]["auc"] == s["attacks"]["worst_case"]["auc"]
    assert "membership labels" in s["upper_bound"]["threat_model"]
    assert "candidate records" in s["attacks"]["lira"]["threat_model"]
    assert s["attacks"]["lira_offline"]["threat_model"] == OFFLINE
    assert s["attacks"]["rmia_population"]["threat_model"] == POPULATION
    assert s["attacks"]["lira"]["reference_models"] == 16 and s["attacks"]["shadow_lr"]["reference_models"] == 0


# ---- arithmetic ---------------------------------------------------------------------------------


def test_true_label_logit_is_finite_and_exact_at_the_edges():
    P = np.array([[0.2, 0.8], [1.0, 0.0], [1 - 1e-17, 1e-17], [0.25, 0.75]])
    y = np.array([1, 0, 1, 0])
    phi = true_label_logit(P, y, np.array([0, 1]))
    assert phi[0] == pytest.approx(math.log(4))
    assert phi[3] == pytest.approx(-math.log(3))
    # p_true == 1 exactly: log(1) - log(tiny), finite; 1e-17 is kept, not rounded to 1 - p.
    assert np.isfinite(phi).all() and phi[1] == pytest.approx(-math.log(np.finfo(float).tiny))
    assert phi[2] == pytest.approx(math.log(1e-17) - math.log(1 - 1e-17))


def test_attack_features():
    P = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    y = np.array([2, 0])
    classes = np.array([0, 1, 2])
    X = attack_features(P, y, classes, ["max_probability", "true_label_probability", "sorted_probabilities",
                                         "entropy"])
    np.testing.assert_allclose(X[0], [0.6, 0.3, 0.6, 0.3, 0.1, -(0.1 * math.log(0.1) + 0.6 * math.log(0.6)
                                                                  + 0.3 * math.log(0.3))])
    assert entropy(np.array([[1.0, 0.0]]))[0] == 0.0
    with pytest.raises(ValueError, match="not among the model's classes"):
        true_label_probability(P, np.array([5, 0]), classes)


def _toy_reference():
    # 4 reference models, 3 pool rows (0, 1: the scored records; 2: a population row z).
    in_mask = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    p_true = np.array([[0.9, 0.6, 0.7], [0.5, 0.8, 0.4], [0.95, 0.85, 0.5], [0.4, 0.3, 0.8]])
    # The models' scores: the logit of p_true (label 1 is every record's true label), kept as float32.
    scores = (np.log(p_true) - np.log(1 - p_true)).astype(np.float32)
    ref = SimpleNamespace(in_mask=in_mask, scores=scores, labels=np.ones(3, int), classes=np.array([0, 1]))
    return ref, p_true


def _logit(p):
    return math.log(p) - math.log(1 - p)


# One block, and one record per block (4 models x 1 record): the scores are the same either way.
BLOCKS = pytest.mark.parametrize("cells", [1 << 22, 4], ids=["one_block", "record_by_record"])


@BLOCKS
def test_lira_online_and_offline_scores_by_hand(cells, monkeypatch):
    monkeypatch.setattr(attacks_mod, "_CHUNK_CELLS", cells)
    ref, p_true = _toy_reference()
    knowledge = Knowledge(classes=np.array([0, 1]), reference=ref)
    target_p = np.array([0.8, 0.3])
    cands = Candidates(np.zeros((2, 1)), np.array([1, 1]), np.stack([1 - target_p, target_p], axis=1),
                       np.array([True, False]), np.array([True, True]), reference_index=np.array([0, 1]))
    online = LiraAttack("lira").fit(knowledge).score(cands, knowledge)
    offline = LiraAttack("off", online=False).fit(knowledge).score(cands, knowledge)
    # Record 0: IN models 0 and 2, OUT models 1 and 3.
    phi_in = [_logit(0.9), _logit(0.95)]
    phi_out = [_logit(0.5), _logit(0.4)]
    t = _logit(0.8)
    expected = (norm.logpdf(t, np.mean(phi_in), np.std(phi_in, ddof=1))
                - norm.logpdf(t, np.mean(phi_out), np.std(phi_out, ddof=1)))
    assert online[0] == pytest.approx(expected)
    assert offline[0] == pytest.approx(-norm.logsf(t, np.mean(phi_out), np.std(phi_out, ddof=1)))
    # Fixed variance: one standard deviation pooled from both records' IN residuals.
    fixed = LiraAttack("fx", variance="fixed").fit(knowledge).score(cands, knowledge)
    in1 = [_logit(0.8), _logit(0.85)]
    pooled_in = math.sqrt((np.var(phi_in) * 2 + np.var(in1) * 2) / 2)
    out0 = np.std(phi_out, ddof=1)
    out1 = [_logit(0.6), _logit(0.3)]
    pooled_out = math.sqrt((np.var(phi_out) * 2 + np.var(out1) * 2) / 2)
    assert fixed[0] == pytest.approx(norm.logpdf(t, np.mean(phi_in), pooled_in)
                                     - norm.logpdf(t, np.mean(phi_out), pooled_out))
    assert out0 != pooled_out
    # Decision thresholds: log-LR 0 online, -ln 0.05 offline.
    assert LiraAttack("x", online=False).fit(knowledge).threshold_ == 3.0


@BLOCKS
def test_rmia_scores_by_hand(cells, monkeypatch):
    monkeypatch.setattr(attacks_mod, "_CHUNK_CELLS", cells)
    ref, p_true = _toy_reference()
    knowledge = Knowledge(classes=np.array([0, 1]), reference=ref, population_index=np.array([2]),
                          population_y=np.array([1]),
                          population_target_probabilities=np.array([[0.4, 0.6]]))
    target_p = np.array([0.8, 0.3])
    cands = Candidates(np.zeros((2, 1)), np.array([1, 1]), np.stack([1 - target_p, target_p], axis=1),
                       np.array([True, False]), np.array([True, True]), reference_index=np.array([0, 1]))
    online = RmiaAttack("rmia", tie_break=False).fit(knowledge).score(cands, knowledge)
    pr_z = p_true[:, 2].mean()                      # all models, online
    ratio_z = 0.6 / pr_z
    ratio_x = np.array([0.8 / p_true[:, 0].mean(), 0.3 / p_true[:, 1].mean()])
    np.testing.assert_array_equal(online, (ratio_x / ratio_z >= 1.0).astype(float))
    a = 0.3
    off = RmiaAttack("off", online=False, gamma=1.2, a=a, tie_break=False).fit(knowledge).score(cands, knowledge)
    out_mean = lambda j: p_true[~ref.in_mask[:, j], j].mean()  # noqa: E731
    approx = lambda j: 0.5 * ((1 + a) * out_mean(j) + 1 - a)  # noqa: E731
    lr = np.array([0.8 / approx(0), 0.3 / approx(1)]) / (0.6 / approx(2))
    np.testing.assert_array_equal(off, (lr >= 1.2).astype(float))
    assert off[0] == 1.0 and off[1] == 0.0


def test_rmia_tie_break_orders_ties_and_keeps_decisions():
    rng = np.random.default_rng(0)
    n_z, n_x = 7, 300
    ref = SimpleNamespace(in_mask=np.zeros((4, n_z), bool), classes=np.array([0, 1]),
                          scores=np.zeros((4, n_z + n_x), np.float32), labels=np.ones(n_z + n_x, int))
    pz = rng.uniform(0.05, 0.95, n_z)
    knowledge = Knowledge(classes=np.array([0, 1]), reference=ref, population_index=np.arange(n_z),
                          population_y=np.ones(n_z, int), population_target_probabilities=np.stack([1 - pz, pz], 1))
    px = rng.uniform(0.0, 1.0, n_x)
    cands = Candidates(np.zeros((n_x, 1)), np.ones(n_x, int), np.stack([1 - px, px], 1), np.ones(n_x, bool),
                       np.ones(n_x, bool), reference_index=n_z + np.arange(n_x))
    plain = RmiaAttack("p", online=False, tie_break=False, threshold=0.5).fit(knowledge)
    broken = RmiaAttack("b", online=False, tie_break=True, threshold=0.5).fit(knowledge)
    f, t = plain.score(cands, knowledge), broken.score(cands, knowledge)
    # Ties on the fraction (only 8 values for 300 records) are broken in the order of p(x) ...
    assert len(np.unique(f)) <= n_z + 1 and len(np.unique(t)) == n_x
    assert np.array_equal(np.argsort(t, kind="stable"), np.argsort(px, kind="stable"))
    # ... without crossing a step: the decisions at the threshold are the fraction's.
    assert broken.threshold_ == 4 / 7
    assert np.array_equal(f >= plain.threshold_, t >= broken.threshold_)
    assert np.all((t - f >= 0) & (t - f < 1 / (2 * n_z)))


# ---- the generalised shadow attack and the loss threshold -------------------------------------


def test_shadow_lr_generalised():
    base = run_scenario(compose_config(["tracking=none"]))
    many = run_scenario(compose_config(["tracking=none", "attack.shadow_lr.n_shadow_models=3",
                                        "attack.shadow_lr.features=[sorted_probabilities,entropy,true_label_logit]",
                                        "attack.shadow_lr.per_class=true"]))
    # Shadow model 0 is the tutorial's whatever k is; the attack learns from all three.
    assert many.shadow_train_mean_confidence == base.shadow_train_mean_confidence
    attack = many.models["attack_shadow_lr"]
    assert len(attack.classifiers_) == 2 and attack.classifiers_[0][0].n_features_in_ == 4
    assert {"shadow", "shadow_1", "shadow_2"} <= set(many.models)
    assert many.attacks["shadow_lr"].metrics.auc != base.attacks["shadow_lr"].metrics.auc
    # The extra shadow models' splits and seeds are derived, not repeated.
    s1, s2 = many.models["shadow_1"], many.models["shadow_2"]
    assert not np.array_equal(s1.support_vectors_, s2.support_vectors_)


def test_loss_threshold_calibrations():
    r = run_scenario(compose_config(["tracking=none", "attack=[loss_threshold]"]))
    attack = r.models["attack_loss_threshold"]
    shadow = r.models["shadow"]
    X_in = r.datasets["shadow_train"].X
    y_in = r.datasets["shadow_train"].y
    p = shadow.predict_proba(X_in)[np.arange(len(y_in)), y_in]
    assert attack.threshold_ == pytest.approx(np.mean(np.log(p)))
    best = run_scenario(compose_config(["tracking=none", "attack=[loss_threshold]",
                                        "attack.loss_threshold.calibration=best_accuracy"]))
    b = best.attacks["loss_threshold"]
    assert b.threshold != attack.threshold_
    fixed = run_scenario(compose_config(["tracking=none", "attack=[loss_threshold]",
                                         "attack.loss_threshold.threshold=-0.5"]))
    assert fixed.attacks["loss_threshold"].threshold == -0.5


def test_loss_threshold_best_accuracy_by_hand():
    from mia_engine.attacks import LossThresholdAttack, ShadowModel

    # log p_true: members -0.1, -0.2, -0.9; non-members -0.3, -0.8, -1.5. The cut at -0.2
    # calls 2 members right and all 3 non-members: 5 of 6, better than any other cut.
    def probs(logp):
        p = np.exp(np.asarray(logp))
        return np.stack([1 - p, p], axis=1)

    shadow = ShadowModel(None, None, np.ones(3, int), None, np.ones(3, int), probs([-0.1, -0.2, -0.9]),
                         probs([-0.3, -0.8, -1.5]))
    attack = LossThresholdAttack("lt", calibration="best_accuracy").fit(
        Knowledge(classes=np.array([0, 1]), shadow_models=[shadow]))
    assert attack.threshold_ == pytest.approx(-0.2)
    mean = LossThresholdAttack("lt").fit(Knowledge(classes=np.array([0, 1]), shadow_models=[shadow]))
    assert mean.threshold_ == pytest.approx(-0.4)


# ---- the registry and the parameter validator ------------------------------------------------

LOGREG = {"_target_": "sklearn.linear_model.LogisticRegression"}
# The smallest node of each kind built in code: everything else takes the constructor's default.
MINIMAL = {
    "shadow_lr": {"kind": "shadow_lr", "classifier": LOGREG},
    "loss_threshold": {"kind": "loss_threshold"},
    "lira": {"kind": "lira"},
    "rmia": {"kind": "rmia"},
    "worst_case": {"kind": "worst_case", "classifier": LOGREG},
}
AVAILABLE = ", ".join(FEATURES)


def _build(kind, **params):
    return build_attack("x", {**MINIMAL[kind], **params}, "attack.x")


def _state(attack):
    """An attack's constructor state, its classifier compared by parameters."""
    return {k: (type(v).__name__, v.get_params() if k == "classifier" else v) for k, v in vars(attack).items()}


@pytest.mark.parametrize("kind,params,key,message", [
    # Interval (with and without `what`)
    ("shadow_lr", {"threshold": 1.5}, "threshold", "a probability threshold must lie in [0, 1], got 1.5"),
    ("rmia", {"threshold": -0.1}, "threshold", "a probability threshold must lie in [0, 1], got -0.1"),
    ("worst_case", {"threshold": None}, "threshold", "a probability threshold must lie in [0, 1], got None"),
    ("rmia", {"threshold": float("nan")}, "threshold", "a probability threshold must lie in [0, 1], got nan"),
    ("rmia", {"a": 2}, "a", "must lie in [0, 1], got 2"),
    ("rmia", {"a": "half"}, "a", "must lie in [0, 1], got 'half'"),
    # Real(gt=0) and OrNone(Real())
    ("rmia", {"gamma": 0}, "gamma", "RMIA's likelihood-ratio threshold must be positive, got 0"),
    ("rmia", {"gamma": -1.5}, "gamma", "RMIA's likelihood-ratio threshold must be positive, got -1.5"),
    ("rmia", {"gamma": None}, "gamma", "RMIA's likelihood-ratio threshold must be a number, got None"),
    ("loss_threshold", {"threshold": "low"}, "threshold", "must be a number, got 'low'"),
    ("lira", {"threshold": True}, "threshold", "must be a number, got True"),
    # Integer(min=...)
    ("shadow_lr", {"n_shadow_models": 0}, "n_shadow_models", "must be at least 1, got 0"),
    ("loss_threshold", {"n_shadow_models": None}, "n_shadow_models", "must be at least 1, got None"),
    ("shadow_lr", {"n_shadow_models": 1.5}, "n_shadow_models", "must be an integer, got 1.5"),
    ("worst_case", {"n_folds": 1}, "n_folds", "must be at least 2, got 1"),
    ("worst_case", {"n_repeats": 0}, "n_repeats", "must be at least 1, got 0"),
    ("worst_case", {"seed": -1}, "seed", "must be at least 0, got -1"),
    ("worst_case", {"seed": "abc"}, "seed", "must be an integer, got 'abc'"),
    # Choice
    ("loss_threshold", {"calibration": "median"}, "calibration",
     "unknown calibration 'median'; available: mean_train_loss, best_accuracy"),
    ("lira", {"variance": "global"}, "variance", "unknown variance 'global'; available: per_record, fixed"),
    ("lira", {"variance": None}, "variance", "unknown variance None; available: per_record, fixed"),
    # Boolean
    ("lira", {"online": "false"}, "online", "must be true or false, got 'false'"),
    ("shadow_lr", {"per_class": 1}, "per_class", "must be true or false, got 1"),
    ("rmia", {"tie_break": None}, "tie_break", "must be true or false, got None"),
    # FeatureList
    ("shadow_lr", {"features": []}, "features", f"name at least one feature; available: {AVAILABLE}"),
    ("worst_case", {"features": None}, "features", f"name at least one feature; available: {AVAILABLE}"),
    ("shadow_lr", {"features": ["entropy", "loss"]}, "features.1",
     f"unknown attack feature 'loss'; available: {AVAILABLE}"),
    ("shadow_lr", {"features": "entropy"}, "features",
     f"must be a list of features, e.g. [max_probability], got 'entropy'; available: {AVAILABLE}"),
    # Classifier
    ("shadow_lr", {"classifier": {"_target_": "sklearn.svm.LinearSVC"}}, "classifier",
     "LinearSVC gives no probabilities (predict_proba)"),
    ("worst_case", {"classifier": "sklearn.linear_model.LogisticRegression"}, "classifier",
     "must be an estimator node {_target_: ..., ...}, got 'sklearn.linear_model.LogisticRegression'"),
    # a key the attack does not declare
    ("lira", {"thresold": 1.0}, "thresold", "unknown parameter of attack kind 'lira'; it takes: online, variance, "
                                            "threshold, pool"),
    ("rmia", {"n_shadow_models": 2}, "n_shadow_models", "unknown parameter of attack kind 'rmia'; it takes: online, "
                                                        "gamma, a, threshold, tie_break, pool"),
])
def test_a_bad_parameter_is_an_error_naming_its_key(kind, params, key, message):
    with pytest.raises(ConfigError) as err:
        _build(kind, **params)
    assert err.value.key == f"attack.x.{key}"
    assert err.value.message == message


@pytest.mark.parametrize("kind", ["shadow_lr", "worst_case"])
def test_the_classifier_is_required(kind):
    node = {k: v for k, v in MINIMAL[kind].items() if k != "classifier"}
    with pytest.raises(ConfigError) as err:
        build_attack("x", node, "attack.x")
    assert err.value.key == "attack.x.classifier" and err.value.message.startswith("missing")


@pytest.mark.parametrize("kind,params,attribute,expected", [
    ("shadow_lr", {"threshold": 0}, "threshold", 0.0),           # bounds are inclusive
    ("shadow_lr", {"threshold": 1}, "threshold", 1.0),
    ("shadow_lr", {"n_shadow_models": 3.0}, "n_shadow_models", 3),
    ("shadow_lr", {"n_shadow_models": np.int64(2)}, "n_shadow_models", 2),
    ("shadow_lr", {"per_class": np.bool_(True)}, "per_class", True),
    ("shadow_lr", {"features": ("entropy", "true_label_logit")}, "features", ("entropy", "true_label_logit")),
    ("loss_threshold", {"threshold": None}, "threshold", None),
    ("loss_threshold", {"threshold": -0.5}, "threshold", -0.5),
    ("loss_threshold", {"calibration": "best_accuracy"}, "calibration", "best_accuracy"),
    ("lira", {"threshold": 7}, "threshold", 7.0),
    ("lira", {"online": False}, "online", False),
    ("lira", {"variance": "fixed"}, "variance", "fixed"),
    ("rmia", {"gamma": 1e-9}, "gamma", 1e-9),
    ("rmia", {"a": 0}, "a", 0.0),
    ("rmia", {"a": 1}, "a", 1.0),
    ("rmia", {"tie_break": False}, "tie_break", False),
    ("worst_case", {"seed": 0}, "seed", 0),
    ("worst_case", {"n_folds": 2}, "n_folds", 2),
])
def test_accepted_parameters_reach_the_constructor(kind, params, attribute, expected):
    value = getattr(_build(kind, **params), attribute)
    assert value == expected and type(value) is type(expected)


def test_the_constraints_on_their_own():
    assert Integer()(-3, "k") == -3 and Integer(min=0)(0, "k") == 0
    assert Real(gt=1)(1.5, "k") == 1.5
    for bad in (float("inf"), float("-inf")):  # a threshold or ratio of inf silently decides nothing
        with pytest.raises(ConfigError, match="finite"):
            Real()(bad, "k")
    with pytest.raises(ConfigError, match="^k: must be greater than 1, got 1$"):
        Real(gt=1)(1, "k")
    assert Interval(-1, 2)(-1, "k") == -1.0
    with pytest.raises(ConfigError, match=r"^k: must lie in \[-1, 2\], got 3$"):
        Interval(-1, 2)(3, "k")
    assert Choice("a", "b")("b", "x.mode") == "b"
    with pytest.raises(ConfigError, match=r"^x\.mode: unknown mode \['a'\]; available: a, b$"):
        Choice("a", "b")(["a"], "x.mode")
    assert Boolean()(False, "k") is False
    assert OrNone(Integer(min=1))(None, "k") is None
    with pytest.raises(ConfigError, match="at least 1"):
        OrNone(Integer(min=1))(0, "k")
    assert FeatureList()(["entropy"], "k") == ["entropy"]
    assert hasattr(Classifier()(LOGREG, "k"), "predict_proba")


def test_a_minimal_node_builds_the_attack_the_config_schema_gives():
    from omegaconf import OmegaConf

    suite = compose_config(["attack=suite"], resolve=False).attack
    code = {**MINIMAL, "lira_offline": {"kind": "lira", "online": False, "threshold": 3.0},
            "rmia_offline": {"kind": "rmia", "online": False},
            "lira_population": {"kind": "lira", "online": False, "threshold": 3.0, "pool": "population"},
            "rmia_population": {"kind": "rmia", "online": False, "pool": "population"},
            "lira": {"kind": "lira", "threshold": 0.0},
            "worst_case": {**MINIMAL["worst_case"], "classifier": OmegaConf.to_container(suite.worst_case.classifier)}}
    from_schema, from_code = build_attacks(suite), build_attacks(code)
    assert list(from_schema) == ALL
    for name in ALL:
        assert _state(from_code[name]) == _state(from_schema[name]), name


def test_the_registry_names_every_kind():
    assert attacks_mod.KINDS == tuple(REGISTRY) == ("shadow_lr", "loss_threshold", "lira", "rmia", "worst_case")
    for kind, cls in REGISTRY.items():
        assert issubclass(cls, Attack) and cls.kind == kind
        # Every declared parameter is a constructor keyword, and every constructor keyword is declared.
        params = list(inspect.signature(cls.__init__).parameters)
        assert params[:2] == ["self", "name"] and params[2:] == list(cls.parameters), kind
        assert type(_build(kind)) is cls


def test_an_unknown_kind_lists_the_registry():
    with pytest.raises(ConfigError) as err:
        build_attacks({"x": {"kind": "lirra"}})
    assert err.value.key == "attack.x.kind"
    assert err.value.message == ("unknown attack kind 'lirra'; available: shadow_lr, loss_threshold, lira, rmia, "
                                 "worst_case")
    with pytest.raises(ConfigError, match="unknown attack kind \\['lira'\\]"):
        build_attack("x", {"kind": ["lira"]}, "attack.x")


class _ConstantAttack(Attack):
    """Scores every record alike: a stand-in for an attack added to the registry."""

    kind = "constant"
    parameters = {"value": Real(), "mode": Choice("fast", "slow"), "threshold": OrNone(Interval(0, 1))}
    threat_model = "nothing"

    def __init__(self, name, value, mode="fast", threshold=None):
        super().__init__(name, threshold)
        self.value = value
        self.mode = mode

    def score(self, candidates, knowledge):
        return np.full(len(candidates.y), self.value)


def test_a_registered_attack_is_built_by_kind(monkeypatch):
    monkeypatch.setitem(REGISTRY, "constant", _ConstantAttack)
    assert attacks_mod.KINDS[-1] == "constant"
    built = build_attacks({"c": {"kind": "constant", "value": 2}, "l": {"kind": "lira"}})
    c = built["c"]
    assert type(c) is _ConstantAttack and c.value == 2.0 and c.mode == "fast" and c.threshold is None
    assert not (c.needs_shadow_models or c.needs_reference or c.needs_membership_labels)
    assert validate_params(_ConstantAttack, {"kind": "constant", "value": 1, "mode": "slow", "threshold": 0.25},
                           "k") == {"value": 1.0, "mode": "slow", "threshold": 0.25}
    for node, key in [({"kind": "constant"}, "attack.c.value"),
                      ({"kind": "constant", "value": 1, "mode": "warp"}, "attack.c.mode"),
                      ({"kind": "constant", "value": 1, "threshold": 2}, "attack.c.threshold"),
                      ({"kind": "constant", "value": 1, "speed": 2}, "attack.c.speed")]:
        with pytest.raises(ConfigError) as err:
            build_attacks({"c": node})
        assert err.value.key == key
    with pytest.raises(ConfigError, match="available: .*worst_case, constant$"):
        build_attacks({"c": {"kind": "nope"}})


SHADOW = "population rows (shadow data) and the model's training recipe"
ONLINE = ("population rows, the recipe, and the candidate records (some of them the target's members) to train "
          "reference models on, with and without each (online)")
OFFLINE = ("population rows, the recipe, and the candidate records to train reference models on; each record scored "
           "by the models that left it out (offline, candidates in the pool)")
POPULATION = ("population rows and the recipe; no candidate record in any reference model (offline, population rows "
              "only)")


@pytest.mark.parametrize("node,shadow,reference,labels,threat", [
    (MINIMAL["shadow_lr"], True, False, False, SHADOW),
    (MINIMAL["loss_threshold"], True, False, False, SHADOW),
    ({"kind": "lira"}, False, True, False, ONLINE),
    ({"kind": "lira", "online": False}, False, True, False, OFFLINE),
    ({"kind": "rmia"}, False, True, False, ONLINE),
    ({"kind": "rmia", "online": False}, False, True, False, OFFLINE),
    ({"kind": "lira", "online": False, "pool": "population"}, False, True, False, POPULATION),
    ({"kind": "rmia", "online": False, "pool": "population"}, False, True, False, POPULATION),
    (MINIMAL["worst_case"], False, False, True, "the audit's true membership labels (an upper bound, not an attacker)"),
], ids=["shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline", "lira_population",
        "rmia_population", "worst_case"])
def test_needs_and_threat_model_per_kind(node, shadow, reference, labels, threat):
    a = build_attack("x", node, "attack.x")
    assert a.needs_shadow_models is shadow and (a.n_shadow_models > 0) is shadow
    assert a.needs_reference is reference
    assert a.needs_membership_labels is labels and type(a).needs_membership_labels is labels
    assert a.threat_model == threat
    assert Attack.needs_membership_labels is False


def test_the_headline_never_comes_from_an_upper_bound():
    from mia_engine.metrics import attack_metrics
    from mia_engine.scenario.results import AttackResult, strongest

    def result(name, members, upper):
        m = attack_metrics(np.asarray(members, float), np.linspace(0, 0.5, 200), 0.5, (0.01, 0.1))
        return AttackResult(name, "x", "score", False, 0.5, m, upper_bound=upper)

    weak = [0.4 + 0.002 * i for i in range(200)]
    strong = [0.6 + 0.001 * i for i in range(200)]
    attacks = {"realistic": result("realistic", weak, False), "bound": result("bound", strong, True)}
    assert attacks["bound"].metrics.tpr_at_fpr[0.01] > attacks["realistic"].metrics.tpr_at_fpr[0.01]
    assert strongest(attacks) == "realistic" and strongest(attacks, upper_bound=True) == "bound"
    assert strongest({"bound": attacks["bound"]}) is None


def test_only_an_upper_bound_gives_no_verdict():
    r = run_scenario(compose_config(["tracking=none", "attack=worst_case", "attack.worst_case.n_repeats=1"]))
    s = r.summary()
    assert r.verdict_attack is None and "attack" not in s and s["upper_bound"]["name"] == "worst_case"
    assert s["target_record"]["attack"] is None and s["target_record"]["predicted_member"] is None
    from mia_engine.report import format_report

    assert "only upper-bound attacks" in format_report(s, "SVC", "out")
