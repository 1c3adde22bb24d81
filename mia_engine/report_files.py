"""The release record of one run: what a TRE output checker files next to a model.

:func:`write_report` writes, under ``<run dir>/report/``:

- ``report.html``: one self-contained page (inline CSS, plots embedded as ``data:`` URIs, no
  scripts, no fonts or links from elsewhere) a non-specialist can read. It opens with the
  verdict and its reasons, then the model card, the data card, the checks beyond attacks, the
  attacks, the named individuals, the subgroups and the audit's size.
- ``report.json``: the same content as versioned JSON (``schema``: :data:`REPORT_SCHEMA`).
- ``manifest.json``: what went in (inputs and the resolved config, with SHA-256 digests), the
  engine and library versions, and the digests of the two files above (written last).
- ``report.pdf`` when asked for and a Chromium binary is found: headless Chromium prints the
  HTML, with the page's network cut off.

Nothing here reads data rows: the report is built from the run's summary, which holds
counts, scores and metrics only, and the model card the caller builds.

Heavy libraries are not imported: library versions come from package metadata.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

__all__ = ["REPORT_SCHEMA", "MANIFEST_SCHEMA", "LIBRARIES", "report_document", "render_html", "manifest",
           "find_chromium", "print_pdf", "write_report"]

REPORT_SCHEMA = "mia-engine/report/1"
MANIFEST_SCHEMA = "mia-engine/manifest/1"

# Distribution names whose versions the manifest records (never imported).
LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "hydra-core", "omegaconf", "mlflow", "matplotlib",
             "joblib", "skops", "pyarrow")

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT = 60.0
_CHUNK = 1 << 20
_PNG = b"\x89PNG\r\n\x1a\n"

log = logging.getLogger("mia_engine")


# ---------------------------------------------------------------------------------------------
# report.json


def _plain(value: Any) -> Any:
    """``value`` as JSON's own types: mappings with string keys, lists, str, int, finite
    float (NaN and infinities become None), bool, None; paths and anything else as text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)          # numpy scalars, without importing numpy
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(item())
    return str(value)


def _fpr_levels(metrics: Mapping[str, Any]) -> list[str]:
    """The FPR levels (as written in the keys, e.g. "0.001") of ``tpr_at_fpr_<level>`` keys,
    lowest first."""
    levels = []
    for key in metrics:
        if key.startswith("tpr_at_fpr_") and not key.endswith("_resolved"):
            level = key[len("tpr_at_fpr_"):]
            try:
                levels.append((float(level), level))
            except ValueError:
                continue
    return [text for _, text in sorted(levels)]


def _tpr_levels(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"fpr", "tpr", "resolved"}]``: ``resolved`` False when there were fewer non-members
    than 1/FPR, so the TPR is read at FPR 0."""
    return [{"fpr": float(level), "tpr": metrics.get(f"tpr_at_fpr_{level}"),
             "resolved": bool(metrics.get(f"tpr_at_fpr_{level}_resolved", True))}
            for level in _fpr_levels(metrics)]


def _attack_entry(name: str, a: Mapping[str, Any], headline: str | None, upper_name: str | None) -> dict[str, Any]:
    return {
        "kind": a.get("kind", name),
        "headline": name == headline,
        "upper_bound": bool(a.get("upper_bound")) or name == upper_name,
        "threat_model": a.get("threat_model"),
        "auc": a.get("auc"),
        "auc_ci": [a.get("auc_ci_low"), a.get("auc_ci_high")],
        "auc_pvalue": a.get("auc_pvalue"),
        "tpr_at_fpr": _tpr_levels(a),
        "advantage": a.get("advantage"),
        "epsilon_lower_bound": a.get("epsilon_lower_bound"),
        "n_members": a.get("n_members"),
        "n_nonmembers": a.get("n_nonmembers"),
        "reference_models": a.get("reference_models"),
    }


_RECORD_KEYS = ("name", "attack", "score", "membership_probability", "predicted_member", "is_member", "correct")


def _individuals(summary: Mapping[str, Any]) -> dict[str, Any]:
    rec = summary.get("target_record")
    target = None
    if rec is not None:
        target = {k: rec.get(k) for k in _RECORD_KEYS}
        target["attacks"] = {name: {"score": c.get("score"), "predicted_member": c.get("predicted_member"),
                                    "correct": c.get("correct")}
                             for name, c in (rec.get("attacks") or {}).items()}
    game = summary.get("game")
    played = None
    if game is not None:
        played = {"n_trials": game.get("n_trials"), "seed": game.get("seed"),
                  "inclusion_probability": game.get("inclusion_probability"),
                  "records": game.get("records") or {}, "ranking": game.get("ranking") or {}}
    return {"target_record": target, "game": played}


def report_document(summary: Mapping, *, model_card: Mapping, created: str) -> dict:
    """report.json's content (schema :data:`REPORT_SCHEMA`), from a run's summary.json and the
    caller's model card. ``attacks``: per attack (those with an AUC) its AUC with interval,
    p-value, TPR at each FPR level (``resolved`` False: read at FPR 0), advantage, epsilon lower
    bound, what the attacker holds and whether it is an upper bound or the headline attack.
    ``individuals``: the named target record's calls and, when the individual game was played,
    its per-record results. No data rows: the summary holds none and none are added."""
    headline = summary.get("attack")
    upper = summary.get("upper_bound")
    headline_name = headline.get("name") if isinstance(headline, Mapping) else None
    upper_name = upper.get("name") if isinstance(upper, Mapping) else None
    attacks = {str(name): _attack_entry(str(name), a, headline_name, upper_name)
               for name, a in (summary.get("attacks") or {}).items() if isinstance(a, Mapping) and "auc" in a}
    doc = {
        "schema": REPORT_SCHEMA,
        "created": created,
        "verdict": summary.get("verdict"),
        "model": model_card,
        "data": summary.get("data"),
        "audit": summary.get("audit"),
        "checks": summary.get("checks"),
        "attacks": attacks,
        "headline": headline,
        "upper_bound": upper,
        "individuals": _individuals(summary),
        "subgroups": summary.get("subgroups"),
        "game": summary.get("game"),
    }
    return _plain(doc)


# ---------------------------------------------------------------------------------------------
# report.html: formatting helpers (every piece of text goes through html.escape)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _isnum(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format(value: Any, spec: str) -> str:
    """None and non-finite numbers as "n/a", booleans as yes/no, whole numbers as they are,
    floats by ``spec``; escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _e(format(value + 0.0, spec)) if math.isfinite(value) else "n/a"
    return _e(value)


