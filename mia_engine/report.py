"""The console report of one run: the tutorial's numbers and the verdict."""

from __future__ import annotations

from typing import Any, Mapping


def _probs(labels, probs, digits: int) -> str:
    return "  ".join(f"[{label}] {p:.{digits}f}" for label, p in zip(labels, probs))


def format_report(summary: Mapping[str, Any], model: str, output_dir: str, data_line: bool = False,
                  local_scores=None) -> str:
    """The console report. ``data_line``: a line on the data's rows (tables); ``local_scores``:
    the folder of records/scores.parquet when it is kept out of the tracker."""
    labels = summary["labels"]
    rows: list[tuple[str, str]] = []
    rec = summary.get("target_record")
    if rec is not None:
        rows.append((f"{rec['name']}", f"target probabilities {_probs(labels, rec['probabilities'], 8)}"))
    sh = summary["shadow"]
    rows.append(("shadow model", f"mean max-confidence: members {sh['train_mean_confidence']:.2f}"
                                 f" / non-members {sh['test_mean_confidence']:.2f}"))
    if rec is not None and rec.get("attack") is None:
        rows.append(("verdict", "none: only upper-bound attacks (trained on the audit's membership labels) ran; "
                                "add an attack an attacker could run, e.g. attack=[shadow_lr,worst_case]"))
    elif rec is not None:
        p = rec.get("membership_probability")
        said = f"membership probability {p:.2f}" if p is not None else f"score {rec['score']:.3g}"
        rows.append(("attack", f"{rec['attack']}: max confidence {rec['max_confidence']:.2f} -> {said}"))
        verdict = "MEMBER" if rec["predicted_member"] else "NOT a member"
        if rec["is_member"] is None:
            truth = ""
        else:
            truth = (f"; truly {'a member' if rec['is_member'] else 'not a member'}: the attacker is "
                     f"{'RIGHT' if rec['correct'] else 'WRONG'}")
        rows.append(("verdict", f"predicted {verdict}{truth}"))
        rows += [("caution", r["text"]) for r in _notes(summary) if r["check"] == "individual"
                 and r["subject"] == rec["name"]]
    for name, probe in (summary.get("probe_records") or {}).items():
        rows.append((name, f"target probabilities {_probs(labels, probe['probabilities'], 2)}"))
    attacks = summary.get("attacks") or {}
    strongest = (summary.get("attack") or {}).get("name")
    for name, a in attacks.items():
        if "auc" not in a:
            continue
        tprs = "  ".join(f"TPR@{k[len('tpr_at_fpr_'):]} {v:.3f}{'' if a.get(k + '_resolved', True) else '†'}"
                         for k, v in a.items() if k.startswith("tpr_at_fpr_") and not k.endswith("_resolved"))
        mark = " *" if name == strongest and len(attacks) > 1 else (" (upper bound)" if a.get("upper_bound") else "")
        rows.append((f"audit {name}{mark}",
                     f"AUC {a['auc']:.3f} [{a['auc_ci_low']:.3f}, {a['auc_ci_high']:.3f}]  {tprs}  "
                     f"adv {a['advantage']:.3f}  eps>={a['epsilon_lower_bound']:.2f}"))
    held = {}
    for name, x in attacks.items():
        if "auc" in x and x.get("threat_model"):
            held.setdefault(x["threat_model"], []).append(name)
    if len(attacks) > 1:  # what each attack assumes the attacker holds
        rows += [("attacker holds", f"{', '.join(names)}: {threat}") for threat, names in held.items()]
    a = summary.get("attack") or summary.get("upper_bound")
    if a is not None:
        held = (summary.get("data") or {}).get("nonmembers_are", "fresh")
        au = summary.get("audit") or {}
        dup = au.get("duplicates", 0)
        copies = ""
        if dup:
            copies = (f" ({dup} copies of a member row dropped)" if au.get("duplicates_policy") == "drop"
                      else f" ({dup} of them copy a member row)")
        rows.append(("audit size", f"{a['n_members']} members vs {a['n_nonmembers']} {held} non-members{copies}"
                     + ("; † fewer non-members than 1/FPR: the TPR is at FPR 0" if any(
                         k.endswith("_resolved") for x in attacks.values() for k in x) else "")
                     + ("; * strongest attack an attacker could run" if len(attacks) > 1 else "")))
    rows += [("caution", r["text"]) for r in _notes(summary) if r["check"] == "audit"
             and str(r["subject"]).startswith("class=")]
    rows += _check_rows(summary.get("checks") or {})
    t = summary["target"]
    fresh = "n/a" if t["test_accuracy"] is None else f"{t['test_accuracy']:.3f}"
    unseen = f"{(summary.get('data') or {}).get('nonmembers_are', 'fresh')} data"
    rows.append(("target model", f"{model}: accuracy train {t['train_accuracy']:.3f}, {unseen} {fresh}"))
    if data_line:
        card = summary.get("data") or {}
        n = card.get("rows") or {}
        rows.append(("data", f"{card.get('name')}: {n.get('target')} training rows, {n.get('attacker')} attacker "
                             f"rows, {n.get('nonmembers')} held out ({card.get('layout')}); "
                             f"{len(card.get('features') or {})} features"))
    if local_scores is not None:
        rows.append(("records", f"every audited record's score: {local_scores}/scores.parquet "
                                "(kept local; tracking.log_scores=true logs it)"))
    sub = summary.get("subgroups")
    if sub:
        rows += _subgroup_rows(sub)
    if summary.get("verdict"):
        from .verdict import format_verdict

        rows += format_verdict(summary["verdict"])
    rows.append(("outputs", output_dir))
    ml = summary.get("mlflow") or {}
    if ml.get("run_id"):
        rows.append(("mlflow", f"run {ml['run_id']} (experiment {ml['experiment_id']}) at {ml['tracking_uri']}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _check_rows(checks: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The checks beyond attacks, one line each."""
    rows = []
    e = checks.get("embedded_rows")
    if e is not None:
        if e["stores_rows"]:
            text = f"{e['family']} keeps {e['n_rows_stored']} of {e['n_train']} training rows verbatim ({e['how']})"
            for name, inside in (e.get("named") or {}).items():
                if inside is not None:
                    text += f"; {name}'s row is {'one of them' if inside else 'not among them'}"
        else:
            text = f"{e['family']} keeps no training rows verbatim"
        rows.append(("embedded rows", text))
    t = checks.get("tree_leaves")
    if t is not None:
        pure = "" if t["n_pure_small_leaves"] is None else f", {t['n_pure_small_leaves']} of them one class only"
        rows.append(("tree leaves", f"{t['n_small_leaves']} of {t['n_leaves']} leaves hold fewer than {t['min_cell']} "
                                    f"training rows{pure}; smallest {t['min_leaf_size']}"))
    for r in checks.get("rules") or ():
        rows.append(("rule", f"{r['estimator']}.{r['param']} = {r['value']}: {'passes' if r['passed'] else 'FAILS'} "
                             f"{r['rule']} ({r['source']})"))
    g = checks.get("generalisation")
    if g is not None:
        rows.append(("generalisation", f"accuracy {g['train_accuracy']:.3f} train vs {g['test_accuracy']:.3f} unseen; "
                                       f"log loss {g['train_log_loss'] + 0.0:.3f} vs {g['test_log_loss'] + 0.0:.3f}"))
    return rows


def _subgroup_rows(sub: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The most exposed slice of the headline attack (by TPR at the lowest resolved FPR, then AUC)."""
    measured = [s for s in sub["slices"] if s.get("auc") is not None and not s.get("small")]
    if not measured:
        return [("subgroups", f"{len(sub['slices'])} slices of {sub['attack']}'s scores; none with "
                              f"{sub['min_cell_count']}+ members and non-members")]
    levels = [f for f in sub["fpr_levels"] if all(s.get(f"tpr_at_fpr_{f:g}_resolved", True) for s in measured)]
    key = f"tpr_at_fpr_{levels[0]:g}" if levels else None
    top = max(measured, key=lambda s: ((s.get(key) or 0.0) if key else 0.0, s["auc"]))
    tpr = f", TPR@{levels[0]:g} {top[key]:.3f}" if key and top.get(key) is not None else ""
    return [("subgroups", f"most exposed of {len(sub['slices'])} slices ({sub['attack']}): {top['by']} = "
                          f"{top['value']}, AUC {top['auc']:.3f}{tpr} ({top['n_members']} members, "
                          f"{top['n_nonmembers']} non-members); {sub.get('n_small', 0)} small slice(s) flagged")]


def _notes(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The verdict's notes (plain words on what a figure does not mean)."""
    return [r for r in (summary.get("verdict") or {}).get("reasons", ()) if r["outcome"] == "note"]
