"""One membership-inference scenario, end to end, as plain computation.

:func:`run_scenario` takes the resolved config (a plain mapping), validates all of it before
drawing anything (:mod:`.plan`), and returns a :class:`~.results.ScenarioResult`. It knows
nothing of Hydra, MLflow or files, nor which kind of data source it holds.

The steps follow the tutorial notebook:

1. Draw the target's training rows, append the individual (if a member).
2. Fit the target model (a saved model comes fitted); query it with the individual's record
   (and any probe records).
3. Draw the attacker's rows, split them, fit the shadow model(s) on one half.
4. Fit the attack(s) on what the attacker knows (shadow models; reference models trained on
   random halves of the attacker's pool, shared by every attack); score the individual.
5. Audit (beyond the notebook): score every training row and the held-out non-members with
   every attack, and summarise each with the same leakage metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..compute import clock
from ..metrics import attack_metrics
from .attacker import attach_reference, learn_attacker, reference_pools
from .plan import ScenarioPlan, prepare_scenario
from ..data.source import Rows
from .results import AttackResult, Dataset, RecordResult, ScenarioResult, strongest


def _record_result(rec, probs: np.ndarray) -> RecordResult:
    return RecordResult(
        name=rec.name,
        label=rec.label,
        is_member=rec.member,
        probabilities=[float(p) for p in probs],
        max_confidence=float(np.max(probs)),
    )


def run_scenario(cfg: Mapping[str, Any], launch_dir: Path | None = None) -> ScenarioResult:
    """Validate and run the scenario a resolved config describes."""
    return execute_scenario(prepare_scenario(cfg, launch_dir))


def draw_target_and_attacker(plan: ScenarioPlan):
    """The scenario's first two draws: the target's training rows (the individual appended if
    a member) and the attacker's rows. Returns the draw session (for the audit's rows), the
    target rows and the attacker's rows."""
    draws = plan.source.draws()
    tgt = draws.target()
    rec = plan.source.target_record
    if rec is not None and rec.member:
        ids = None if tgt.ids is None else np.append(tgt.ids, np.asarray([rec.id if rec.id is not None else rec.name],
                                                                         dtype=object))
        tgt = Rows(np.vstack([tgt.X, np.asarray(rec.values, dtype=float)[None, :]]), np.append(tgt.y, rec.label), ids)
    return draws, tgt, draws.attacker()


def _dataset(plan: ScenarioPlan, X, y, ids=None) -> Dataset:
    s = plan.source
    return Dataset(X, y, s.features, s.label_values, s.labels, ids)