def _num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals (whole numbers as they are), escaped; "n/a" for None."""
    return _format(value, f".{digits}f")


def _sig(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant figures (p-values, measured values), escaped."""
    return _format(value, f".{digits}g")


def _pct(value: Any) -> str:
    return "n/a" if not _isnum(value) else _e(f"{100 * value:.1f}%")


def _yes(value: Any) -> str:
    return "not known" if value is None else ("yes" if value else "no")


def _ci(mid: Any, low: Any, high: Any, digits: int = 3) -> str:
    if mid is None:
        return "n/a"
    text = _num(mid, digits)
    if low is not None and high is not None:
        text += f" <span class=\"ci\">[{_num(low, digits)}, {_num(high, digits)}]</span>"
    return text


def _badge(text: str, kind: str) -> str:
    return f"<span class=\"badge {_e(kind)}\">{_e(text)}</span>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], classes: Iterable[str] | None = None,
           caption: str | None = None) -> str:
    """An HTML table. ``headers`` are plain text (escaped here); the cells of ``rows`` are HTML
    already built from escaped pieces."""
    rows = list(rows)
    classes = list(classes) if classes is not None else [""] * len(rows)
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in headers)
    body = "".join(
        (f"<tr class=\"{_e(c)}\">" if c else "<tr>") + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row, c in zip(rows, classes))
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(items: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value list; keys plain text, values HTML."""
    body = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f"<table class=\"pairs\"><tbody>{body}</tbody></table>"


def _section(sid: str, title: str, intro: str, body: str) -> str:
    lead = f"<p class=\"intro\">{_e(intro)}</p>" if intro else ""
    return f"<section id=\"{_e(sid)}\"><h2>{_e(title)}</h2>{lead}{body}</section>"


def _absent(text: str) -> str:
    return f"<p class=\"absent\">{_e(text)}</p>"


def _png(path: Path) -> bytes | None:
    """The bytes of a PNG file, None when it is missing or not a PNG."""
    try:
        p = Path(path)
        if not p.is_file():
            log.warning("report: image %s not found; left out of the report", p)
            return None
        data = p.read_bytes()
    except OSError as e:
        log.warning("report: image %s unreadable (%s); left out of the report", path, e)
        return None
    if not data.startswith(_PNG):
        log.warning("report: %s is not a PNG image; left out of the report", path)
        return None
    return data


def _figures(images: Iterable[tuple[str, Path]]) -> str:
    out = []
    for caption, path in images:
        data = _png(path)
        if data is None:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        out.append(f"<figure><img src=\"{uri}\" alt=\"{_e(caption)}\"><figcaption>{_e(caption)}</figcaption>"
                   "</figure>")
    return f"<div class=\"figures\">{''.join(out)}</div>" if out else ""


# ---------------------------------------------------------------------------------------------
# report.html: sections


_OUTCOMES = {
    "do_not_release": ("DO NOT RELEASE", "bad"),
    "needs_review": ("NEEDS REVIEW", "warn"),
    "no_evidence": ("NO EVIDENCE OF DISCLOSURE RISK FOUND", "good"),
    "pass": ("PASS", "good"),
}
_SEVERITY = {"do_not_release": 0, "needs_review": 1}
_CHECKS = {
    "attack": "Membership inference attack",
    "embedded_rows": "Training rows kept inside the model",
    "tree_leaves": "Small leaves in tree models",
    "rules": "Hyperparameter rules",
    "subgroups": "Subgroups of the data",
    "audit": "The audit itself",
    "individual": "Named individual",
}


def _outcome(outcome: Any) -> tuple[str, str]:
    text, kind = _OUTCOMES.get(str(outcome), (str(outcome).replace("_", " ").upper(), "warn"))
    return text, kind


def _reason_rows(reasons: list[Mapping[str, Any]]) -> tuple[list[list[str]], list[str]]:
    rows, classes = [], []
    for r in reasons:
        text, kind = _outcome(r.get("outcome"))
        check = str(r.get("check") or "")
        rows.append([_badge(text, kind), _e(_CHECKS.get(check, check.replace("_", " ") or "—")),
                     _e(r.get("subject") or "—"), _sig(r.get("measured")), _sig(r.get("threshold")),
                     _e(r.get("text") or "") + (f"<br><small>The attacker holds: {_e(r['attacker_holds'])}</small>"
                                                if r.get("attacker_holds") else ""),
                     _e(r.get("source") or "—")])
        classes.append(kind)
    return rows, classes


def _verdict_section(verdict: Mapping[str, Any] | None) -> str:
    if not verdict:
        return ("<section id=\"verdict-section\" class=\"verdict warn\"><h2>Verdict</h2>"
                "<p id=\"verdict\" class=\"outcome\">NO VERDICT</p>"
                + _absent("This run's summary carries no verdict: judge the sections below.") + "</section>")
    outcome = verdict.get("outcome")
    text = verdict.get("text") or _outcome(outcome)[0]
    kind = _outcome(outcome)[1]
    reasons = [r for r in verdict.get("reasons") or () if isinstance(r, Mapping)]
    failing = [r for r in reasons if r.get("outcome") != "pass"]
    failing.sort(key=lambda r: _SEVERITY.get(str(r.get("outcome")), 2))     # stable: worst first
    passed = [r for r in reasons if r.get("outcome") == "pass"]
    headers = ["Outcome", "Check", "Subject", "Measured", "Threshold", "What it means", "Threshold from"]
    body = [f"<p id=\"verdict\" class=\"outcome\">{_e(text)}</p>"]
    if verdict.get("risk"):
        body.append(f"<p class=\"small\">Risk settings: {_e(verdict['risk'])}</p>")
    if failing:
        body.append("<h3>Why</h3>")
        rows, classes = _reason_rows(failing)
        body.append(_table(headers, rows, classes))
    elif outcome != "no_evidence":
        body.append(_absent("No reasons were given for this verdict."))
    if passed:
        body.append("<h3>What was checked and passed</h3>")
        rows, classes = _reason_rows(passed)
        body.append(_table(headers, rows, classes))
    return (f"<section id=\"verdict-section\" class=\"verdict {_e(kind)}\"><h2>Verdict</h2>"
            + "".join(body) + "</section>")


def _model_section(card: Mapping[str, Any] | None) -> str:
    intro = "The trained model this audit is about, as it would be released."
    if not card:
        return _section("model", "The model", intro, _absent("No model card was given."))
    items = [("Model", _e(card.get("label") or "—")), ("Family", _e(card.get("family") or "—")),
             ("Training rows", _num(card.get("n_train"))),
             ("Accuracy on its training rows", _num(card.get("train_accuracy"))),
             ("Accuracy on held-out rows", _num(card.get("test_accuracy")))]
    if card.get("saved"):
        items.append(("Saved model file", _e(card["saved"])))
    body = _pairs(items)
    hp = card.get("hyperparameters") or {}
    if hp:
        ordered = sorted(hp.items(), key=lambda kv: str(kv[0]))
        body += _table(["Hyperparameter", "Value"], ([_e(k), _e(v)] for k, v in ordered), caption="Hyperparameters")
    return _section("model", "The model", intro, body)


_DATA_SHOWN = {"kind", "name", "layout", "nonmembers_are", "sources", "label", "labels", "features", "dropped",
               "id_column", "missing", "rows", "class_counts", "digest", "sha256", "schema"}


def _data_section(data: Mapping[str, Any] | None) -> str:
    intro = "Where the training data came from and its shape: counts and column kinds only, never a row."
    if not data:
        return _section("data", "The data", intro, _absent("This run's summary has no data card."))
    items = [("Name", _e(data.get("name") or "—")), ("Kind", _e(data.get("kind") or "—"))]
    if data.get("layout"):
        items.append(("Layout", _e(data["layout"])))
    if data.get("nonmembers_are"):
        items.append(("Non-members are", _e(data["nonmembers_are"])))
    for key in ("digest", "sha256"):
        if data.get(key):
            items.append(("SHA-256", f"<code>{_e(data[key])}</code>"))
    if data.get("label") is not None:
        items.append(("Label column", _e(data["label"])))
    if data.get("labels") is not None:
        items.append(("Labels", _e(", ".join(str(v) for v in data["labels"]))))
    if data.get("id_column"):
        items.append(("Id column (not a feature)", _e(data["id_column"])))
    if data.get("dropped"):
        items.append(("Columns dropped", _e(", ".join(str(v) for v in data["dropped"]))))
    for key, value in data.items():           # other plain facts (seed, sampler, ...)
        if key not in _DATA_SHOWN and (value is None or isinstance(value, (str, int, float, bool))):
            items.append((str(key).replace("_", " ").capitalize(), _sig(value)))
    body = _pairs(items)
    sources = [s for s in data.get("sources") or () if isinstance(s, Mapping)]
    if sources:
        body += _table(["Part", "Source", "SHA-256"],
                       ([_e(s.get("context") or "—"), _e(s.get("source") or "—"),
                         f"<code>{_e(s.get('sha256') or s.get('digest') or 'n/a')}</code>"] for s in sources),
                       caption="Files read")
    rows = data.get("rows") or {}
    counts = data.get("class_counts") or {}
    if rows:
        by_label = ["By label"] if counts else []
        body += _table(["Part", "Rows"] + by_label,
                       ([_e(part), _num(n)]
                        + ([_e(", ".join(f"{k}: {v}" for k, v in (counts.get(part) or {}).items()))] if counts else [])
                        for part, n in rows.items()), caption="Row counts")
    features = data.get("features") or data.get("schema") or {}
    missing = data.get("missing") or {}
    if features:
        body += _table(["Feature", "Kind", "Missing values"],
                       ([_e(name), _e(kind), _num(missing.get(name)) if name in missing else "—"]
                        for name, kind in features.items()), caption=f"Features ({len(features)})")
    return _section("data", "The data", intro, body)


def _checks_section(checks: Mapping[str, Any] | None) -> str:
    intro = ("Structural checks of the fitted model that need no attack: does it carry training rows, "
             "does it describe tiny groups, does it follow the TRE's hyperparameter rules.")
    if not checks:
        return _section("checks", "Checks beyond attacks", intro, _absent("This run's summary has no checks."))
    parts = []
    e = checks.get("embedded_rows")
    if e:
        if e.get("stores_rows"):
            text = (f"{e.get('family')} keeps {e.get('n_rows_stored')} of {e.get('n_train')} training rows "
                    f"verbatim ({e.get('how')}): releasing the model releases these rows.")
            cls = "bad"
        else:
            text = f"{e.get('family')} keeps no training rows verbatim."
            cls = "good"
        items = [("Finding", f"<span class=\"{cls}\">{_e(text)}</span>"),
                 ("Rows kept", f"{_num(e.get('n_rows_stored'))} of {_num(e.get('n_train'))} ({_pct(e.get('share'))})")]
        for name, inside in (e.get("named") or {}).items():
            said = {True: "their row IS kept in the model", False: "their row is not kept in the model",
                    None: "not known"}.get(inside, _e(inside))
            items.append((f"Named individual: {name}", f"<span class=\"{'bad' if inside else ''}\">{_e(said)}</span>"))
        parts.append("<h3>Training rows kept in the model</h3>" + _pairs(items))
    t = checks.get("tree_leaves")
    if t:
        pure = t.get("n_pure_small_leaves")
        items = [("Trees", _num(t.get("n_trees"))), ("Leaves", _num(t.get("n_leaves"))),
                 (f"Leaves with fewer than {t.get('min_cell')} rows",
                  f"{_num(t.get('n_small_leaves'))} ({_pct(t.get('share_small'))})"),
                 ("Of those, all one class", "not defined (boosting)" if pure is None else _num(pure)),
                 ("Smallest leaf", _num(t.get("min_leaf_size"))), ("Rows counted", _e(t.get("counted") or "—"))]
        parts.append("<h3>Small leaves in tree models</h3><p>A leaf holding a handful of training rows "
                     "describes those few people.</p>" + _pairs(items))
    rules = [r for r in checks.get("rules") or () if isinstance(r, Mapping)]
    if rules:
        rows = [[_e(r.get("estimator")), _e(r.get("param")), _e(r.get("value")), _e(r.get("rule")),
                 _badge("passes", "good") if r.get("passed") else _badge("FAILS", "bad"), _e(r.get("source") or "—")]
                for r in rules]
        parts.append("<h3>Hyperparameter rules</h3>"
                     + _table(["Estimator", "Parameter", "Value", "Rule", "Result", "Rule from"], rows,
                              ["" if r.get("passed") else "bad" for r in rules]))
    g = checks.get("generalisation")
    if g:
        items = [("Accuracy: training rows vs unseen rows",
                  f"{_num(g.get('train_accuracy'))} vs {_num(g.get('test_accuracy'))} "
                  f"(gap {_num(g.get('accuracy_gap'))})"),
                 ("Log loss: training rows vs unseen rows",
                  f"{_num(g.get('train_log_loss'))} vs {_num(g.get('test_log_loss'))} "
                  f"(gap {_num(g.get('log_loss_gap'))})"),
                 ("Rows", f"{_num(g.get('n_train'))} training, {_num(g.get('n_test'))} unseen")]
        parts.append("<h3>Generalisation gap</h3><p>A model much better on the rows it was trained on than on "
                     "new rows has memorised them, which is what membership attacks exploit.</p>" + _pairs(items))
    if "residual_dof" in checks:
        dof = checks.get("residual_dof")
        note = " (more parameters than training rows)" if _isnum(dof) and dof < 0 else ""
        parts.append("<h3>Residual degrees of freedom</h3>"
                     + _pairs([("Training rows minus model parameters", _num(dof) + _e(note))]))
    if not parts:
        parts.append(_absent("No checks beyond attacks applied to this model."))
    return _section("checks", "Checks beyond attacks", intro, "".join(parts))


def _is_game_image(key: str, path: Path) -> bool:
    return "game" in str(key).lower() or Path(path).name.startswith("game_")


def _attacks_section(doc: Mapping[str, Any], images: list[tuple[str, Path]]) -> str:
    intro = ("Each attack tries to tell the model's training rows (members) from rows it never saw "
             "(non-members). AUC 0.5 means no better than a coin toss, 1.0 means perfect. "
             "TPR at a false-positive rate: the share of members caught when only that share of non-members "
             "is wrongly accused. Epsilon lower bound: the smallest differential-privacy epsilon consistent "
             "with the attack's success.")
    attacks = doc.get("attacks") or {}
    body = []
    if not attacks:
        body.append(_absent("No attack was scored in this run."))
    else:
        levels = sorted({t["fpr"] for a in attacks.values() for t in a.get("tpr_at_fpr") or ()})
        unresolved = False
        rows, classes = [], []
        for name, a in attacks.items():
            marks = []
            if a.get("headline"):
                marks.append(_badge("headline", "head"))
            if a.get("upper_bound"):
                marks.append(_badge("upper bound, not an attacker", "ub"))
            tprs = {t["fpr"]: t for t in a.get("tpr_at_fpr") or ()}
            cells = [f"<strong>{_e(name)}</strong> " + " ".join(marks),
                     _ci(a.get("auc"), *(a.get("auc_ci") or [None, None])), _sig(a.get("auc_pvalue"), 2)]
            for level in levels:
                t = tprs.get(level)
                if t is None:
                    cells.append("n/a")
                    continue
                mark = ""
                if not t.get("resolved", True):
                    mark, unresolved = "&#8224;", True
                cells.append(_num(t.get("tpr")) + mark)
            cells += [_num(a.get("advantage")), _num(a.get("epsilon_lower_bound"), 2),
                      _e(a.get("threat_model") or "—")]
            rows.append(cells)
            classes.append("headline" if a.get("headline") else ("ub" if a.get("upper_bound") else ""))
        headers = (["Attack", "AUC [95% interval]", "p-value"] + [f"TPR at FPR {level:g}" for level in levels]
                   + ["Advantage", "Epsilon lower bound", "What the attacker holds"])
        body.append(_table(headers, rows, classes))
        notes = ["<li>The <em>headline</em> attack is the strongest one an attacker could run; the verdict rests "
                 "on it.</li>",
                 "<li>An <em>upper bound</em> attack is given the audit's true answers: it shows how far any attack "
                 "could go, not what a real attacker achieves.</li>"]
        if unresolved:
            notes.append("<li>&#8224; fewer non-members than 1/FPR: this TPR is read at a false-positive rate "
                         "of 0.</li>")
        body.append(f"<ul class=\"notes\">{''.join(notes)}</ul>")
    body.append(_figures(images))
    return _section("attacks", "Attacks", intro, "".join(body))


def _individuals_section(ind: Mapping[str, Any] | None, images: list[tuple[str, Path]]) -> str:
    intro = "What the attacks say about named individuals."
    ind = ind or {}
    rec, game = ind.get("target_record"), ind.get("game")
    body = []
    if rec:
        items = [("Name", _e(rec.get("name"))), ("Headline attack", _e(rec.get("attack") or "none")),
                 ("Score", _sig(rec.get("score")))]
        if rec.get("membership_probability") is not None:
            items.append(("Membership probability", _num(rec.get("membership_probability"))))
        called = rec.get("predicted_member")
        items.append(("The attacker says", "n/a" if called is None else
                      ("<strong class=\"bad\">MEMBER</strong>" if called else "not a member")))
        items.append(("Truly in the training data", _yes(rec.get("is_member"))))
        if rec.get("correct") is not None:
            items.append(("The attacker is", "<strong class=\"bad\">RIGHT</strong>" if rec["correct"] else "wrong"))
        body.append(f"<h3>{_e(rec.get('name'))}</h3>" + _pairs(items))
        calls = rec.get("attacks") or {}
        if calls:
            body.append(_table(["Attack", "Score", "Says member", "Right"],
                               ([_e(n), _sig(c.get("score")), _yes(c.get("predicted_member")), _yes(c.get("correct"))]
                                for n, c in calls.items()), caption="Every attack's call"))
    if game:
        body.append("<h3>The individual game</h3>"
                    f"<p>The model was retrained {_num(game.get('n_trials'))} times, each individual included with "
                    f"probability {_sig(game.get('inclusion_probability'))} (seed {_e(game.get('seed'))}); the "
                    "attacker guessed every time whether they were in. AUC near 1 and accuracy near 1: the attacker "
                    "reliably tells whether this person was in the training data.</p>")
        ranking = game.get("ranking") or {}
        rows = []
        for name, per_attack in (game.get("records") or {}).items():
            for attack, r in (per_attack or {}).items():
                rank = ranking.get(name) or {}
                rows.append([_e(name) + (f" <span class=\"small\">(rank {_e(rank.get('rank'))})</span>"
                                         if rank.get("attack") == attack else ""),
                             _e(attack), _ci(r.get("auc"), r.get("auc_ci_low"), r.get("auc_ci_high")),
                             _ci(r.get("accuracy"), r.get("accuracy_ci_low"), r.get("accuracy_ci_high"), 2),
                             _num(r.get("tpr_at_threshold"), 2), _num(r.get("fpr_at_threshold"), 2),
                             _num(r.get("epsilon_lower_bound"), 2), f"{_num(r.get('n_in'))} / {_num(r.get('n_out'))}"])
        if rows:
            body.append(_table(["Individual", "Attack", "AUC [interval]", "Accuracy [interval]", "TPR", "FPR",
                                "Epsilon lower bound", "Trials in / out"], rows))
        else:
            body.append(_absent("The game recorded no per-record results."))
    body.append(_figures(images))
    if not rec and not game:
        body.insert(0, _absent("No named individual was examined in this run."))
    return _section("individuals", "Named individuals", intro, "".join(body))


def _subgroups_section(sub: Mapping[str, Any] | None) -> str:
    intro = ("One attack, measured on slices of the audit (by class, feature value or how badly the model "
             "fits the row): a model can be safe on average and still expose one group.")
    if not sub:
        return _section("subgroups", "Subgroups", intro, _absent("No subgroup analysis in this run."))
    min_cell = sub.get("min_cell_count")
    slices = [s for s in sub.get("slices") or () if isinstance(s, Mapping)]
    levels = [str(x) for x in sub.get("fpr_levels") or ()] or sorted(
        {lv for s in slices for lv in _fpr_levels(s)}, key=float)
    head = _pairs([("Attack", _e(sub.get("attack") or "—")), ("Minimum cell count", _num(min_cell))])
    if not slices:
        return _section("subgroups", "Subgroups", intro, head + _absent("No slices were measured."))
    rows, classes = [], []
    for s in slices:
        small = bool(s.get("small"))
        by = str(s.get("by") or "")
        shown_by = ("feature " + by[len("feature:"):]) if by.startswith("feature:") else by.replace("_", " ")
        cells = [_e(shown_by), _e(s.get("value")), _num(s.get("n_members")), _num(s.get("n_nonmembers")),
                 _ci(s.get("auc"), s.get("auc_ci_low"), s.get("auc_ci_high"))]
        for level in levels:
            v = s.get(f"tpr_at_fpr_{level}")
            mark = "&#8224;" if s.get(f"tpr_at_fpr_{level}_resolved") is False else ""
            cells.append(_num(v) + mark)
        cells.append(_badge(f"SMALL: fewer than {min_cell}", "warn") if small else "")
        rows.append(cells)
        classes.append("small-slice" if small else "")
    headers = ["Slice by", "Value", "Members", "Non-members", "AUC [interval]"] + \
        [f"TPR at FPR {float(level):g}" for level in levels] + ["Size"]
    note = (f"<p class=\"small\">Slices marked SMALL hold fewer than {_num(min_cell)} members or non-members: "
            "their numbers are unreliable and the slice itself may single out a few people. "
            "n/a: one of the two groups is empty.</p>")
    return _section("subgroups", "Subgroups", intro, head + _table(headers, rows, classes) + note)


def _audit_section(doc: Mapping[str, Any]) -> str:
    intro = "How many records the attacks were scored on: a small audit gives wide intervals."
    audit = doc.get("audit")
    held = (doc.get("data") or {}).get("nonmembers_are") or "unseen"
    if not audit:
        a = doc.get("headline") or doc.get("upper_bound") or {}
        if a.get("n_members") is None:
            return _section("audit", "Audit size", intro, _absent("This run's summary has no audit information."))
        audit = {"n_members": a.get("n_members"), "n_nonmembers": a.get("n_nonmembers")}
    items = [("Members (training rows)", _num(audit.get("n_members"))),
             (f"Non-members ({held} rows)", _num(audit.get("n_nonmembers")))]
    if audit.get("n_nonmembers_drawn") is not None:
        items.append(("Non-members drawn", _num(audit.get("n_nonmembers_drawn"))))
    dup = audit.get("duplicates")
    if dup is not None:
        policy = audit.get("duplicates_policy")
        what = "dropped" if policy == "drop" else ("kept" if policy else "found")
        items.append((f"Non-members copying a member row ({what})", _num(dup)))
    return _section("audit", "Audit size", intro, _pairs(items))


_CSS = """
:root { --bad: #b00020; --warn: #8a5300; --good: #1b6e20; --line: #d0d4da; --muted: #5b6470; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d232b; margin: 0 auto; padding: 24px; max-width: 1100px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.5em; margin: 0 0 4px; }
h2 { font-size: 1.25em; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
p.meta, .small, .ci { color: var(--muted); font-size: 0.9em; }
p.intro { color: var(--muted); }
p.absent { font-style: italic; color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0 16px; width: 100%; font-size: 0.93em; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
thead th { background: #f1f3f6; }
table.pairs { width: auto; min-width: 50%; }
table.pairs th { background: #f7f8fa; font-weight: 600; width: 18em; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85em;
       word-break: break-all; }
.verdict { border: 3px solid; border-radius: 8px; padding: 8px 20px 12px; margin-top: 20px; }
.verdict h2 { border: none; margin: 8px 0 0; font-size: 1em; color: var(--muted); text-transform: uppercase; }
.verdict.bad { border-color: var(--bad); background: #fff5f6; }
.verdict.warn { border-color: var(--warn); background: #fffaf0; }
.verdict.good { border-color: var(--good); background: #f4fbf4; }
.outcome { font-size: 2.3em; font-weight: 800; margin: 4px 0 8px; letter-spacing: 0.02em; }
.verdict.bad .outcome, span.bad, strong.bad { color: var(--bad); }
.verdict.warn .outcome { color: var(--warn); }
.verdict.good .outcome { color: var(--good); }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 0.8em; font-weight: 700;
         white-space: nowrap; border: 1px solid; }
.badge.bad { color: var(--bad); border-color: var(--bad); background: #fff5f6; }
.badge.warn { color: var(--warn); border-color: var(--warn); background: #fffaf0; }
.badge.good { color: var(--good); border-color: var(--good); background: #f4fbf4; }
.badge.head { color: #fff; background: #1d4f91; border-color: #1d4f91; }
.badge.ub { color: var(--muted); border-color: var(--muted); background: #f1f3f6; }
tr.bad td:first-child { border-left: 4px solid var(--bad); }
tr.warn td:first-child { border-left: 4px solid var(--warn); }
tr.headline td { background: #f2f6fc; }
tr.ub td { color: var(--muted); }
tr.small-slice td { background: #fff8e6; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; flex: 1 1 460px; max-width: 100%; border: 1px solid var(--line); padding: 8px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.85em; text-align: center; margin-top: 4px; }
ul.notes { color: var(--muted); font-size: 0.9em; }
footer { margin-top: 32px; color: var(--muted); font-size: 0.85em; border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print {
  body { padding: 0; max-width: none; font-size: 11px; }
  section, figure, tr { page-break-inside: avoid; break-inside: avoid; }
  h2, h3 { page-break-after: avoid; break-after: avoid; }
  .verdict, .badge, thead th, tr td { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def render_html(doc: Mapping, images: Mapping[str, Path]) -> str:
    """One self-contained HTML page for ``doc`` (from :func:`report_document`): inline CSS, every
    image that exists embedded as a ``data:image/png;base64`` URI (``images``: caption -> PNG
    path; a missing or non-PNG file is left out, with a warning), no scripts, no external fonts
    or links. Sections: verdict (``id="verdict"`` holds its text), model, data, checks,
    attacks (with the plots), named individuals (with the game's plots), subgroups, audit size."""
    pictures = [(str(k), Path(v)) for k, v in (images or {}).items() if v is not None]
    game_pictures = [(k, p) for k, p in pictures if _is_game_image(k, p)]
    attack_pictures = [(k, p) for k, p in pictures if not _is_game_image(k, p)]
    model = doc.get("model") or {}
    title = "Membership inference audit" + (f": {model.get('label')}" if model.get("label") else "")
    sections = [
        _verdict_section(doc.get("verdict")),
        _model_section(model),
        _data_section(doc.get("data")),
        _checks_section(doc.get("checks")),
        _attacks_section(doc, attack_pictures),
        _individuals_section(doc.get("individuals"), game_pictures),
        _subgroups_section(doc.get("subgroups")),
        _audit_section(doc),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p class=\"meta\">Created {_e(doc.get('created') or 'n/a')} (UTC) "
            f"&middot; {_e(doc.get('schema') or REPORT_SCHEMA)}</p></header>"
            + "".join(sections)
            + "<footer>Produced by mia-engine. This page holds counts, scores and metrics only, no data rows; "
              "the same content is in report.json, and manifest.json lists the inputs with their SHA-256 "
              "digests.</footer></body></html>\n")


# ---------------------------------------------------------------------------------------------
# manifest.json


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _sha256_dir(path: Path) -> tuple[str, int, int]:
    """``(digest, bytes, files)`` of a directory: SHA-256 over, for each file below it in sorted
    order of relative POSIX path, ``<relative path> NUL <file's SHA-256 hex> LF``."""
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    h = hashlib.sha256()
    total = 0
    for p in files:
        digest, size = _sha256_file(p)
        h.update(p.relative_to(path).as_posix().encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
        total += size
    return h.hexdigest(), total, len(files)


_DIR_HASH = ("sha256 over '<relative path>\\0<file sha256 hex>\\n' for each file below the directory, "
             "in sorted order of relative path")


def _describe_input(path: Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        digest, size, n = _sha256_dir(p)
        return {"path": str(p), "sha256": digest, "bytes": size, "kind": "directory", "files": n,
                "hashing": _DIR_HASH}
    if p.is_file():
        digest, size = _sha256_file(p)
        return {"path": str(p), "sha256": digest, "bytes": size}
    log.warning("manifest: input %s does not exist; recorded without a digest", p)
    return {"path": str(p), "sha256": None, "bytes": None, "missing": True}


def _library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def manifest(*, inputs: Mapping[str, Path | None], resolved_config: Path, commit: str | None, created: str,
             engine_version: str, outputs: Mapping[str, Path] = MappingProxyType({})) -> dict:
    """manifest.json's content (schema :data:`MANIFEST_SCHEMA`): the engine (version, git
    commit), Python and library versions (from package metadata; None when not installed), every
    input that is not None with its SHA-256 and size (a directory: a digest over its files in
    sorted order, marked ``"kind": "directory"``; a path that does not exist: ``"missing": true``),
    the resolved config's and the outputs' SHA-256. Files are hashed in 1 MiB chunks."""
    import platform

    cfg = Path(resolved_config)
    cfg_digest, cfg_size = _sha256_file(cfg)
    outs = {}
    for name, path in (outputs or {}).items():
        digest, size = _sha256_file(Path(path))
        outs[str(name)] = {"path": str(path), "sha256": digest, "bytes": size}
    return {
        "schema": MANIFEST_SCHEMA,
        "created": created,
        "engine": {"name": "mia-engine", "version": engine_version, "commit": commit},
        "python": platform.python_version(),
        "libraries": _library_versions(),
        # A path is hashed here; a mapping is an input already digested where it was read (a
        # bundled table: {"source", "sha256"}) and is recorded as given.
        "inputs": {str(name): dict(path) if isinstance(path, Mapping) else _describe_input(Path(path))
                   for name, path in (inputs or {}).items() if path is not None},
        "resolved_config": {"path": str(cfg), "sha256": cfg_digest, "bytes": cfg_size},
        "outputs": outs,
    }


# ---------------------------------------------------------------------------------------------
# PDF through headless Chromium


def find_chromium(configured: str | None = None) -> str | None:
    """The Chromium binary to print with: ``configured`` (a path or a name on PATH) when given,
    None if it cannot be run; otherwise the first of chromium, chromium-browser, google-chrome,
    google-chrome-stable on PATH; None if none is."""
    if configured:
        found = shutil.which(str(configured))
        if found is None:
            log.warning("report: configured Chromium %s is not an executable file", configured)
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_args(chromium: str, user_data_dir: str) -> list[str]:
    """Headless Chromium without a sandbox (root in containers), GPU, extensions, background
    traffic or name resolution: every host name maps to nowhere and a proxy that does not
    exist takes every request, so a page cannot reach the network."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={user_data_dir}", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--mute-audio", "--disable-features=Translate,MediaRouter",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def run_chromium(args: list[str], timeout: float = PDF_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a Chromium command line in its own process group, killing the whole group (Chromium
    starts helper processes) when it runs over ``timeout`` seconds (``subprocess.TimeoutExpired``)."""
    posix = os.name == "posix"
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=posix)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if posix:
            import signal

            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def print_pdf(html: Path, pdf: Path, chromium: str) -> Path:
    """Headless ``chromium`` prints ``html`` to ``pdf`` (A4/Letter per Chromium's default, no
    header or footer, backgrounds kept), network cut off, a throwaway profile, 60 s at most.
    Raises RuntimeError (one line naming the binary) on a timeout, a non-zero exit or no PDF."""
    html, pdf = Path(html), Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    if pdf.exists():
        pdf.unlink()
    with tempfile.TemporaryDirectory(prefix="mia-chromium-") as profile:
        args = chromium_args(chromium, profile) + [
            "--no-pdf-header-footer", "--print-to-pdf-no-header", "--run-all-compositor-stages-before-draw",
            f"--print-to-pdf={pdf.resolve()}", html.resolve().as_uri()]
        try:
            done = run_chromium(args, PDF_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{chromium} did not print {html} to PDF within {PDF_TIMEOUT:.0f} s") from None
        except OSError as e:
            raise RuntimeError(f"{chromium} could not be started to print {html} to PDF: {e}") from None
    if done.returncode != 0:
        said = _last_line(done.stderr)
        raise RuntimeError(f"{chromium} exited with code {done.returncode} printing {html} to PDF"
                           + (f": {said}" if said else ""))
    if not pdf.is_file() or pdf.stat().st_size == 0:
        said = _last_line(done.stderr)
        raise RuntimeError(f"{chromium} wrote no PDF at {pdf}" + (f": {said}" if said else ""))
    return pdf


# ---------------------------------------------------------------------------------------------
# Everything


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_report(out_dir: Path, summary: Mapping, *, model_card: Mapping, images: Mapping[str, Path],
                 inputs: Mapping[str, Path | None], resolved_config: Path, commit: str | None, engine_version: str,
                 pdf: bool = False, chromium: str | None = None) -> dict[str, Path]:
    """Write ``out_dir/report/``: report.html, report.json, report.pdf (``pdf=True`` and a
    Chromium found, else a warning) and manifest.json last, with the digests of the others.
    Returns ``{"report": the folder, "html", "json", "manifest"}`` and ``"pdf"`` when one was
    written. A failure to print the PDF raises RuntimeError after the manifest is written."""
    folder = Path(out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    created = _utc_now()
    doc = report_document(summary, model_card=model_card, created=created)
    paths: dict[str, Path] = {"report": folder, "html": folder / "report.html", "json": folder / "report.json"}
    _write_text(paths["json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    _write_text(paths["html"], render_html(doc, images))
    error: RuntimeError | None = None
    if pdf:
        binary = find_chromium(chromium)
        if binary is None:
            log.warning("report: no Chromium found (%s); report.pdf not written",
                        chromium or "looked for " + ", ".join(CHROMIUM_NAMES) + " on PATH")
        else:
            try:
                paths["pdf"] = print_pdf(paths["html"], folder / "report.pdf", binary)
            except RuntimeError as e:
                error = e
    outputs = {p.name: p for key, p in paths.items() if key in ("html", "json", "pdf")}
    record = manifest(inputs=inputs, resolved_config=resolved_config, commit=commit, created=created,
                      engine_version=engine_version, outputs=outputs)
    paths["manifest"] = folder / "manifest.json"
    _write_text(paths["manifest"], json.dumps(_plain(record), indent=2, allow_nan=False) + "\n")
    if error is not None:
        raise error
    return paths
