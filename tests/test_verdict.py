"""The recommendation: thresholds from the risk config, reasons, the three outcomes, reached by
real scenarios, and the verdict's way into summary.json, MLflow and the sweep's jobs table."""

from __future__ import annotations

import json

import pytest

from conftest import compose_config, run_cli
from mia_engine.errors import ConfigError
from mia_engine.verdict import (DO_NOT_RELEASE, NEEDS_REVIEW, NO_EVIDENCE, NOTE, PASS, decide, format_verdict,
                                risk_thresholds)

LEVELS = (0.001, 0.01, 0.1)


def _risk(**changes):
    node = dict(compose_config()["risk"])
    node.update(changes)
    return risk_thresholds(node, "default", LEVELS, True)


def _attack(auc, p, tpr01=0.01, tpr001=0.0, eps=0.0, upper=False, low=None, resolved_001=True, refs=64):
    a = {"auc": auc, "auc_ci_low": low if low is not None else auc - 0.05, "auc_ci_high": auc + 0.05,
         "auc_pvalue": p, "tpr_at_fpr_0.01": tpr01, "tpr_at_fpr_0.001": tpr001, "tpr_at_fpr_0.1": 0.1,
         "epsilon_lower_bound": eps, "upper_bound": upper, "threat_model": "held", "reference_models": refs}
    if not resolved_001:
        a["tpr_at_fpr_0.001_resolved"] = False
    return a


def _summary(attacks, checks=None, n_nonmembers=200):
    s = {"attacks": attacks, "audit": {"n_members": 200, "n_nonmembers": n_nonmembers}, "checks": checks or {}}
    bound = [n for n, a in attacks.items() if a["upper_bound"]]
    if bound:
        s["upper_bound"] = {"name": bound[0], **attacks[bound[0]]}
    return s


def _by(verdict, outcome):
    return [r for r in verdict["reasons"] if r["outcome"] == outcome]


def test_the_default_risk_file_holds_every_threshold_with_a_source():
    risk = _risk()
    assert risk.p_value == 0.05 and risk.min_cell_count == 10
    assert [(f, lvl.review, lvl.fail) for f, lvl in risk.tpr_at_fpr] == [(0.01, 0.03, 0.10), (0.001, 0.003, 0.01)]
    assert (risk.auc.review, risk.auc.fail) == (0.60, 0.65)
    assert (risk.epsilon.review, risk.epsilon.fail) == (1.10, 2.30)
    assert risk.may_embed_rows == ()
    sources = [lvl.source for _, lvl in risk.tpr_at_fpr] + [risk.auc.source, risk.epsilon.source]
    sources += [risk.sources[k] for k in ("min_cell_count", "may_embed_rows", "p_value")]
    assert all(isinstance(s, str) and len(s) > 10 for s in sources)


