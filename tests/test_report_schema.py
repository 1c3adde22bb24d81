"""The JSON Schemas of report/report.json and report/manifest.json (mia_engine/schemas/*.schema.json):
shipped with the package, valid draft 2020-12, versioned like REPORT_SCHEMA / MANIFEST_SCHEMA, and
accepting what real runs write while rejecting documents that break the format."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from mia_engine import __version__
from mia_engine.report_files import LIBRARIES, MANIFEST_SCHEMA, REPORT_SCHEMA, manifest

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS = {"report": ("report-1.schema.json", REPORT_SCHEMA),
           "manifest": ("manifest-1.schema.json", MANIFEST_SCHEMA)}

COMMON = ["tracking=none", "reference.n_models=8", "reference.cache=false"]
# Three small runs, each covering different branches of the schemas.
RUNS = {
    # The tutorial population, every attack: upper bound, embedded rows, subgroups, a named record.
    "tutorial": ["attack=suite", *COMMON],
    # A bundled table, a forest, the individual game: table data card, tree leaves, rules,
    # game records and ranking, an input digested where it was read.
    "table_game": ["data=breast_cancer", "model=random_forest", "model.n_estimators=20",
                   "attack=[shadow_lr,lira_population]", "evaluation=individual_game", "evaluation.n_trials=8",
                   "evaluation.records={}", *COMMON],
    # No audit: the nulls (audit, headline, subgroups) and an empty attacks map.
    "no_audit": ["audit=none", "attack=[shadow_lr]", *COMMON],
}


def _schema_text(name: str) -> str:
    return (resources.files("mia_engine") / "schemas" / SCHEMAS[name][0]).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def jsonschema():
    return pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    return {name: json.loads(_schema_text(name)) for name in SCHEMAS}


@pytest.fixture(scope="module")
def validators(jsonschema, schemas):
    return {name: jsonschema.Draft202012Validator(s) for name, s in schemas.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """The three runs, side by side: run name -> {"report": report.json, "manifest": manifest.json}."""
    base = tmp_path_factory.mktemp("schema_runs")

    def one(name: str):
        out = base / name
        return name, out, run_cli([*RUNS[name], f"hydra.run.dir={out}"], cwd=REPO, timeout=240)

    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        done = list(pool.map(one, RUNS))
    docs = {}
    for name, out, proc in done:
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
        docs[name] = {kind: json.loads((out / "report" / f"{kind}.json").read_text()) for kind in SCHEMAS}
    return docs


def _errors(validator, doc) -> list:
    return sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))


def _explain(errors) -> str:
    return "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


# ---------------------------------------------------------------------------------------------
# The schema files themselves


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_file_ships_with_the_package_and_is_valid_draft_2020_12(jsonschema, name):
    schema = json.loads(_schema_text(name))
    assert schema["$schema"] == DRAFT
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_id_and_version_match_the_code(schemas, name):
    schema, (filename, tag) = schemas[name], SCHEMAS[name]
    kind, version = tag.split("/")[1:]
    assert tag == f"mia-engine/{kind}/{version}" and kind == name and version.isdigit()
    assert schema["$id"] == f"https://mia-engine.invalid/schemas/{name}-{version}.schema.json"
    assert filename == f"{name}-{version}.schema.json"
    assert schema["properties"]["schema"]["const"] == tag
    assert "schema" in schema["required"]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_top_level_property_is_required_and_described(schemas, name):
    schema = schemas[name]
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(props)
    undescribed = [k for k, v in props.items() if not str(v.get("description", "")).strip()]
    assert undescribed == []


def test_manifest_schema_lists_exactly_the_recorded_libraries(schemas):
    libs = schemas["manifest"]["properties"]["libraries"]
    assert libs["required"] == list(LIBRARIES) and sorted(libs["properties"]) == sorted(LIBRARIES)
    assert libs["additionalProperties"] is False


def test_verdict_enums_match_mia_engine_verdict(schemas):
    from mia_engine import verdict as v

    defs = schemas["report"]["$defs"]
    assert set(defs["verdict"]["properties"]["outcome"]["enum"]) == {v.DO_NOT_RELEASE, v.NEEDS_REVIEW, v.NO_EVIDENCE}
    assert set(defs["verdict"]["properties"]["text"]["enum"]) == set(v.OUTCOME_TEXT.values())
    assert set(defs["reason"]["properties"]["outcome"]["enum"]) == {v.DO_NOT_RELEASE, v.NEEDS_REVIEW, v.NOTE, v.PASS}


# ---------------------------------------------------------------------------------------------
# Real runs validate


@pytest.mark.e2e
@pytest.mark.parametrize("kind", sorted(SCHEMAS))
@pytest.mark.parametrize("run", sorted(RUNS))
def test_documents_of_real_runs_validate(validators, runs, run, kind):
    doc = runs[run][kind]
    assert doc["schema"] == SCHEMAS[kind][1]
    errors = _errors(validators[kind], doc)
    assert not errors, _explain(errors)


@pytest.mark.e2e
def test_the_runs_exercise_the_schemas_branches(runs):
    """Guards the validation above: each branch of the schema was met with real content."""
    tut, tab, none = (runs[n]["report"] for n in ("tutorial", "table_game", "no_audit"))
    assert tut["upper_bound"] is not None and tut["subgroups"]["slices"] and tut["checks"]["embedded_rows"]["stores_rows"]
    assert tut["data"]["kind"] == "population" and tut["individuals"]["target_record"]["attacks"]
    assert {r["outcome"] for r in tut["verdict"]["reasons"]} >= {"do_not_release"}
    assert tab["data"]["kind"] == "table" and tab["checks"]["tree_leaves"] and tab["checks"]["rules"]
    assert tab["game"]["records"] and tab["individuals"]["game"]["ranking"]
    assert any("attacker_holds" in r for r in tab["verdict"]["reasons"])
    assert {r["outcome"] for r in tab["verdict"]["reasons"]} >= {"needs_review", "note", "pass"}
    assert none["audit"] is None and none["attacks"] == {} and none["headline"] is None and none["subgroups"] is None
    assert all(r["measured"] is None for r in none["verdict"]["reasons"] if r["check"] == "audit")
    assert "source" in runs["table_game"]["manifest"]["inputs"]["data:table"]


def test_manifest_of_files_directories_and_missing_paths_validates(validators, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "sub" / "b.csv").write_text("x,y\n3,4\n")
    model = tmp_path / "model.skops"
    model.write_bytes(b"\x00model")
    cfg = tmp_path / "resolved_config.yaml"
    cfg.write_text("seed: 1\n")
    html, doc = tmp_path / "report.html", tmp_path / "report.json"
    html.write_text("<!DOCTYPE html>")
    doc.write_text("{}")
    m = json.loads(json.dumps(manifest(
        inputs={"data": data, "model": model, "gone": tmp_path / "nope.csv", "none": None,
                "data:table": {"source": "sklearn.datasets.load_breast_cancer", "sha256": "ab" * 32}},
        resolved_config=cfg, commit=None, created="2025-01-01T00:00:00Z", engine_version=__version__,
        outputs={"report.html": html, "report.json": doc})))
    assert m["inputs"]["data"]["kind"] == "directory" and m["inputs"]["gone"]["missing"] is True
    errors = _errors(validators["manifest"], m)
    assert not errors, _explain(errors)


# ---------------------------------------------------------------------------------------------
# Broken documents do not


def _drop_text(doc):
    del doc["verdict"]["reasons"][0]["text"]


def _set(path, value):
    def change(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _first_attack(change):
    def apply(doc):
        change(next(iter(doc["attacks"].values())))
    return apply


REPORT_BREAKS = {
    "verdict outcome maybe": (_set(["verdict", "outcome"], "maybe"), ["verdict"]),
    "reason without text": (_drop_text, ["verdict"]),
    "wrong schema string": (_set(["schema"], "mia-engine/report/2"), ["schema"]),
    "reason outcome no_evidence": (_set(["verdict", "reasons", 0, "outcome"], "no_evidence"), ["verdict"]),
    "verdict text of another outcome": (_set(["verdict", "text"], "NO EVIDENCE OF DISCLOSURE RISK FOUND"), ["verdict"]),
    "unknown check": (_set(["verdict", "reasons", 0, "check"], "vibes"), ["verdict"]),
    "extra key in the verdict": (_set(["verdict", "score"], 1), ["verdict"]),
    "auc as text": (_first_attack(_set(["auc"], "0.9")), ["attacks"]),
    "created not UTC": (_set(["created"], "2025-01-01 10:00"), ["created"]),
    "missing top-level key": (lambda d: d.pop("individuals"), []),
}

MANIFEST_BREAKS = {
    "without libraries": (lambda d: d.pop("libraries"), []),
    "wrong schema string": (_set(["schema"], "mia-engine/report/1"), ["schema"]),
    "library not recorded": (lambda d: d["libraries"].pop("numpy"), ["libraries"]),
    "extra engine key": (_set(["engine", "build"], "x"), ["engine"]),
    "digest not hex": (_set(["resolved_config", "sha256"], "not-a-digest"), ["resolved_config", "sha256"]),
    "no report.json listed": (lambda d: d["outputs"].pop("report.json"), ["outputs"]),
}


def _assert_rejected(validator, doc, change, where):
    broken = copy.deepcopy(doc)
    change(broken)
    errors = _errors(validator, broken)
    assert errors, "the broken document validated"
    assert any(list(e.absolute_path)[:len(where)] == where for e in errors), _explain(errors)


@pytest.mark.e2e
@pytest.mark.parametrize("kind, run, case", [("report", "table_game", c) for c in REPORT_BREAKS]
                         + [("manifest", "tutorial", c) for c in MANIFEST_BREAKS])
def test_broken_document_is_rejected(validators, runs, kind, run, case):
    doc = runs[run][kind]
    assert not _errors(validators[kind], doc)
    change, where = (REPORT_BREAKS if kind == "report" else MANIFEST_BREAKS)[case]
    _assert_rejected(validators[kind], doc, change, where)


def test_the_schema_string_is_checked_on_a_minimal_document(validators):
    """Without any run: a schema string of another version fails on that key alone."""
    report_doc = {"schema": "mia-engine/report/0"}
    assert any(list(e.absolute_path) == ["schema"] for e in validators["report"].iter_errors(report_doc))
    manifest_doc = {"schema": MANIFEST_SCHEMA.replace("/1", "/9")}
    assert any(list(e.absolute_path) == ["schema"] for e in validators["manifest"].iter_errors(manifest_doc))