def execute_scenario(plan: ScenarioPlan, on_timed: Callable[[dict[str, Any]], None] | None = None) -> ScenarioResult:
    """Draw the data, fit fresh models, run the attacks and the audit (same plan, same numbers).

    ``on_timed``: called once, after the target's and the shadow models' fits and before the
    reference models, with what they took (``target_fit``: seconds, CPU seconds, rows, and the
    query of the scored records; ``shadow_fits``; the audit's non-members scored), so that the
    caller can extrapolate the rest (:mod:`mia_engine.cost`). The result's ``timings`` hold the
    wall time of each stage."""
    from ..attacks import Candidates
    from ..models import fit_model

    started = time.perf_counter()
    timings: dict[str, Any] = {}
    source = plan.source
    target_model, shadow_model, attacks = plan.build_estimators()

    draws, tgt, shd = draw_target_and_attacker(plan)
    X_target, y_target = tgt.X, tgt.y
    rec = source.target_record

    # ---- held-out non-members for the audit (after the attacker's rows on a shared stream) --
    fresh = None
    if plan.audit_enabled:
        fresh = draws.nonmembers(source.nonmember_counts(tgt.counts(), plan.n_nonmembers, "audit.n_nonmembers"))

    # Non-members that copy a member row: membership is not defined by what the model sees.
    audited, n_duplicates = fresh, 0
    if fresh is not None:
        copies = copies_of(tgt, fresh)
        n_duplicates = int(copies.sum())
        if plan.duplicates == "drop" and n_duplicates:
            keep = ~copies
            audited = Rows(fresh.X[keep], fresh.y[keep], None if fresh.ids is None else fresh.ids[keep])

    # ---- the target ---------------------------------------------------------------------------
    target_fit = None
    if plan.target_recipe.fitted is None:
        w0, c0 = clock()
        fit_model(target_model, X_target, y_target, "model")
        w1, c1 = clock()
        target_fit = {"seconds": w1 - w0, "cpu_seconds": c1 - c0, "rows": int(len(y_target)), "query_rows": 0,
                      "query_seconds": 0.0, "query_cpu_seconds": 0.0}
        timings["target_fit"] = w1 - w0
    classes = np.asarray(target_model.classes_)
    probes = [_record_result(p, target_model.predict_proba(np.asarray([p.values], dtype=float))[0])
              for p in source.probe_records]

    # ---- the records to score: the audit's members and non-members, and the individual ------
    parts_X, parts_y, member, scored = [], [], [], []
    if audited is not None:
        parts_X += [X_target, audited.X]
        parts_y += [y_target, audited.y]
        member += [np.ones(len(y_target), bool), np.zeros(len(audited.y), bool)]
        scored += [np.ones(len(y_target) + len(audited.y), bool)]
    record_index = None
    if rec is not None:
        if fresh is not None and rec.member:
            record_index = len(y_target) - 1  # the individual is the last training row
        else:
            record_index = sum(len(v) for v in parts_y)
            parts_X.append(np.asarray([rec.values], dtype=float))
            parts_y.append(np.asarray([rec.label]))
            member.append(np.asarray([bool(rec.member)]))
            scored.append(np.zeros(1, bool))
    candidates = None
    if parts_y:
        X_c, y_c = np.vstack(parts_X), np.concatenate(parts_y)
        w0, c0 = clock()
        p_c = target_model.predict_proba(X_c)
        w1, c1 = clock()
        if target_fit is not None:
            target_fit.update(query_rows=int(len(y_c)), query_seconds=w1 - w0, query_cpu_seconds=c1 - c0)
        candidates = Candidates(X_c, y_c, p_c, np.concatenate(member), np.concatenate(scored))

    # ---- what the attacker knows: shadow models, then reference models, as learn_attacker does
    # in one call (without candidates it fits the shadow models only); the cost estimate comes
    # between the two, from the fits so far.
    w0, c0 = clock()
    knowledge, _ = learn_attacker(plan, shadow_model, shd, attacks, classes, None, target_model, len(y_target))
    w1, c1 = clock()
    shadows = knowledge.shadow_models
    timings["shadow_fits"] = w1 - w0
    if on_timed is not None:
        on_timed({"target_fit": target_fit,
                  "shadow_fits": {"seconds": w1 - w0, "cpu_seconds": c1 - c0, "fits": len(shadows),
                                  "rows": int(len(shadows[0].y_in)),
                                  "query_rows": int(len(shadows[0].y_in) + len(shadows[0].y_out))},
                  "audit_nonmembers_scored": None if audited is None else int(len(audited.y))})
    reference_info = None
    pools = reference_pools(attacks.values())
    if candidates is not None and pools:
        w0 = time.perf_counter()
        reference_info = attach_reference(plan, knowledge, candidates, shd, target_model, len(y_target), pools)
        timings["reference"] = time.perf_counter() - w0

    # ---- every attack: learn, score the records, audit -------------------------------------------
    record_result = None
    if rec is not None:
        record_result = _record_result(rec, candidates.target_probabilities[record_index])
    results: dict[str, AttackResult] = {}
    all_scores: dict[str, np.ndarray] = {}
    w0 = time.perf_counter()
    for name, attack in attacks.items():
        attack.fit(knowledge)
        metrics = member_scores = nonmember_scores = None
        if candidates is not None:
            scores = np.asarray(attack.score(candidates, knowledge), dtype=float)
            if record_result is not None:
                s = float(scores[record_index])
                record_result.attack_scores[name] = (s, bool(s >= attack.threshold_))
            if fresh is not None:
                audit_rows = candidates.scored
                all_scores[name] = scores[audit_rows]
                member_scores = scores[audit_rows & candidates.is_member]
                nonmember_scores = scores[audit_rows & ~candidates.is_member]
                metrics = attack_metrics(member_scores, nonmember_scores, attack.threshold_, plan.fpr_levels,
                                         base_rate=plan.base_rate)
        results[name] = AttackResult(name, attack.kind, attack.score_label, attack.score_is_probability,
                                     float(attack.threshold_), metrics, member_scores, nonmember_scores,
                                     int(plan.reference_node["n_models"]) if attack.needs_reference else 0,
                                     attack.threat_model, bool(attack.needs_membership_labels))
    timings["attacks"] = time.perf_counter() - w0
    # The headline and the individual's verdict come from attacks an attacker could run.
    verdict = strongest(results)
    if record_result is not None and verdict is not None:
        record_result.verdict_attack = verdict
        record_result.verdict_is_probability = results[verdict].score_is_probability

    test_accuracy = None if fresh is None else float(target_model.score(fresh.X, fresh.y))
    first = shadows[0]
    datasets = {
        "target_train": _dataset(plan, X_target, y_target, tgt.ids),
        "shadow_train": _dataset(plan, first.X_in, first.y_in),
        "shadow_test": _dataset(plan, first.X_out, first.y_out),
    }
    record_scores = audit_info = None
    if fresh is not None:
        datasets["audit_nonmembers"] = _dataset(plan, fresh.X, fresh.y, fresh.ids)
        ids = None
        if tgt.ids is not None and audited.ids is not None:
            ids = np.concatenate([tgt.ids, audited.ids])
        record_scores = {"id": ids, "member": np.concatenate([np.ones(len(y_target), bool),
                                                              np.zeros(len(audited.y), bool)]),
                         "label": np.concatenate([y_target, audited.y]), "scores": all_scores}
        audit_info = {"n_members": int(len(y_target)), "n_nonmembers": int(len(audited.y)),
                      "n_nonmembers_drawn": int(len(fresh.y)), "duplicates": n_duplicates,
                      "duplicates_policy": plan.duplicates}
    subgroups = None
    if fresh is not None and verdict is not None and plan.subgroups:
        audit_rows = candidates.scored
        subgroups = subgroup_figures(plan, verdict, results[verdict].threshold, all_scores[verdict],
                                     candidates.X[audit_rows], candidates.y[audit_rows],
                                     candidates.is_member[audit_rows],
                                     candidates.target_probabilities[audit_rows], classes)
    checks = target_checks(plan, target_model, X_target, y_target, fresh)
    models = {"target": target_model}
    models.update({("shadow" if i == 0 else f"shadow_{i}"): s.model for i, s in enumerate(shadows)})
    models.update({f"attack_{name}": a for name, a in attacks.items()})
    timings["scenario"] = time.perf_counter() - started

    return ScenarioResult(
        population=source.name,
        labels=source.label_values,
        target_record=record_result,
        probe_records=probes,
        shadow_train_confidences=first.p_in.max(axis=1),
        shadow_test_confidences=first.p_out.max(axis=1),
        target_train_accuracy=float(target_model.score(X_target, y_target)),
        target_test_accuracy=test_accuracy,
        shadow_train_accuracy=float(first.model.score(first.X_in, first.y_in)),
        shadow_test_accuracy=float(first.model.score(first.X_out, first.y_out)),
        attacks=results,
        verdict_attack=verdict,
        reference=reference_info,
        datasets=datasets,
        models=models,
        data_card=source.describe(),
        record_scores=record_scores,
        audit_info=audit_info,
        checks=checks,
        subgroups=subgroups,
        timings=timings,
    )