@pytest.mark.parametrize("changes,key,message", [
    ({"p_value": 0}, "risk.p_value", "above 0"),
    ({"p_value": "low"}, "risk.p_value", "must be a number"),
    ({"auc": {"review": 0.7, "fail": 0.6, "source": "x"}}, "risk.auc.review", "must not exceed fail"),
    ({"auc": {"review": 0.6, "fail": 0.65}}, "risk.auc.source", "say where"),
    ({"epsilon": {"review": 1, "fail": 2, "source": "x", "max": 3}}, "risk.epsilon.max", "unknown key"),
    ({"tpr_at_fpr": [{"fpr": 0.05, "review": 0.1, "fail": 0.2, "source": "x"}]}, "risk.tpr_at_fpr.0.fpr",
     "not among audit.fpr_levels"),
    ({"may_embed_rows": "SVC"}, "risk.may_embed_rows", "a list"),
    ({"tolerance": 1}, "risk.tolerance", "unknown key"),
])
def test_a_bad_threshold_names_its_key(changes, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        _risk(**changes)
    assert err.value.key == key


def test_bad_risk_input_from_the_command_line_is_one_line(tmp_path):
    proc = run_cli(["tracking=none", "risk.auc.fail=0.4"], cwd=tmp_path)
    assert proc.returncode == 2 and "risk.auc.fail" in proc.stderr and "Traceback" not in proc.stderr


def test_chance_level_attacks_find_no_evidence_and_say_so():
    v = decide(_summary({"a": _attack(0.55, 0.03), "b": _attack(0.52, 0.2)}), _risk())
    # p 0.03 is above 0.05 / 2 (Bonferroni over two attacks): no signal.
    assert v["outcome"] == NO_EVIDENCE and v["text"] == "NO EVIDENCE OF DISCLOSURE RISK FOUND"
    (chance,) = [r for r in v["reasons"] if r["check"] == "attack"]
    assert chance["outcome"] == PASS and chance["subject"] == "a" and chance["threshold"] == 0.025
    assert "better than chance" in chance["text"]
    # The same p-value with a single attack is a signal, judged by the thresholds (all below).
    v1 = decide(_summary({"a": _attack(0.55, 0.03)}), _risk())
    assert v1["outcome"] == NO_EVIDENCE and {r["check"] for r in _by(v1, PASS)} == {"attack"}
    # TPR at both FPR levels, the AUC and epsilon: four passes.
    assert len([r for r in v1["reasons"] if r["check"] == "attack" and r["outcome"] == PASS]) == 4


@pytest.mark.parametrize("attack,outcome,what", [
    (_attack(0.58, 1e-4, tpr01=0.03), NEEDS_REVIEW, "finds 3.0% of members at 1.0%"),
    (_attack(0.58, 1e-4, tpr01=0.10), DO_NOT_RELEASE, "finds 10.0% of members at 1.0%"),
    (_attack(0.61, 1e-4), NEEDS_REVIEW, "AUC is 0.610"),
    (_attack(0.70, 1e-6, low=0.66), DO_NOT_RELEASE, "lower end 0.660"),
    (_attack(0.70, 1e-6, low=0.64), NEEDS_REVIEW, "AUC is 0.700"),
    (_attack(0.58, 1e-4, eps=1.2), NEEDS_REVIEW, "epsilon >= 1.20"),
    (_attack(0.58, 1e-4, eps=2.5), DO_NOT_RELEASE, "epsilon >= 2.50"),
])
def test_each_attack_threshold_decides(attack, outcome, what):
    v = decide(_summary({"a": attack}), _risk())
    assert v["outcome"] == outcome
    first = v["reasons"][0]
    assert first["outcome"] == outcome and what in first["text"] and first["attacker_holds"] == "held"
    assert first["source"]


def test_the_upper_bound_never_decides():
    attacks = {"a": _attack(0.51, 0.4), "worst_case": _attack(0.99, 1e-9, tpr01=0.9, eps=4, upper=True, low=0.97)}
    v = decide(_summary(attacks), _risk())
    assert v["outcome"] == NO_EVIDENCE
    (note,) = [r for r in v["reasons"] if r["subject"] == "worst_case"]
    assert note["outcome"] == NOTE and "decides nothing" in note["text"]


def test_no_realistic_attack_or_no_audit_needs_review():
    v = decide(_summary({"worst_case": _attack(0.5, 0.5, upper=True)}), _risk())
    assert v["outcome"] == NEEDS_REVIEW and "no attack an attacker could run" in v["reasons"][0]["text"]
    v = decide({"attacks": {"a": {"threshold": 0.5}}, "checks": {}}, _risk())
    assert v["outcome"] == NEEDS_REVIEW and "no membership audit ran" in v["reasons"][0]["text"]


def test_an_fpr_the_audit_cannot_resolve_is_a_note_not_a_pass():
    v = decide(_summary({"a": _attack(0.58, 1e-4, tpr001=0.5, resolved_001=False)}, n_nonmembers=180), _risk())
    assert v["outcome"] == NO_EVIDENCE
    (note,) = [r for r in v["reasons"] if r["outcome"] == NOTE and r["threshold"] == 0.001]
    assert "180 non-members cannot resolve it" in note["text"] and "at least 1000" in note["text"]


def test_only_shadow_attacks_are_noted():
    v = decide(_summary({"a": _attack(0.5, 0.5, refs=0)}), _risk())
    assert any("attack=suite" in r["text"] for r in _by(v, NOTE))


EMBEDS = {"embedded_rows": {"family": "SVC", "stores_rows": True, "n_rows_stored": 104, "n_train": 200,
                            "how": "support vectors", "named": {"former_prime_minister": True}}}


def test_embedded_rows_refuse_unless_the_family_may_embed_them():
    v = decide(_summary({"a": _attack(0.5, 0.5)}, EMBEDS), _risk())
    assert v["outcome"] == DO_NOT_RELEASE
    assert [(r["check"], r["subject"]) for r in _by(v, DO_NOT_RELEASE)] == [("embedded_rows", "SVC"),
                                                                          ("individual", "former_prime_minister")]
    allowed = decide(_summary({"a": _attack(0.5, 0.5)}, EMBEDS), _risk(may_embed_rows=["SVC"]))
    assert allowed["outcome"] == NO_EVIDENCE
    assert [r["outcome"] for r in allowed["reasons"] if r["check"] == "embedded_rows"] == [NOTE]


def test_leaves_and_rules():
    leaves = {"tree_leaves": {"n_leaves": 33, "n_small_leaves": 27, "n_pure_small_leaves": 26, "min_leaf_size": 1,
                              "min_cell": 10},
              "rules": [{"estimator": "DecisionTreeClassifier", "param": "min_samples_leaf", "value": 1,
                         "rule": ">= 10", "passed": False, "source": "cells"}]}
    v = decide(_summary({"a": _attack(0.5, 0.5)}, leaves), _risk())
    assert v["outcome"] == DO_NOT_RELEASE
    assert [(r["check"], r["outcome"], r["measured"]) for r in v["reasons"] if r["check"] != "attack"] == [
        ("tree_leaves", DO_NOT_RELEASE, 26), ("tree_leaves", NEEDS_REVIEW, 27), ("rules", NEEDS_REVIEW, 1)]
    fine = {"tree_leaves": {"n_leaves": 8, "n_small_leaves": 0, "n_pure_small_leaves": 0, "min_leaf_size": 12,
                            "min_cell": 10}}
    assert decide(_summary({"a": _attack(0.5, 0.5)}, fine), _risk())["outcome"] == NO_EVIDENCE


def test_an_exposed_subgroup_needs_review_and_small_slices_decide_nothing():
    s = _summary({"a": _attack(0.58, 1e-4)})
    s["subgroups"] = {"attack": "a", "min_cell_count": 10, "fpr_levels": list(LEVELS), "slices": [
        {"by": "class", "value": "1", "n_members": 100, "n_nonmembers": 100, "auc": 0.7, "tpr_at_fpr_0.01": 0.2,
         "small": False},
        {"by": "feature:smoker", "value": "1", "n_members": 5, "n_nonmembers": 4, "auc": 1.0,
         "tpr_at_fpr_0.01": 1.0, "small": True}]}
    v = decide(s, _risk())
    assert v["outcome"] == NEEDS_REVIEW
    (exposed,) = [r for r in v["reasons"] if r["check"] == "subgroups" and r["outcome"] == NEEDS_REVIEW]
    assert exposed["subject"] == "class=1" and exposed["measured"] == 0.2
    (small,) = [r for r in v["reasons"] if r["check"] == "subgroups" and r["outcome"] == NOTE]
    assert small["measured"] == 1


def test_console_rows_show_the_deciding_reasons():
    v = decide(_summary({"a": _attack(0.58, 1e-4, tpr01=0.5, eps=3)}, EMBEDS), _risk())
    rows = format_verdict(v, limit=2)
    assert rows[0] == ("RECOMMENDATION", "DO NOT RELEASE (risk=default)")
    assert [k.strip() for k, _ in rows[1:3]] == ["refuse", "refuse"] and rows[3][0].strip() == "..."


# ---- the three outcomes, reached by scenarios (the tutorial's data, every attack) ------------

def _verdict(tmp_path, *overrides):
    proc = run_cli(["tracking=none", "attack=suite", "reference.n_models=16", "report.enabled=false",
                    f"hydra.run.dir={tmp_path}/out", *overrides], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((tmp_path / "out" / "summary.json").read_text())["verdict"], proc.stdout + proc.stderr


def test_the_tutorial_svc_is_refused_for_its_support_vectors_and_the_attacks(tmp_path):
    v, log = _verdict(tmp_path)
    assert v["outcome"] == DO_NOT_RELEASE and "RECOMMENDATION                  DO NOT RELEASE" in log
    checks = {(r["check"], r["subject"]) for r in _by(v, DO_NOT_RELEASE)}
    assert {("embedded_rows", "SVC"), ("individual", "former_prime_minister")} <= checks
    assert any(r["check"] == "attack" for r in _by(v, DO_NOT_RELEASE))
    assert all(r["subject"] != "worst_case" for r in _by(v, DO_NOT_RELEASE))


def test_gamma_0_1_needs_review_once_support_vectors_are_allowed(tmp_path):
    v, _ = _verdict(tmp_path, "model.gamma=0.1", "risk.may_embed_rows=[SVC]")
    assert v["outcome"] == NEEDS_REVIEW
    assert {r["check"] for r in _by(v, NEEDS_REVIEW)} == {"attack"}


def test_logistic_regression_finds_no_evidence(tmp_path):
    v, log = _verdict(tmp_path, "model=logistic_regression")
    assert v["outcome"] == NO_EVIDENCE and "NO EVIDENCE OF DISCLOSURE RISK FOUND" in log
    assert not _by(v, DO_NOT_RELEASE) and not _by(v, NEEDS_REVIEW)


def test_the_individuals_game_decides_for_each_named_record():
    s = _summary({"a": _attack(0.5, 0.5)})
    s["game"] = {"n_trials": 200, "records": {
        "former_prime_minister": {"lira": {"auc": 0.9, "auc_ci_low": 0.85, "auc_ci_high": 0.94, "auc_pvalue": 1e-12,
                                           "epsilon_lower_bound": 2.5},
                                  "rmia": {"auc": 0.7, "auc_ci_low": 0.6, "auc_ci_high": 0.8, "auc_pvalue": 1e-4,
                                           "epsilon_lower_bound": 0.5}},
        "example_patient": {"lira": {"auc": 0.55, "auc_ci_low": 0.47, "auc_ci_high": 0.63, "auc_pvalue": 0.1,
                                     "epsilon_lower_bound": 0.0}}}}
    v = decide(s, _risk())
    assert v["outcome"] == DO_NOT_RELEASE
    (pm,) = [r for r in v["reasons"] if r["subject"] == "former_prime_minister"]
    assert pm["outcome"] == DO_NOT_RELEASE and "over 200 trials lira" in pm["text"] and pm["measured"] == 0.9
    (other,) = [r for r in v["reasons"] if r["subject"] == "example_patient"]
    assert other["outcome"] == PASS and "better than chance" in other["text"]

    # A perfect separation over a few trials has a degenerate AUC interval: review, not refusal,
    # until the epsilon bound (honest at small counts) reaches the refusal level.
    few = s["game"]["records"]["former_prime_minister"]["lira"]
    few.update(auc=1.0, auc_ci_low=1.0, auc_ci_high=1.0, auc_pvalue=8e-5, epsilon_lower_bound=0.53)
    (pm,) = [r for r in decide(s, _risk())["reasons"] if r["subject"] == "former_prime_minister"]
    assert pm["outcome"] == NEEDS_REVIEW


def test_a_reliably_wrong_attack_still_leaks_and_a_chance_call_is_named_a_coin_toss():
    s = _summary({"a": _attack(0.30, 0.99999, low=0.25)})
    s["attack"] = {"name": "a", **s["attacks"]["a"]}
    s["target_record"] = {"name": "pm", "attack": "a"}
    v = decide(s, _risk())
    assert v["outcome"] == NEEDS_REVIEW
    (inv,) = [r for r in v["reasons"] if r["outcome"] == NEEDS_REVIEW]
    assert "reliably wrong (AUC 0.300)" in inv["text"] and "as AUC 0.700" in inv["text"]
    (cav,) = [r for r in v["reasons"] if r["check"] == "individual"]
    assert cav["outcome"] == NOTE and "more often wrong than right" in cav["text"]
    # Chance level: the individual's call is a coin toss, whatever its outcome.
    s = _summary({"a": _attack(0.51, 0.4)})
    s["attack"] = {"name": "a", **s["attacks"]["a"]}
    s["target_record"] = {"name": "pm", "attack": "a"}
    (cav,) = [r for r in decide(s, _risk())["reasons"] if r["check"] == "individual"]
    assert "no better than chance" in cav["text"] and "coin toss" in cav["text"]
    # Every record scored alike (a constant target).
    s["attacks"]["a"].update(auc=0.5, auc_ci_low=0.5, auc_ci_high=0.5, auc_pvalue=1.0)
    s["attack"] = {"name": "a", **s["attacks"]["a"]}
    (cav,) = [r for r in decide(s, _risk())["reasons"] if r["check"] == "individual"]
    assert "the same score" in cav["text"]


def test_a_class_below_the_cell_count_is_called_degenerate(tmp_path):
    proc = run_cli(["tracking=none", "data.classes.responders.size=1", f"hydra.run.dir={tmp_path}/o"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "caution                reliably wrong" not in out  # (the row label is padded to the report's width)
    assert "is reliably wrong on the audit (AUC 0.020)" in out
    assert "degenerate scenario: class 1 has 2 training row(s), fewer than 10" in out
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["attack"]["auc_leakage"] == pytest.approx(1 - s["attack"]["auc"])
