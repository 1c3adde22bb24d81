"""The recommendation an output checker signs: do not release / needs review / no evidence of
disclosure risk found, each with its reasons.

A reason ties one measured value to one threshold of the risk config (``conf/risk/<name>.yaml``)
and says which attack or check produced it and where the threshold comes from. The outcome is
the worst reason's. Only attacks an attacker could run decide anything: an attack trained on the
audit's membership labels is reported as an upper bound, never as a reason to refuse or pass.

:func:`risk_thresholds` validates the ``risk`` node (errors name the key); :func:`decide` works on
a run's plain summary (``summary.json``), so a resumed or re-read run gets the same verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ConfigError

DO_NOT_RELEASE = "do_not_release"
NEEDS_REVIEW = "needs_review"
NO_EVIDENCE = "no_evidence"
PASS = "pass"      # a reason that was checked and passed
NOTE = "note"      # something the audit could not measure, or measured without deciding

OUTCOME_TEXT = {DO_NOT_RELEASE: "DO NOT RELEASE", NEEDS_REVIEW: "NEEDS REVIEW",
                NO_EVIDENCE: "NO EVIDENCE OF DISCLOSURE RISK FOUND"}
_RANK = {DO_NOT_RELEASE: 0, NEEDS_REVIEW: 1, NOTE: 2, PASS: 3}


@dataclass(frozen=True)
class Level:
    """A measured value at or above ``review`` needs review; at or above ``fail``, do not release."""

    review: float
    fail: float
    source: str


@dataclass(frozen=True)
class RiskThresholds:
    name: str
    min_cell_count: int
    p_value: float
    tpr_at_fpr: tuple[tuple[float, Level], ...]
    auc: Level
    epsilon: Level
    may_embed_rows: tuple[str, ...]
    sources: Mapping[str, str]


def _number(node: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float:
    v = node.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
        raise ConfigError(f"{where}.{key}", f"must be a number in [{low:g}, {high:g}], got {v!r}")
    return float(v)


def _level(node: Any, where: str, low: float, high: float) -> Level:
    if not isinstance(node, Mapping):
        raise ConfigError(where, f"give {{review, fail, source}}, got {node!r}")
    for k in node:
        if k not in ("review", "fail", "source", "fpr"):
            raise ConfigError(f"{where}.{k}", "unknown key; a threshold takes review, fail and source")
    review, fail = _number(node, "review", where, low, high), _number(node, "fail", where, low, high)
    if review > fail:
        raise ConfigError(f"{where}.review", f"must not exceed fail ({fail:g}), got {review:g}")
    if not isinstance(node.get("source"), str) or not node["source"].strip():
        raise ConfigError(f"{where}.source", "say where the threshold comes from")
    return Level(review, fail, node["source"])


def risk_thresholds(risk: Mapping[str, Any], name: str, fpr_levels: Sequence[float],
                    audit_enabled: bool) -> RiskThresholds:
    """The ``risk`` node, checked; ``fpr_levels`` are the audit's (each TPR threshold must name one)."""
    known = {"min_cell_count", "rules", "p_value", "tpr_at_fpr", "auc", "epsilon", "may_embed_rows", "sources"}
    for k in risk:
        if k not in known:
            raise ConfigError(f"risk.{k}", f"unknown key; the risk config takes {', '.join(sorted(known))}")
    p = _number(risk, "p_value", "risk", 0.0, 1.0)
    if p <= 0.0:
        raise ConfigError("risk.p_value", "must be above 0")
    levels = []
    for i, node in enumerate(risk.get("tpr_at_fpr") or ()):
        where = f"risk.tpr_at_fpr.{i}"
        if not isinstance(node, Mapping):
            raise ConfigError(where, f"give {{fpr, review, fail, source}}, got {node!r}")
        fpr = _number(node, "fpr", where, 0.0, 1.0)
        if audit_enabled and not any(math.isclose(fpr, f) for f in fpr_levels):
            raise ConfigError(f"{where}.fpr", f"{fpr:g} is not among audit.fpr_levels "
                                              f"({', '.join(f'{f:g}' for f in fpr_levels)}); add it there")
        levels.append((fpr, _level(node, where, 0.0, 1.0)))
    auc = _level(risk.get("auc"), "risk.auc", 0.5, 1.0)
    eps = _level(risk.get("epsilon"), "risk.epsilon", 0.0, math.inf)
    embed = risk.get("may_embed_rows")
    if embed is None:
        embed = []
    if not isinstance(embed, (list, tuple)) or not all(isinstance(e, str) for e in embed):
        raise ConfigError("risk.may_embed_rows", f"a list of estimator class names, got {embed!r}")
    sources = risk.get("sources") or {}
    if not isinstance(sources, Mapping):
        raise ConfigError("risk.sources", f"a mapping of threshold name to source, got {sources!r}")
    return RiskThresholds(name, int(risk["min_cell_count"]), p, tuple(levels), auc, eps, tuple(embed), dict(sources))


