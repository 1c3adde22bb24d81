"""Dataset descriptions reach MLflow's dataset tracking as metadata only, in-process and
through the forked helper; no row value ever does."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import textwrap

import pytest

from mia_engine.errors import TrackingError
from mia_engine.tracking import DIGEST_PREFIX, RunTracker, TrackingSession

SENTINEL = "ROW-VALUE-SENTINEL-7f3a"  # only ever in the made-up rows, never passed to tracking

# Made-up rows; only their digest, count, kinds and class counts are described.
TRAIN_ROWS = [{"age": 61.0, "smoker": 1, "region": SENTINEL, "label": "1"},
              {"age": 47.0, "smoker": 0, "region": "north", "label": "0"},
              {"age": 55.0, "smoker": 1, "region": "south", "label": "1"}]
TEST_ROWS = [{"age": 38.0, "smoker": 0, "region": SENTINEL, "label": "0"},
             {"age": 70.0, "smoker": 1, "region": "east", "label": "1"}]
SCHEMA = {"age": "numeric", "smoker": "binary", "region": "categorical", "label": "label"}
COLUMN_TYPES = {"age": "double", "smoker": "long", "region": "string", "label": "string"}


def _describe(name: str, rows: list[dict], context: str, source: str) -> dict:
    content = json.dumps(rows, sort_keys=True).encode()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    return {"name": name, "source": source, "digest": hashlib.sha256(content).hexdigest(), "context": context,
            "n_rows": len(rows), "schema": dict(SCHEMA), "profile": {"class_counts": counts}}


def _tracking(uri: str, background: bool = False) -> dict:
    return {"enabled": True, "uri": uri, "experiment_name": "datasets-test", "run_name": None,
            "http_request_timeout": 5, "http_request_max_retries": 0, "http_request_backoff_factor": 1,
            "resume": False, "mlflow_log_level": "WARNING", "background": background, "log_datasets": True,
            "log_models": True}


def _datasets(tmp_path) -> list[dict]:
    return [_describe("patients_train", TRAIN_ROWS, "train", str(tmp_path / "patients_train.csv")),
            _describe("patients_test", TEST_ROWS, "test", "sklearn.datasets.load_breast_cancer")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds): its directory and URI.

    Every run describes the same two datasets with the same sources: MLflow keeps one dataset
    per (experiment, name, digest), so its source and profile are the first logged ones.
    """
    root = tmp_path_factory.mktemp("store")
    return root, f"sqlite:///{root / 'mlflow.db'}"


def _check_run(uri: str, run_id: str, expected: list[dict]) -> None:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    inputs = run.inputs.dataset_inputs
    by_name = {di.dataset.name: di for di in inputs}
    assert sorted(by_name) == sorted(d["name"] for d in expected)
    for d in expected:
        di = by_name[d["name"]]
        ds = di.dataset
        assert ds.digest == d["digest"][:DIGEST_PREFIX]
        assert {t.key: t.value for t in di.tags} == {"mlflow.data.context": d["context"]}
        columns = json.loads(ds.schema)["mlflow_colspec"]
        assert {c["name"]: c["type"] for c in columns} == COLUMN_TYPES
        profile = json.loads(ds.profile)
        assert profile["num_rows"] == d["n_rows"]
        assert profile["sha256"] == d["digest"]
        assert profile["class_counts"] == d["profile"]["class_counts"]
    train, test = by_name["patients_train"].dataset, by_name["patients_test"].dataset
    assert (train.source_type, json.loads(train.source)) == ("local", {"uri": expected[0]["source"]})
    assert (test.source_type, json.loads(test.source)) == (
        "code", {"tags": {"mlflow.source.name": "sklearn.datasets.load_breast_cancer"}})
    # Metadata only: no row value anywhere in the run's inputs (nor its params or tags).
    dumped = json.dumps([di.to_dictionary() for di in inputs]) + json.dumps(run.data.to_dictionary())
    assert SENTINEL not in dumped and "north" not in dumped


