"""The console report of one run: the tutorial's numbers and the verdict."""

from __future__ import annotations

from typing import Any, Mapping


def _probs(labels, probs, digits: int) -> str:
    return "  ".join(f"[{label}] {p:.{digits}f}" for label, p in zip(labels, probs))


def format_report(summary: Mapping[str, Any], model: str, output_dir: str) -> str:
    labels = summary["labels"]
    rows: list[tuple[str, str]] = []
    rec = summary.get("target_record")
    if rec is not None:
        rows.append((f"{rec['name']}", f"target probabilities {_probs(labels, rec['probabilities'], 8)}"))
    sh = summary["shadow"]
    rows.append(("shadow model", f"mean max-confidence: members {sh['train_mean_confidence']:.2f}"
                                 f" / non-members {sh['test_mean_confidence']:.2f}"))
    if rec is not None:
        rows.append(("attack", f"max confidence {rec['max_confidence']:.2f} -> membership probability "
                               f"{rec['membership_probability']:.2f}"))
        said = "MEMBER" if rec["predicted_member"] else "NOT a member"
        if rec["is_member"] is None:
            truth = ""
        else:
            truth = (f"; truly {'a member' if rec['is_member'] else 'not a member'}: the attacker is "
                     f"{'RIGHT' if rec['correct'] else 'WRONG'}")
        rows.append(("verdict", f"predicted {said}{truth}"))
    for name, probe in (summary.get("probe_records") or {}).items():
        rows.append((name, f"target probabilities {_probs(labels, probe['probabilities'], 2)}"))
    a = summary.get("attack")
    if a is not None:
        tprs = "  ".join(f"TPR@FPR {k[len('tpr_at_fpr_'):]} {v:.3f}" for k, v in a.items() if k.startswith("tpr_at_fpr_"))
        rows.append(("audit", f"AUC {a['auc']:.3f}  {tprs}  advantage {a['advantage']:.3f}  accuracy "
                              f"{a['accuracy']:.3f}  ({a['n_members']} members vs {a['n_nonmembers']} fresh)"))
    t = summary["target"]
    fresh = "n/a" if t["test_accuracy"] is None else f"{t['test_accuracy']:.3f}"
    rows.append(("target model", f"{model}: accuracy train {t['train_accuracy']:.3f}, fresh data {fresh}"))
    rows.append(("outputs", output_dir))
    ml = summary.get("mlflow") or {}
    if ml.get("run_id"):
        rows.append(("mlflow", f"run {ml['run_id']} (experiment {ml['experiment_id']}) at {ml['tracking_uri']}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