# --------------------------------------------------------------------------------------------


def _reason(outcome: str, check: str, subject: str, measured: Any, threshold: Any, text: str,
            source: str = "", held: str | None = None) -> dict[str, Any]:
    """One reason; ``held``: for an attack, what its attacker is assumed to hold."""
    out = {"outcome": outcome, "check": check, "subject": subject, "measured": measured,
           "threshold": threshold, "text": text, "source": source}
    if held is not None:
        out["attacker_holds"] = held
    return out


def _realistic(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The audited attacks an attacker could run (not trained on membership labels)."""
    return {n: a for n, a in (summary.get("attacks") or {}).items()
            if a.get("auc") is not None and not a.get("upper_bound")}


def _bonferroni(risk: "RiskThresholds", k: int) -> float:
    """The p-value one of ``k`` attacks must reach to count: ``risk.p_value / k``."""
    return risk.p_value / max(k, 1)


def _reliably_wrong(a: Mapping[str, Any], level: float) -> bool:
    """AUC significantly below 0.5: the attack's scores separate members, inverted."""
    p = a.get("auc_pvalue")
    return a["auc"] < 0.5 and p is not None and 1.0 - p < level


def _grade(value: float, level: Level) -> tuple[str, float]:
    if value >= level.fail:
        return DO_NOT_RELEASE, level.fail
    if value >= level.review:
        return NEEDS_REVIEW, level.review
    return PASS, level.review


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _attack_reasons(summary: Mapping[str, Any], risk: RiskThresholds) -> list[dict[str, Any]]:
    attacks = summary.get("attacks") or {}
    realistic = _realistic(summary)
    out: list[dict[str, Any]] = []
    if not (summary.get("audit") or {}).get("n_members"):
        out.append(_reason(NEEDS_REVIEW, "audit", "", None, None,
                           "no membership audit ran (audit=none), so no attack was measured; nothing says "
                           "the model is safe", "the engine: a verdict needs a measurement"))
        return out
    if not realistic:
        bound = [n for n, a in attacks.items() if a.get("upper_bound")]
        out.append(_reason(NEEDS_REVIEW, "audit", "", None, None,
                           "no attack an attacker could run was measured (only upper bounds: "
                           f"{', '.join(bound) or 'none'}); add one, e.g. attack=suite",
                           "the engine: the headline comes from realistic attacks only"))
        return out
    if not any(a.get("reference_models") for a in realistic.values()):
        out.append(_reason(NOTE, "audit", "", None, None,
                           "only shadow-model attacks ran; reference-model attacks (LiRA, RMIA) are usually "
                           "stronger at low FPR: attack=suite runs them all", "Carlini et al. 2022"))
    # Bonferroni over the realistic attacks: with k attacks tried, one reaching p < level / k
    # is evidence of a membership signal at level p overall.
    level = _bonferroni(risk, len(realistic))
    significant = {n: a for n, a in realistic.items() if a.get("auc_pvalue") is not None
                   and a["auc_pvalue"] < level}
    p_source = risk.sources.get("p_value", "")
    if not significant:
        best = min(realistic, key=lambda n: realistic[n].get("auc_pvalue") or 1.0)
        p = realistic[best].get("auc_pvalue")
        out.append(_reason(PASS, "attack", best, p, level,
                           f"no attack separates members from non-members better than chance: the smallest "
                           f"p-value ({best}, AUC {_fmt(realistic[best]['auc'])}) is {_fmt(p if p is not None else 1)}, "
                           f"above {risk.p_value:g}/{len(realistic)} (Bonferroni over {len(realistic)} attacks)",
                           p_source, realistic[best].get("threat_model", "")))
        return out
    held = {n: a.get("threat_model", "") for n, a in realistic.items()}

    def worst(fn) -> str:
        return max(significant, key=lambda n: fn(significant[n]))

    # TPR at each low FPR level the audit resolves.
    for fpr, lvl in risk.tpr_at_fpr:
        key = f"tpr_at_fpr_{fpr:g}"
        resolved = {n: a for n, a in significant.items() if a.get(key) is not None and a.get(key + "_resolved", True)}
        if not resolved:
            n_non = (summary.get("audit") or {}).get("n_nonmembers")
            out.append(_reason(NOTE, "attack", "", None, fpr,
                               f"TPR at FPR {fpr:g} not measured: {n_non} non-members cannot resolve it "
                               f"(needs at least {math.ceil(1 / fpr)}; raise audit.n_nonmembers)", lvl.source))
            continue
        name = max(resolved, key=lambda n: resolved[n][key])
        value = resolved[name][key]
        outcome, threshold = _grade(value, lvl)
        out.append(_reason(outcome, "attack", name, value, threshold,
                           f"{name} finds {value:.1%} of members at {fpr:.1%} false positives "
                           f"({'at or above' if outcome != PASS else 'below'} {threshold:g})", lvl.source,
                           held[name]))
    # AUC: the point estimate against review, the interval's lower end against fail.
    name = worst(lambda a: a["auc"])
    a = significant[name]
    low = a.get("auc_ci_low")
    if low is not None and low >= risk.auc.fail:
        outcome, threshold, said = DO_NOT_RELEASE, risk.auc.fail, f"its interval's lower end {low:.3f} is at or above"
    elif a["auc"] >= risk.auc.review:
        outcome, threshold, said = NEEDS_REVIEW, risk.auc.review, "at or above"
    else:
        outcome, threshold, said = PASS, risk.auc.review, "below"
    out.append(_reason(outcome, "attack", name, a["auc"], threshold,
                       f"{name}'s AUC is {a['auc']:.3f} [{a.get('auc_ci_low') or float('nan'):.3f}, "
                       f"{a.get('auc_ci_high') or float('nan'):.3f}] ({said} {threshold:g})", risk.auc.source,
                       held[name]))
    # The empirical lower bound on epsilon.
    name = worst(lambda a: a.get("epsilon_lower_bound") or 0.0)
    value = significant[name].get("epsilon_lower_bound") or 0.0
    outcome, threshold = _grade(value, risk.epsilon)
    out.append(_reason(outcome, "attack", name, value, threshold,
                       f"{name}'s scores imply epsilon >= {value:.2f} (95% confidence; "
                       f"{'at or above' if outcome != PASS else 'below'} {threshold:g})", risk.epsilon.source,
                       held[name]))
    return out


def _check_reasons(summary: Mapping[str, Any], risk: RiskThresholds) -> list[dict[str, Any]]:
    checks = summary.get("checks") or {}
    out: list[dict[str, Any]] = []
    src = risk.sources
    e = checks.get("embedded_rows")
    if e is not None:
        family = e.get("family", "")
        if e.get("stores_rows") and family not in risk.may_embed_rows:
            out.append(_reason(DO_NOT_RELEASE, "embedded_rows", family, e["n_rows_stored"], 0,
                               f"the model keeps {e['n_rows_stored']} of its {e['n_train']} training rows verbatim "
                               f"({e['how']}): anyone holding the model reads them", src.get("may_embed_rows", "")))
            for name, inside in (e.get("named") or {}).items():
                if inside:
                    out.append(_reason(DO_NOT_RELEASE, "individual", name, True, None,
                                       f"{name}'s own record is one of the rows the model keeps",
                                       src.get("may_embed_rows", "")))
        elif e.get("stores_rows"):
            out.append(_reason(NOTE, "embedded_rows", family, e["n_rows_stored"], None,
                               f"the model keeps {e['n_rows_stored']} training rows verbatim ({e['how']}); "
                               f"{family} is in risk.may_embed_rows", src.get("may_embed_rows", "")))
        else:
            out.append(_reason(PASS, "embedded_rows", family, 0, 0, f"{family} keeps no training rows verbatim",
                               src.get("may_embed_rows", "")))
    t = checks.get("tree_leaves")
    if t is not None:
        pure = t.get("n_pure_small_leaves")
        if pure:
            out.append(_reason(DO_NOT_RELEASE, "tree_leaves", "", pure, t["min_cell"],
                               f"{pure} leaves hold fewer than {t['min_cell']} training rows, all of one class: "
                               "each tells the class of the few people in it (class disclosure)",
                               src.get("min_cell_count", "")))
        if t["n_small_leaves"] and t["n_small_leaves"] != (pure or 0):
            out.append(_reason(NEEDS_REVIEW, "tree_leaves", "", t["n_small_leaves"], t["min_cell"],
                               f"{t['n_small_leaves']} of {t['n_leaves']} leaves hold fewer than {t['min_cell']} "
                               f"training rows (smallest {t['min_leaf_size']})", src.get("min_cell_count", "")))
        if not t["n_small_leaves"]:
            out.append(_reason(PASS, "tree_leaves", "", t["min_leaf_size"], t["min_cell"],
                               f"every leaf holds at least {t['min_cell']} training rows (smallest "
                               f"{t['min_leaf_size']})", src.get("min_cell_count", "")))
    for r in checks.get("rules") or ():
        out.append(_reason(PASS if r["passed"] else NEEDS_REVIEW, "rules", r["estimator"], r["value"], r["rule"],
                           f"{r['estimator']}.{r['param']} = {r['value']} {'passes' if r['passed'] else 'fails'} "
                           f"{r['rule']}", r["source"]))
    return out


def _subgroup_reasons(summary: Mapping[str, Any], risk: RiskThresholds,
                      headline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A slice of at least the minimum cell count more exposed than the whole: needs review."""
    sub = summary.get("subgroups")
    if not sub:
        return []
    out = []
    decided = {(r["check"], r["outcome"]) for r in headline}
    overall_fails = ("attack", DO_NOT_RELEASE) in decided
    for s in sub.get("slices") or ():
        if s.get("small"):
            continue
        for fpr, lvl in risk.tpr_at_fpr:
            v = s.get(f"tpr_at_fpr_{fpr:g}")
            if v is None or not s.get(f"tpr_at_fpr_{fpr:g}_resolved", True):
                continue
            if v >= lvl.fail and not overall_fails:
                out.append(_reason(NEEDS_REVIEW, "subgroups", f"{s['by']}={s['value']}", v, lvl.fail,
                                   f"{sub['attack']} finds {v:.1%} of members at {fpr:.1%} false positives among "
                                   f"{s['by']} = {s['value']} ({s['n_members']} members, {s['n_nonmembers']} "
                                   "non-members): this group is more exposed than the whole", lvl.source))
    n_small = sum(1 for s in sub.get("slices") or () if s.get("small"))
    if n_small:
        out.append(_reason(NOTE, "subgroups", "", n_small, risk.min_cell_count,
                           f"{n_small} subgroup slice(s) hold fewer than {risk.min_cell_count} members or "
                           "non-members: their figures are shown, flagged, and decide nothing",
                           risk.sources.get("min_cell_count", "")))
    return out


def _game_reasons(summary: Mapping[str, Any], risk: RiskThresholds) -> list[dict[str, Any]]:
    """The individual's game, per named record: how well the best attack tells IN from OUT
    over the trials (the AUC against ``risk.auc.review``, the epsilon bound against
    ``risk.epsilon``), counted only when significant (Bonferroni over the attacks played)."""
    game = summary.get("game") or {}
    out = []
    for record, by_attack in (game.get("records") or {}).items():
        level = _bonferroni(risk, len(by_attack))
        significant = {a: m for a, m in by_attack.items()
                       if m.get("auc_pvalue") is not None and m["auc_pvalue"] < level}
        trials = game.get("n_trials")
        if not significant:
            out.append(_reason(PASS, "individual", record, None, level,
                               f"over {trials} trials no attack tells whether {record} was in better than "
                               "chance", risk.sources.get("p_value", "")))
            continue
        name = max(significant, key=lambda a: (significant[a].get("epsilon_lower_bound") or 0.0,
                                               significant[a]["auc"]))
        m = significant[name]
        # Refusal rests on the epsilon bound alone: its Clopper-Pearson interval stays honest
        # over a few trials, where a perfectly separated AUC has a degenerate DeLong interval.
        eps_outcome, _ = _grade(m.get("epsilon_lower_bound") or 0.0, risk.epsilon)
        low = m.get("auc_ci_low")
        auc_outcome = NEEDS_REVIEW if m["auc"] >= risk.auc.review else PASS
        outcome = min(eps_outcome, auc_outcome, key=lambda o: _RANK[o])
        out.append(_reason(outcome, "individual", record, m["auc"], risk.auc.review,
                           f"over {trials} trials {name} tells whether {record} was in with AUC {m['auc']:.3f} "
                           f"[{low if low is not None else float('nan'):.3f}, "
                           f"{m.get('auc_ci_high') or float('nan'):.3f}] and epsilon >= "
                           f"{m.get('epsilon_lower_bound') or 0.0:.2f}",
                           f"{risk.auc.source}; {risk.epsilon.source}"))
    return out


def _inverted_reasons(summary: Mapping[str, Any], risk: RiskThresholds) -> list[dict[str, Any]]:
    """An attack reliably wrong (AUC significantly below 0.5) still separates members from
    non-members, inverted: an attacker who checks it on shadow models flips it."""
    attacks = _realistic(summary)
    if not attacks or not (summary.get("audit") or {}).get("n_members"):
        return []
    level = _bonferroni(risk, len(attacks))
    out = []
    for name, a in attacks.items():
        if _reliably_wrong(a, level):
            out.append(_reason(NEEDS_REVIEW if 1.0 - a["auc"] >= risk.auc.review else NOTE, "attack", name,
                               a["auc"], 0.5,
                               f"{name} is reliably wrong (AUC {a['auc']:.3f}): its scores still separate members "
                               f"from non-members, inverted (as AUC {1 - a['auc']:.3f}); an attacker who checks it "
                               "on shadow models turns it around", risk.auc.source, a.get("threat_model", "")))
    return out


def _caveats(summary: Mapping[str, Any], risk: RiskThresholds) -> list[dict[str, Any]]:
    """Plain words next to the individual's call and the audit when they mean less than they
    seem: a headline attack at chance or reliably wrong, scores that are all equal, a class
    with fewer training rows than the minimum cell count."""
    out = []
    head, rec = summary.get("attack"), summary.get("target_record")
    if head is not None and head.get("auc") is not None and rec is not None and rec.get("attack"):
        auc, p = head["auc"], head.get("auc_pvalue")
        level = _bonferroni(risk, len(_realistic(summary)))
        name, who = head["name"], rec["name"]
        text = None
        if auc == 0.5 and head.get("auc_ci_low") == head.get("auc_ci_high") == 0.5:
            text = (f"{name} gave every audited record the same score: the target's outputs carry no membership "
                    f"signal it can read, and its call on {who} is a coin toss")
        elif _reliably_wrong(head, level):
            text = (f"{name} is reliably wrong on the audit (AUC {auc:.3f}): its call on {who} is more often wrong "
                    "than right, yet its scores leak, inverted")
        elif p is None or p >= level:
            text = (f"{name} is no better than chance on the audit (AUC {auc:.3f}, p {p if p is not None else 1:.2g}): "
                    f"its call on {who}, right or wrong, is a coin toss")
        if text:
            out.append(_reason(NOTE, "individual", who, auc, 0.5, text, risk.sources.get("p_value", "")))
    for s in (summary.get("subgroups") or {}).get("slices") or ():
        if s["by"] == "class" and s["n_members"] < risk.min_cell_count:
            out.append(_reason(NOTE, "audit", f"class={s['value']}", s["n_members"], risk.min_cell_count,
                               f"degenerate scenario: class {s['value']} has {s['n_members']} training row(s), fewer "
                               f"than {risk.min_cell_count}; figures on it rest on too few people",
                               risk.sources.get("min_cell_count", "")))
    return out


def decide(summary: Mapping[str, Any], risk: RiskThresholds) -> dict[str, Any]:
    """The verdict of a run's summary: ``{"outcome", "text", "risk", "reasons"}``, reasons worst
    first (do not release, needs review, notes, passes)."""
    reasons = _attack_reasons(summary, risk)
    reasons += _check_reasons(summary, risk)
    reasons += _subgroup_reasons(summary, risk, reasons)
    reasons += _game_reasons(summary, risk)
    reasons += _inverted_reasons(summary, risk)
    reasons += _caveats(summary, risk)
    bound = summary.get("upper_bound")
    if bound is not None:
        reasons.append(_reason(NOTE, "attack", bound["name"], bound.get("auc"), None,
                               f"upper bound, not an attacker: {bound['name']}, trained on the audit's membership "
                               f"labels, reaches AUC {bound['auc']:.3f}; it decides nothing",
                               "the engine: the verdict comes from attacks an attacker could run"))
    reasons.sort(key=lambda r: _RANK[r["outcome"]])  # stable: the order within an outcome is kept
    outcomes = {r["outcome"] for r in reasons}
    outcome = (DO_NOT_RELEASE if DO_NOT_RELEASE in outcomes else NEEDS_REVIEW if NEEDS_REVIEW in outcomes
               else NO_EVIDENCE)
    return {"outcome": outcome, "text": OUTCOME_TEXT[outcome], "risk": risk.name, "reasons": reasons}


def format_verdict(verdict: Mapping[str, Any], limit: int = 6) -> list[tuple[str, str]]:
    """Console rows: the outcome, then the reasons that decided it (at most ``limit``)."""
    rows = [("RECOMMENDATION", f"{verdict['text']} (risk={verdict['risk']})")]
    deciding = [r for r in verdict["reasons"] if r["outcome"] in (DO_NOT_RELEASE, NEEDS_REVIEW)]
    shown = deciding[:limit] if deciding else [r for r in verdict["reasons"] if r["outcome"] == PASS][:limit]
    for r in shown:
        tag = {DO_NOT_RELEASE: "refuse", NEEDS_REVIEW: "review", PASS: "passed"}[r["outcome"]]
        rows.append((f"  {tag}", r["text"]))
    if len(deciding) > limit:
        rows.append(("  ...", f"{len(deciding) - limit} more reason(s) in summary.json and report/report.html"))
    return rows