def test_run_tracker_logs_dataset_metadata_without_rows(store):
    root, uri = store
    datasets = _datasets(root)
    t = RunTracker.start(_tracking(uri), root, "datasets")
    t.log_datasets(datasets)
    t.log_datasets(None)  # nothing to log: no call
    t.finish()
    _check_run(uri, t.run_id, datasets)


def test_malformed_descriptions_are_one_line_tracking_errors(store):
    root, uri = store
    t = RunTracker.start(_tracking(uri), root, "bad")
    good = _datasets(root)[0]
    cases = [
        ({**good, "rows": TRAIN_ROWS}, "unknown keys ['rows']"),
        ({k: v for k, v in good.items() if k != "digest"}, "missing keys ['digest']"),
        ({**good, "digest": "abc"}, "SHA-256 hex digest"),
        ({**good, "n_rows": -1}, "n_rows must be an integer >= 0"),
        ({**good, "schema": {"age": "float"}}, "schema kinds must be one of"),
        ({**good, "profile": {"num_rows": 3}}, "reserved"),
        ({**good, "profile": {"values": ["x" * 100] * 1000}}, "a summary, never the data"),
    ]
    for bad, message in cases:
        with pytest.raises(TrackingError) as e:
            t.log_datasets([bad])
        assert message in str(e.value) and "\n" not in str(e.value)
        assert SENTINEL not in str(e.value)
    # The same name and digest twice would keep only one context in MLflow: refused.
    with pytest.raises(TrackingError, match="give each context its own name"):
        t.log_datasets([good, {**good, "context": "population"}])
    t.finish()


def test_dataset_sources_by_kind(tmp_path):
    from mia_engine.tracking import _dataset_source

    assert _dataset_source("https://example.org/t.csv")._get_source_type() == "http"
    assert _dataset_source("s3://bucket/t.parquet")._get_source_type() == "s3"
    assert _dataset_source(str(tmp_path / "t.csv"))._get_source_type() == "local"
    assert _dataset_source("t.csv")._get_source_type() == "local"
    assert _dataset_source("sklearn.datasets.load_breast_cancer")._get_source_type() == "code"


HELPER_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from mia_engine.tracking import TrackingSession

    tracking, launch_dir, datasets = json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    assert "mlflow" not in sys.modules
    session = TrackingSession(tracking, launch_dir, "background", {"mia.test": "datasets"}, None)
    assert session.background, "expected the forked helper"
    session.open()
    session.wait_open()
    session.log_and_finish({"p": 1}, {"m": 0.5}, [], datasets)
    assert "mlflow" not in sys.modules  # everything happened in the helper
    print(json.dumps({"run_id": session.run_id}))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the background helper forks")
def test_background_helper_carries_datasets_across_the_pipe(store):
    # A fresh interpreter: the helper forks only when MLflow is not yet imported (this
    # pytest process has imported it above).
    import subprocess

    root, uri = store
    datasets = _datasets(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, "-c", HELPER_SCRIPT, json.dumps(_tracking(uri, background=True)),
                           str(root), json.dumps(datasets)], capture_output=True, text=True, timeout=120,
                          env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout.strip().splitlines()[-1])["run_id"]
    _check_run(uri, run_id, datasets)


def test_in_process_session_logs_datasets(store):
    root, uri = store
    datasets = _datasets(root)
    session = TrackingSession(_tracking(uri, background=False), root, "in-process", {}, None)
    assert not session.background
    session.open()
    session.wait_open()
    session.log_and_finish({"p": 1}, {"m": 0.5}, [], datasets)
    _check_run(uri, session.run_id, datasets)
    # no MLflow helper process was started (other tests may leave joblib's workers alive)
    assert not [p for p in multiprocessing.active_children() if p.name == "mia-engine-mlflow"]