def subgroup_figures(plan: ScenarioPlan, attack: str, threshold: float, scores, X, y, member, probabilities,
                     classes) -> dict[str, Any]:
    """The headline attack's figures per class, per value of ``report.subgroups.columns`` and
    per loss percentile of the target (:mod:`mia_engine.subgroups`)."""
    from ..signals import true_label_probability
    from ..subgroups import subgroup_slices, subgroup_summary

    node = plan.subgroups
    source = plan.source
    columns = {}
    for index, name in node["columns"]:
        feature = source.features[index]
        values = X[:, index]
        if feature.categories:
            columns[name] = np.asarray([None if v != v else str(feature.categories[int(v)]) for v in values],
                                       dtype=object)
        else:
            columns[name] = np.asarray([None if v != v else (str(int(v)) if float(v).is_integer() else str(v))
                                        for v in values], dtype=object)
    loss = None
    if node["loss_bins"]:
        p_true = true_label_probability(probabilities, y, classes)
        loss = -np.log(np.clip(p_true, 1e-12, 1.0))
    label_names = {int(code): str(value) for code, value in zip(source.labels, source.label_values)}
    slices = subgroup_slices(member, scores, label=y, label_names=label_names,
                             columns=columns, loss=loss, fpr_levels=plan.fpr_levels, threshold=threshold,
                             min_cell_count=plan.min_cell_count, loss_bins=node["loss_bins"] or 1)
    if not node["by_class"]:
        slices = [s for s in slices if s["by"] != "class"]
    return subgroup_summary(attack, slices, plan.min_cell_count, plan.fpr_levels)


def target_checks(plan: ScenarioPlan, model, X_train, y_train, unseen) -> dict[str, Any]:
    """What the fitted target discloses beyond any attack: training rows kept verbatim (and
    whether the named individual is one), small tree leaves, the generalisation gap, the
    residual degrees of freedom and the risk config's hyperparameter rules
    (:mod:`mia_engine.checks`)."""
    from ..checks import embedded_rows, generalisation_gap, hyperparameter_rules, residual_dof, tree_leaves

    rec = plan.source.target_record
    named = {rec.name: np.asarray(rec.values, dtype=float)} if rec is not None and rec.member else None
    out: dict[str, Any] = {"embedded_rows": embedded_rows(model, X_train, named).summary()}
    leaves = tree_leaves(model, X_train, y_train, plan.min_cell_count)
    if leaves is not None:
        out["tree_leaves"] = leaves.summary()
    if unseen is not None:
        out["generalisation"] = generalisation_gap(model, X_train, y_train, unseen.X, unseen.y).summary()
    dof = residual_dof(model, len(y_train))
    if dof is not None:
        out["residual_dof"] = int(dof)
    rules = hyperparameter_rules(model, plan.rules, len(y_train))
    if rules:
        out["rules"] = rules
    return out


def copies_of(members, nonmembers) -> np.ndarray:
    """Which non-member rows copy a member row exactly (features, NaN as NaN, and label)."""
    def keys(rows):
        X = np.ascontiguousarray(np.where(np.isnan(rows.X), np.inf, rows.X), dtype=np.float64)
        return [x.tobytes() + int(label).to_bytes(8, "little", signed=True) for x, label in zip(X, rows.y)]

    seen = set(keys(members))
    return np.fromiter((k in seen for k in keys(nonmembers)), dtype=bool, count=len(nonmembers))
