"""End to end on a real table: what reaches MLflow (a description, never a row), what stays
local, the inferred schema pasted back, bad input before any run exists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import artifact_paths, mlflow_client, run_cli

pytestmark = pytest.mark.e2e


_client = mlflow_client
_artifacts = artifact_paths


def _args(d: Path):
    return ["data=table", f"data.train_path={d / 'train.csv'}", f"data.test_path={d / 'test.csv'}",
            f"data.population_path={d / 'population.csv'}", "data.label=readmitted", "data.id_column=patient_id",
            "data.missing=impute", "model=logistic_regression", "data.target_record.id=P0005",
            "data.target_record.name=p5"]


def test_table_run_keeps_rows_local_and_logs_what_was_audited(tmp_path, patients_csv):
    proc = run_cli(_args(patients_csv), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "p5" in proc.stdout and "[No]" in proc.stdout and "[Yes]" in proc.stdout
    out = next(p.parent for p in (tmp_path / "outputs").glob("**/summary.json"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == ["No", "Yes"] and summary["data"]["layout"] == "files"

    client = _client(summary["mlflow"]["tracking_uri"])
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    arts = _artifacts(client, run.info.run_id)
    # No rows and no fitted model leave the run directory by default ...
    assert not any(a.startswith(("data/", "models/", "records/")) for a in arts), arts
    assert "config/data_schema.yaml" not in arts      # categories can name people: local too
    assert not (out / "data").exists() and not (out / "models").exists()
    # ... the per-record scores stay local ...
    scores = pd.read_parquet(out / "records" / "scores.parquet")
    assert len(scores) == 300 and scores["member"].sum() == 200 and "shadow_lr" in scores
    assert "P0005" in set(scores["id"]) and set(scores["label"]) == {"No", "Yes"}
    # ... and MLflow knows what was audited: names, digests, contexts, schema, row counts.
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train_train", "train_test", "train_population"}
    ctx = {n: [t.value for t in i.tags if t.key == "mlflow.data.context"][0] for n, i in inputs.items()}
    assert ctx == {"train_train": "train", "train_test": "test", "train_population": "population"}
    import hashlib

    digest = hashlib.sha256((patients_csv / "test.csv").read_bytes()).hexdigest()
    profile = json.loads(inputs["train_test"].dataset.profile)
    assert profile["sha256"] == digest and profile["num_rows"] == 100
    schema = json.loads(inputs["train_train"].dataset.schema)["mlflow_colspec"]
    assert {c["name"] for c in schema} == {"age", "smoker", "region", "bmi", "readmitted"}
    # Not a single row value: no patient id anywhere in the run's inputs, params or tags.
    text = json.dumps([i.dataset.to_dictionary() for i in run.inputs.dataset_inputs]) + json.dumps(
        run.data.params) + json.dumps(run.data.tags)
    assert "P0007" not in text and "P0123" not in text
    # The named record's id is a real person's: not in params, tags, the run name or the logged
    # config (its name, p5, is; the local resolved_config.yaml keeps everything).
    logged = Path(client.download_artifacts(run.info.run_id, "config/resolved_config.yaml", str(tmp_path)))
    assert "P0005" not in text + run.info.run_name + logged.read_text()
    assert run.data.params["data.target_record.id"] == "<redacted: tracking.log_datasets=false>"
    assert run.data.params["data.target_record.name"] == "p5" and "P0005" in (out / "resolved_config.yaml").read_text()
    assert not any(a.startswith("hydra/") for a in arts)
    # The release record: logged, every data file hashed in the manifest, no row in the report.
    assert {"report/report.html", "report/report.json", "report/manifest.json"} <= arts
    manifest = json.loads((out / "report" / "manifest.json").read_text())
    assert manifest["inputs"]["data:test"]["sha256"] == digest
    assert set(manifest["inputs"]) == {"data:train", "data:test", "data:population"}
    page = (out / "report" / "report.html").read_text() + (out / "report" / "report.json").read_text()
    assert "P0007" not in page and "P0123" not in page
    assert run.data.tags["mia.verdict"] == summary["verdict"]["outcome"]

    # The inferred schema, pasted back, pins the same features.
    pinned = yaml.safe_load((out / "data_schema.yaml").read_text())["features"]
    assert pinned["region"] == {"kind": "categorical", "categories": ["east", "north", "south", "west"]}
    assert pinned["smoker"]["kind"] == "binary" and pinned["age"] == {"kind": "numeric"}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump({"features": pinned}))
    again = run_cli([*_args(patients_csv), "tracking=none", "hydra.run.dir=pinned",
                     f"+data.features={json.dumps(pinned).replace(chr(34), '')}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    s2 = json.loads((tmp_path / "pinned" / "summary.json").read_text())
    assert s2["attack"]["auc"] == summary["attack"]["auc"]


def test_opting_in_logs_rows_models_and_scores(tmp_path, patients_csv):
    proc = run_cli([*_args(patients_csv), "tracking.log_datasets=true", "tracking.log_models=true",
                    "tracking.log_scores=true"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = next(p.parent for p in (tmp_path / "outputs").glob("**/summary.json"))
    summary = json.loads((out / "summary.json").read_text())
    client = _client(summary["mlflow"]["tracking_uri"])
    arts = _artifacts(client, summary["mlflow"]["run_id"])
    assert {"data/target_train.csv", "models/target_model.joblib", "records/scores.parquet",
            "config/data_schema.yaml"} <= arts
    rows = (out / "data" / "target_train.csv").read_text().splitlines()
    assert rows[0] == "id,age,smoker,region,bmi,label"
    assert rows[-1].startswith("P0005,") and len(rows) == 201     # header, 199 train rows, P0005 last
    # Logging the datasets logs the named record's id with the config, too.
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.data.params["data.target_record.id"] == "P0005" and "hydra/config.yaml" in arts


@pytest.mark.parametrize("args,words", [
    (["data=table", "data.path=missing.csv", "data.label=y"], "error: data.path: "),
    (["data=table", "data.path=PATIENTS", "data.label=outcome"], "error: data.label: no column 'outcome'"),
    (["data=table", "data.path=PATIENTS", "data.label=readmitted"], "error: data.missing: column 'region' has"),
    (["data=table", "data.train_path=TRAIN", "data.test_path=TEST", "data.label=readmitted",
      "data.missing=impute", "model=saved", "model.path=nowhere.skops"], "error: model.path: "),
])
def test_bad_table_input_exits_2_before_any_run(tmp_path, patients_csv, args, words):
    args = [a.replace("PATIENTS", str(patients_csv / "patients.csv")).replace("TRAIN", str(patients_csv / "train.csv"))
            .replace("TEST", str(patients_csv / "test.csv")) for a in args]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(words), proc.stderr
    # No MLflow run exists: the store was never even created.
    assert not (tmp_path / "mlflow.db").exists() or not _client(
        f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(["0", "1"])


def test_the_manifest_hashes_the_saved_model_audited(tmp_path, patients_csv, saved_forest):
    import hashlib

    proc = run_cli([*_args(patients_csv), "model=saved", f"model.path={saved_forest}", "tracking=none",
                    "hydra.run.dir=run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "report" / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["sha256"] == hashlib.sha256(Path(saved_forest).read_bytes()).hexdigest()
    doc = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert doc["model"]["saved"] == str(saved_forest) and doc["model"]["family"] == "RandomForestClassifier"
