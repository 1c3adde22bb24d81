"""The release record of a run (mia_engine.report_files): report.json, report.html (checked in
headless Chromium), manifest.json and the PDF."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import json
import logging
import re
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from mia_engine import __version__
from mia_engine.report_files import (LIBRARIES, MANIFEST_SCHEMA, REPORT_SCHEMA, chromium_args, find_chromium, manifest,
                                     print_pdf, render_html, report_document, run_chromium, write_report)

RUN_ARGS = ["attack=[shadow_lr,lira]", "tracking=none", "reference.n_models=8", "evaluation=individual_game",
            "evaluation.n_trials=8"]

VERDICT = {
    "outcome": "do_not_release",
    "text": "DO NOT RELEASE",
    "risk": "default",
    "reasons": [
        {"outcome": "pass", "check": "audit", "subject": "", "measured": 380, "threshold": 100,
         "text": "The audit has enough records to measure the attack.", "source": "risk.min_audit_records"},
        {"outcome": "needs_review", "check": "embedded_rows", "subject": "SVC", "measured": 0.97, "threshold": 0.0,
         "text": "The model keeps 194 training rows verbatim, former_prime_minister's among them.",
         "source": "TRE policy: no model may contain training rows"},
        {"outcome": "do_not_release", "check": "attack", "subject": "lira", "measured": 0.85, "threshold": 0.1,
         "text": "LiRA identifies 85% of members while <1%> of non-members are wrongly accused & flagged.",
         "source": "risk.max_tpr_at_fpr (SACRO-ML guidance)"},
    ],
}

SUBGROUPS = {
    "attack": "lira", "min_cell_count": 10, "fpr_levels": [0.001, 0.01, 0.1],
    "slices": [
        {"by": "class", "value": "1", "n_members": 100, "n_nonmembers": 90, "auc": 0.97, "auc_ci_low": 0.9,
         "auc_ci_high": 0.99, "tpr_at_fpr_0.001": 0.5, "tpr_at_fpr_0.01": 0.8, "tpr_at_fpr_0.1": 0.9, "small": False},
        {"by": "feature:smoker", "value": "yes", "n_members": 6, "n_nonmembers": 0, "auc": None, "auc_ci_low": None,
         "auc_ci_high": None, "tpr_at_fpr_0.001": None, "tpr_at_fpr_0.01": None, "tpr_at_fpr_0.1": None,
         "small": True},
        {"by": "loss_percentile", "value": "90-100", "n_members": 20, "n_nonmembers": 19, "auc": 0.99,
         "auc_ci_low": 0.95, "auc_ci_high": 1.0, "tpr_at_fpr_0.001": 0.9, "tpr_at_fpr_0.01": 0.9,
         "tpr_at_fpr_0.1": 0.95, "small": False},
    ],
}

MODEL_CARD = {"label": "SVC(C=1.0, gamma=3.0)", "family": "SVC",
              "hyperparameters": {"C": 1.0, "gamma": 3.0, "kernel": "rbf", "probability": True},
              "n_train": 200, "train_accuracy": 0.995, "test_accuracy": 0.7, "saved": None}

SECTION_ORDER = ["verdict-section", "model", "data", "checks", "attacks", "individuals", "subgroups", "audit"]


# ---------------------------------------------------------------------------------------------
# Fixtures: one real run, its report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    done = run_cli([*RUN_ARGS, f"hydra.run.dir={out}"], cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def summary(run_dir) -> dict:
    s = json.loads((run_dir / "summary.json").read_text())
    s["verdict"] = copy.deepcopy(VERDICT)
    s["subgroups"] = copy.deepcopy(SUBGROUPS)
    return s


def _images(run_dir: Path) -> dict[str, Path]:
    return {p.stem.replace("_", " "): p for p in sorted((run_dir / "plots").glob("*.png"))}


@pytest.fixture(scope="module")
def report(run_dir, summary, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return write_report(out, summary, model_card=MODEL_CARD, images=_images(run_dir),
                        inputs={"data": run_dir / "data", "target_train": run_dir / "data" / "target_train.csv",
                                "model": None},
                        resolved_config=run_dir / "resolved_config.yaml", commit="0123abc", engine_version=__version__)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium binary (chromium, chromium-browser, google-chrome, google-chrome-stable) on PATH")
    return found


class _Tags(HTMLParser):
    """Every start tag with its attributes, and every element id in document order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _tags(text: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(text)
    return p.tags


# ---------------------------------------------------------------------------------------------
# report.json


def test_report_json_holds_the_verdict_attacks_and_individuals(report, summary):
    doc = json.loads(report["json"].read_text())
    assert doc["schema"] == REPORT_SCHEMA == "mia-engine/report/1"
    assert datetime.fromisoformat(doc["created"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert doc["verdict"]["outcome"] == "do_not_release"
    assert [r["check"] for r in doc["verdict"]["reasons"]] == ["audit", "embedded_rows", "attack"]
    assert doc["model"] == MODEL_CARD
    assert doc["subgroups"] == SUBGROUPS
    assert doc["data"]["name"] == "cancer_patients" and doc["data"]["features"]["age"] == "numeric"
    assert doc["audit"] == summary["audit"] and doc["checks"] == summary["checks"]
    assert doc["headline"]["name"] == summary["attack"]["name"]
    assert doc["upper_bound"] is None                       # no worst_case attack in this run

    assert set(doc["attacks"]) == {"shadow_lr", "lira"}
    for name, a in doc["attacks"].items():
        src = summary["attacks"][name]
        assert a["threat_model"] == src["threat_model"] and a["threat_model"]
        assert a["auc"] == src["auc"] and a["auc_ci"] == [src["auc_ci_low"], src["auc_ci_high"]]
        assert a["auc_pvalue"] == src["auc_pvalue"]
        assert a["advantage"] == src["advantage"] and a["epsilon_lower_bound"] == src["epsilon_lower_bound"]
        assert a["headline"] is (name == summary["attack"]["name"])
        assert a["upper_bound"] is False
        assert [t["fpr"] for t in a["tpr_at_fpr"]] == [0.001, 0.01, 0.1]
        for t in a["tpr_at_fpr"]:
            key = f"tpr_at_fpr_{t['fpr']}"
            assert t["tpr"] == src[key] and t["resolved"] is src.get(key + "_resolved", True)
    assert doc["attacks"]["shadow_lr"]["threat_model"] != doc["attacks"]["lira"]["threat_model"]
    assert doc["attacks"]["shadow_lr"]["tpr_at_fpr"][0]["resolved"] is False   # 180 non-members < 1/0.001

    rec = doc["individuals"]["target_record"]
    src = summary["target_record"]
    assert rec["name"] == "former_prime_minister" == src["name"]
    assert {k: rec[k] for k in ("attack", "score", "predicted_member", "is_member")} == \
        {k: src[k] for k in ("attack", "score", "predicted_member", "is_member")}
    assert set(rec["attacks"]) == {"shadow_lr", "lira"}
    assert "probabilities" not in rec
    game = doc["individuals"]["game"]
    assert game["n_trials"] == 8 and set(game["records"]) == set(summary["game"]["records"])
    fpm = "former_prime_minister"
    assert game["records"][fpm]["lira"] == summary["game"]["records"][fpm]["lira"]
    assert doc["game"] == summary["game"]


def test_upper_bound_attacks_are_marked(summary):
    s = copy.deepcopy(summary)
    held = "the audit's true membership labels (an upper bound, not an attacker)"
    s["attacks"]["worst_case"] = dict(s["attacks"]["shadow_lr"], kind="worst_case", upper_bound=True,
                                      threat_model=held)
    s["upper_bound"] = dict(s["attacks"]["worst_case"], name="worst_case")
    doc = report_document(s, model_card=MODEL_CARD, created="2025-01-01T00:00:00Z")
    assert doc["attacks"]["worst_case"]["upper_bound"] is True and not doc["attacks"]["worst_case"]["headline"]
    assert doc["attacks"]["lira"]["upper_bound"] is False
    page = render_html(doc, {})
    row = re.search(r"<tr class=\"ub\">.*?</tr>", page, re.S)
    assert row and "worst_case" in row.group(0) and "upper bound" in row.group(0)
    head = re.search(r"<tr class=\"headline\">.*?</tr>", page, re.S)
    assert head and f"<strong>{summary['attack']['name']}</strong>" in head.group(0)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    return lines[0], lines[1:]


def _number_lists(value, out: list) -> list:
    if isinstance(value, dict):
        for v in value.values():
            _number_lists(v, out)
    elif isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out.append([float(v) for v in value])
        for v in value:
            _number_lists(v, out)
    return out


def _leaked_rows(doc_text: str, page: str, rows: list[list[str]], n_features: int) -> list[list[str]]:
    """Training rows found in report.json (as a list of numbers, with or without the label) or in
    either file as comma-joined text."""
    found = _number_lists(json.loads(doc_text), [])
    leaked = []
    for row in rows:
        values = [float(v) for v in row]
        joined = ",".join(row[:n_features])
        if values in found or values[:n_features] in found or joined in doc_text or joined in page:
            leaked.append(row)
    return leaked


def test_no_training_row_in_the_report(report, run_dir, summary):
    header, rows = _rows(run_dir / "data" / "target_train.csv")
    n_features = len(header) - 1
    assert len(rows) == 200 and header[-1] == "label"
    doc_text, page = report["json"].read_text(), report["html"].read_text()
    assert _leaked_rows(doc_text, page, rows, n_features) == []
    # The same test on a summary that carries a row (it must not pass by accident).
    s = copy.deepcopy(summary)
    s["data"]["example"] = [int(v) for v in rows[3]]
    doc = report_document(s, model_card=MODEL_CARD, created="2025-01-01T00:00:00Z")
    assert _leaked_rows(json.dumps(doc), "", rows, n_features) == [rows[3]]


# ---------------------------------------------------------------------------------------------
# manifest.json


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_hashes_inputs_config_and_outputs(report, run_dir):
    m = json.loads(report["manifest"].read_text())
    assert m["schema"] == MANIFEST_SCHEMA == "mia-engine/manifest/1"
    assert m["engine"] == {"name": "mia-engine", "version": __version__, "commit": "0123abc"}
    assert m["python"] == ".".join(str(x) for x in sys.version_info[:3])
    cfg = run_dir / "resolved_config.yaml"
    assert m["resolved_config"]["sha256"] == hashlib.sha256(cfg.read_bytes()).hexdigest()
    assert m["resolved_config"]["path"] == str(cfg)
    assert set(m["libraries"]) == set(LIBRARIES)
    for name in ("numpy", "scipy", "scikit-learn", "pandas", "hydra-core", "omegaconf", "matplotlib", "joblib"):
        assert m["libraries"][name] == metadata.version(name)
    assert set(m["inputs"]) == {"data", "target_train"}                     # None inputs left out
    train = run_dir / "data" / "target_train.csv"
    assert m["inputs"]["target_train"] == {"path": str(train), "sha256": _sha(train), "bytes": train.stat().st_size}
    d = m["inputs"]["data"]
    files = sorted(p for p in (run_dir / "data").rglob("*") if p.is_file())
    assert d["kind"] == "directory" and d["files"] == len(files) >= 4
    assert d["bytes"] == sum(p.stat().st_size for p in files)
    expected = hashlib.sha256(b"".join(p.relative_to(run_dir / "data").as_posix().encode() + b"\0"
                                       + _sha(p).encode() + b"\n" for p in files)).hexdigest()
    assert d["sha256"] == expected
    assert set(m["outputs"]) == {"report.html", "report.json"}
    for name, entry in m["outputs"].items():
        assert entry["sha256"] == _sha(report["report"] / name) and entry["path"] == str(report["report"] / name)
    assert set(report) == {"report", "html", "json", "manifest"}
    assert report["manifest"] == report["report"] / "manifest.json"


def test_manifest_hashes_large_files_in_chunks(tmp_path):
    big = tmp_path / "big.bin"
    block = bytes(range(256)) * 4096                                         # 1 MiB
    with open(big, "wb") as f:
        for i in range(3):
            f.write(block)
        f.write(b"tail")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("a: 1\n")
    m = manifest(inputs={"big": big, "absent": tmp_path / "nope.csv"}, resolved_config=cfg, commit=None,
                 created="2025-01-01T00:00:00Z", engine_version="9")
    assert m["inputs"]["big"] == {"path": str(big), "sha256": _sha(big), "bytes": 3 * len(block) + 4}
    assert m["inputs"]["absent"]["sha256"] is None and m["inputs"]["absent"]["missing"] is True
    assert m["outputs"] == {} and m["engine"]["commit"] is None


def test_module_imports_no_heavy_library(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("a: 1\n")
    code = ("import sys, mia_engine.report_files as r\n"
            f"r.manifest(inputs={{}}, resolved_config={str(cfg)!r}, commit=None, created='x', engine_version='0')\n"
            "r.render_html(r.report_document({}, model_card={}, created='x'), {})\n"
            "print(sorted(m for m in ('numpy', 'pandas', 'sklearn', 'matplotlib', 'scipy', 'mlflow') "
            "if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# report.html, as text


def test_html_is_self_contained_and_in_order(report, run_dir):
    page = report["html"].read_text()
    tags = _tags(page)
    for tag, attrs in tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            if value is not None:
                assert not value.startswith("//") and "://" not in value, (tag, value[:80])
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
    assert not re.search(r"https?://", page), "a URL in the page"
    assert "@import" not in page and "url(" not in page and "@font-face" not in page
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == len(_images(run_dir)) >= 8
    assert all(a["src"].startswith("data:image/png;base64,") and a.get("alt") for a in imgs)
    assert {a["alt"] for a in imgs} == set(_images(run_dir))
    for a in imgs:                                          # each image whole, byte for byte
        assert base64.b64decode(a["src"].split(",", 1)[1]) == _images(run_dir)[a["alt"]].read_bytes()
    ids = [a["id"] for _, a in tags if a.get("id") in SECTION_ORDER]
    assert ids == SECTION_ORDER
    verdict = re.search(r"<[^>]+id=\"verdict\"[^>]*>([^<]*)<", page)
    assert verdict and verdict.group(1) == "DO NOT RELEASE"
    # Failing reasons worst first, passed ones after under their own heading.
    at = {k: page.index(v) for k, v in {"attack": "LiRA identifies", "embedded": "keeps 194 training rows",
                                        "passed": "What was checked and passed", "audit": "enough records"}.items()}
    assert at["attack"] < at["embedded"] < at["passed"] < at["audit"] < page.index('id="model"')
    assert "&lt;1%&gt; of non-members are wrongly accused &amp; flagged" in page     # escaped
    assert "SMALL: fewer than 10" in page and 'class="small-slice"' in page
    assert "former_prime_minister" in page and "typical_responder" in page
    assert 'class="ub"' not in page                                          # no upper-bound attack ran


def test_html_escapes_every_text(summary):
    s = copy.deepcopy(summary)
    s["verdict"]["reasons"][0]["text"] = "<script>alert('x')</script>"
    s["verdict"]["text"] = "DO <b>NOT</b> RELEASE"
    s["subgroups"]["slices"][0]["value"] = "<img src=x onerror=alert(1)>"
    card = dict(MODEL_CARD, label="SVC<i>", hyperparameters={"<k>": "\"v\""})
    page = render_html(report_document(s, model_card=card, created="t"), {})
    assert "<script" not in page and "<b>NOT" not in page and "<i>" not in page and "<k>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert [t for t, _ in _tags(page) if t == "img"] == []


def test_missing_sections_render(summary):
    page = render_html(report_document({}, model_card={}, created="t"), {})
    assert 'id="verdict"' in page and "NO VERDICT" in page
    for sid in SECTION_ORDER:
        assert f'id="{sid}"' in page
    s = copy.deepcopy(summary)
    for key in ("audit", "game", "subgroups", "checks", "target_record", "data"):
        s.pop(key)
    s["verdict"] = {"outcome": "no_evidence", "text": "NO EVIDENCE OF DISCLOSURE RISK FOUND", "risk": "default",
                    "reasons": [dict(VERDICT["reasons"][0])]}
    doc = report_document(s, model_card=MODEL_CARD, created="t")
    assert doc["individuals"] == {"target_record": None, "game": None}
    page = render_html(doc, {})
    assert "NO EVIDENCE OF DISCLOSURE RISK FOUND" in page and "What was checked and passed" in page
    assert "No subgroup analysis" in page and "no checks" in page and "No named individual" in page
    assert f"<td>{summary['attack']['n_members']}</td>" in page.split('id="audit"')[1]   # from the attack
    assert "lira" in page.split('id="attacks"')[1]


def test_missing_image_is_left_out(run_dir, summary, tmp_path, caplog):
    roc = run_dir / "plots" / "attack_roc.png"
    not_png = tmp_path / "fake.png"
    not_png.write_text("not an image")
    images = {"ROC curves": roc, "gone": tmp_path / "gone.png", "fake": not_png}
    with caplog.at_level(logging.WARNING, logger="mia_engine"):
        page = render_html(report_document(summary, model_card=MODEL_CARD, created="t"), images)
    imgs = [a for t, a in _tags(page) if t == "img"]
    assert [a["alt"] for a in imgs] == ["ROC curves"]
    assert 'alt="gone"' not in page and 'alt="fake"' not in page
    assert "gone.png" in caplog.text and "not a PNG" in caplog.text


# ---------------------------------------------------------------------------------------------
# report.html in a real browser; the PDF


PROBE = """<script>
window.addEventListener("load", function () {
  var v = document.getElementById("verdict");
  var out = {
    verdict: v ? v.textContent : null,
    images: Array.prototype.map.call(document.images, function (i) {
      return {alt: i.alt, complete: i.complete, width: i.naturalWidth}; }),
    resources: performance.getEntriesByType("resource").map(function (e) { return e.name; })
  };
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _probe(chromium: str, page: str, tmp_path: Path) -> dict:
    """Load ``page`` (with the test-only probe script added) in headless Chromium and return what
    the probe saw: the #verdict text, each image's load state and every resource fetched."""
    assert "</body>" in page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    args = chromium_args(chromium, str(profile)) + ["--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    done = run_chromium(args, 60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout.decode("utf-8"), re.S)
    assert m, "the probe did not run"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def test_report_in_chromium(report, run_dir, chromium, tmp_path):
    seen = _probe(chromium, report["html"].read_text(encoding="utf-8"), tmp_path)
    assert seen["verdict"] == VERDICT["text"]
    assert len(seen["images"]) == len(_images(run_dir))
    bad = [i for i in seen["images"] if not (i["complete"] and i["width"] > 0)]
    assert bad == []
    assert seen["resources"] == []


def test_probe_sees_a_broken_image_and_a_request(chromium, tmp_path):
    page = ("<!DOCTYPE html><html><body><p id=\"verdict\">NEEDS REVIEW</p>"
            "<img alt=\"remote\" src=\"http://example.invalid/plot.png\"></body></html>")
    seen = _probe(chromium, page, tmp_path)
    assert seen["verdict"] == "NEEDS REVIEW"
    assert seen["images"] == [{"alt": "remote", "complete": True, "width": 0}]
    assert seen["resources"] == ["http://example.invalid/plot.png"]


def test_pdf(run_dir, summary, chromium, tmp_path):
    out = write_report(tmp_path, summary, model_card=MODEL_CARD, images=_images(run_dir), inputs={},
                       resolved_config=run_dir / "resolved_config.yaml", commit=None, engine_version=__version__,
                       pdf=True, chromium=chromium)
    assert out["pdf"] == tmp_path / "report" / "report.pdf"
    data = out["pdf"].read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 50_000                 # with the plots
    m = json.loads(out["manifest"].read_text())
    assert m["outputs"]["report.pdf"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_pdf_without_chromium_is_skipped_with_a_warning(run_dir, summary, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mia_engine"):
        out = write_report(tmp_path, summary, model_card=MODEL_CARD, images={}, inputs={},
                           resolved_config=run_dir / "resolved_config.yaml", commit=None,
                           engine_version=__version__, pdf=True, chromium=str(tmp_path / "no-such-chromium"))
    assert "pdf" not in out and not (tmp_path / "report" / "report.pdf").exists()
    assert out["html"].is_file() and out["json"].is_file() and out["manifest"].is_file()
    assert "report.pdf not written" in caplog.text


def test_print_pdf_failure_names_the_binary(tmp_path):
    page = tmp_path / "r.html"
    page.write_text("<html><body>x</body></html>")
    with pytest.raises(RuntimeError, match=r"^/bin/false exited with code 1 printing .*r\.html to PDF") as e:
        print_pdf(page, tmp_path / "r.pdf", "/bin/false")
    assert "\n" not in str(e.value)
    with pytest.raises(RuntimeError, match=r"^/bin/true wrote no PDF"):
        print_pdf(page, tmp_path / "r.pdf", "/bin/true")


def test_find_chromium(tmp_path, monkeypatch):
    fake = tmp_path / "google-chrome"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() == str(fake)
    assert find_chromium(str(fake)) == str(fake)
    assert find_chromium(str(tmp_path / "missing")) is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_chromium() is None


def test_the_runs_own_report_in_chromium(run_dir, chromium, tmp_path):
    """End to end: the report run.py wrote, with the engine's own verdict, in a real browser."""
    own = json.loads((run_dir / "summary.json").read_text())
    page = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    seen = _probe(chromium, page, tmp_path)
    assert seen["verdict"] == own["verdict"]["text"] == "DO NOT RELEASE"
    n_plots = len(list((run_dir / "plots").glob("*.png")))
    assert len(seen["images"]) == n_plots > 3
    assert [i for i in seen["images"] if not (i["complete"] and i["width"] > 0)] == []
    assert seen["resources"] == []
    doc = json.loads((run_dir / "report" / "report.json").read_text())
    assert doc["schema"] == "mia-engine/report/1" and doc["verdict"] == own["verdict"]
    assert doc["model"]["family"] == "SVC" and doc["model"]["n_train"] == 200


def test_pdf_settings_that_cannot_work_are_one_line_errors(tmp_path):
    from conftest import mlflow_client

    # A browser named but missing: stopped before anything runs.
    proc = run_cli(["tracking=none", "report.pdf=true", "report.chromium=/no/such/chromium"], cwd=tmp_path)
    assert proc.returncode == 2 and not list(tmp_path.rglob("summary.json"))
    assert proc.stderr.strip().splitlines()[-1].startswith("error: report.chromium: no runnable browser")
    # A browser that fails to print: the other report files stay, the MLflow run closes FAILED.
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = run_cli([f"tracking.uri={uri}", "report.pdf=true", "report.chromium=/bin/false",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: report.pdf: /bin/false exited with code 1")
    assert {p.name for p in (tmp_path / "run" / "report").iterdir()} == {"report.html", "report.json",
                                                                         "manifest.json"}
    client = mlflow_client(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mia-engine").experiment_id])
    assert run.info.status == "FAILED"
