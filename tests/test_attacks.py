"""The attack family on cases whose answer is known, and the arithmetic of each score."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from conftest import compose_config
from mia_engine.attacks import Candidates, Knowledge, LiraAttack, RmiaAttack
from mia_engine.scenario import run_scenario
from mia_engine.signals import attack_features, entropy, true_label_logit, true_label_probability

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
ALL = ["shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline", "worst_case"]


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
    r = _noise_scenario(IGNORES_INPUT, ["reference.n_models=4", "attack.worst_case.n_repeats=1"])
    # Four attacks read reference models; one set serves them all.
    assert sum(a.reference_models > 0 for a in r.attacks.values()) == 4
    assert len(calls) == 1 and calls[0]["n_models"] == 4


def test_suite_names_the_strongest(memorised):
    assert memorised.reference["n_models"] == 16 and memorised.reference["from_cache"] is False
    # The 121 + 121 scored records are twice the target's 121 rows: a half matches the
    # target's size without the attacker's 60 + 60 population rows (pool_population=auto).
    assert memorised.reference["pool_rows"] == 242 and memorised.reference["population_in_pool"] is False
    s = memorised.summary()
    assert set(s["attacks"]) == set(ALL)
    best = s["attack"]["name"]
    others = [a["tpr_at_fpr_0.01"] for a in s["attacks"].values()]
    assert s["attack"]["tpr_at_fpr_0.01"] == max(others)
    assert s["target_record"]["attack"] == best
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
    probs = np.stack([1 - p_true, p_true], axis=-1)  # label 1 is every record's true label
    return SimpleNamespace(in_mask=in_mask, probabilities=probs, classes=np.array([0, 1])), p_true


def _logit(p):
    return math.log(p) - math.log(1 - p)


def test_lira_online_and_offline_scores_by_hand():
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


def test_rmia_scores_by_hand():
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
                          probabilities=np.stack([np.full((4, n_z + n_x), 0.5)] * 2, axis=-1))
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
