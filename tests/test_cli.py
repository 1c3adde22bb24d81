"""End to end: `python run.py ...` in a subprocess inside tmp_path, read back from MLflow."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import artifact_paths, mlflow_client, run_cli

pytestmark = pytest.mark.e2e


_client = mlflow_client
_artifacts = artifact_paths


def _only_output_dir(root: Path) -> Path:
    dirs = [p.parent for p in root.glob("**/summary.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_single_run_on_the_default_embedded_store(tmp_path):
    proc = run_cli([], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "predicted MEMBER" in proc.stdout and "0.93838505" in proc.stdout
    out = _only_output_dir(tmp_path / "outputs")
    summary = json.loads((out / "summary.json").read_text())
    uri = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert summary["mlflow"]["tracking_uri"] == uri
    assert summary["target_record"]["probabilities"] == pytest.approx([0.06161495, 0.93838505], abs=1e-6)
    assert round(summary["target_record"]["membership_probability"], 2) == 0.80

    client = _client(uri)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "defaults"
    assert run.info.experiment_id == summary["mlflow"]["experiment_id"]
    p = run.data.params
    assert p["model.gamma"] == "3.0" and p["data.seed"] == "12345" and p["shadow.split_seed"] == "1234"
    assert p["data.classes.responders.features.bmi_group.weights"] == "[0.5, 5, 7, 5]"
    m = run.data.metrics
    assert m["target_record/membership_probability"] == pytest.approx(summary["target_record"]["membership_probability"])
    assert m["target_record/probability_label_1"] == pytest.approx(0.93838505, abs=1e-6)
    assert m["shadow/train_mean_confidence"] == pytest.approx(summary["shadow"]["train_mean_confidence"])
    assert m["attack/auc"] == pytest.approx(summary["attack"]["auc"])
    assert m["attack/tpr_at_fpr_0.01"] == pytest.approx(summary["attack"]["tpr_at_fpr_0.01"])
    assert m["target/test_accuracy"] == pytest.approx(summary["target"]["test_accuracy"])
    assert m["target_record/predicted_member"] == 1.0
    assert run.data.tags["mia.population"] == "cancer_patients"
    arts = _artifacts(client, run.info.run_id)
    assert {"summary.json", "config/resolved_config.yaml", "hydra/config.yaml", "hydra/overrides.yaml",
            "plots/shadow_confidence_histogram.png", "plots/attack_roc.png", "data/target_train.csv",
            "data/shadow_train.csv", "data/shadow_test.csv", "data/audit_nonmembers.csv",
            "models/target_model.joblib", "models/shadow_model.joblib", "models/attack_shadow_lr_model.joblib",
            "plots/scores_shadow_lr.png", "report/report.html", "report/report.json", "report/manifest.json",
            "logs/run.log"} <= arts
    # The recommendation: in the summary, on the console and as a tag.
    assert summary["verdict"]["outcome"] == "do_not_release" == run.data.tags["mia.verdict"]
    assert "RECOMMENDATION" in proc.stdout and "DO NOT RELEASE (risk=default)" in proc.stdout
    manifest = json.loads((out / "report" / "manifest.json").read_text())
    import hashlib
    assert manifest["resolved_config"]["sha256"] == hashlib.sha256(
        (out / "resolved_config.yaml").read_bytes()).hexdigest()
    assert json.loads((out / "report" / "report.json").read_text())["verdict"] == summary["verdict"]
    # Artifacts of the embedded store live beside the database.
    assert (tmp_path / "mlruns").is_dir()
    # The job log, as logged, holds the console report.
    log = Path(client.download_artifacts(run.info.run_id, "logs/run.log", str(tmp_path))).read_text()
    assert "membership probability 0.80" in log
    # The target's training data as CSV: 200 rows, the MP last.
    rows = (out / "data" / "target_train.csv").read_text().splitlines()
    assert rows[0] == "diabetes,asthma,bmi_group,blood_pressure,smoker,age,label"
    assert len(rows) == 201 and rows[-1] == "1,1,3,2,1,62,1"


def test_two_job_multirun_nests_children_under_one_parent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    proc = run_cli(["-m", "model.gamma=0.1,3"], cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr
    client = _client(uri)
    exp = client.get_experiment_by_name("mia-engine")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("mia.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 2 and len(runs) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/n_jobs"] == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_gamma = {c.data.params["model.gamma"]: c for c in children}
    assert set(by_gamma) == {"0.1", "3.0"}
    assert all(c.info.status == "FINISHED" for c in children)
    assert round(by_gamma["3.0"].data.metrics["target_record/membership_probability"], 2) == 0.80
    assert round(by_gamma["0.1"].data.metrics["target_record/membership_probability"], 2) == 0.48
    assert by_gamma["0.1"].info.run_name == "model.gamma=0.1"
    assert by_gamma["0.1"].data.tags["mia.overrides"] == "model.gamma=0.1"
    sweep_dir = Path(parent.data.tags["mia.sweep_dir"])
    assert by_gamma["3.0"].data.tags["mia.sweep_dir"] == str(sweep_dir)
    assert json.loads((sweep_dir / "mlflow_parent_run.json").read_text())["run_id"] == parent.info.run_id
    assert "summary.json" in _artifacts(client, by_gamma["0.1"].info.run_id)


def test_failed_job_fails_the_parent_and_keeps_finished_children(tmp_path):
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    proc = run_cli(["-m", "data.classes.responders.features.age.mu=72,-1"], cwd=tmp_path,
                   env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: data.classes.responders.features.age.mu: the Poisson rate must be > 0, got -1.0")
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name("mia-engine").experiment_id])
    status = {r.data.tags.get("mia.role", "job"): r.info.status for r in runs}
    assert status == {"sweep": "FAILED", "job": "FINISHED"}


def test_unreachable_server_fails_fast_and_keeps_outputs(tmp_path):
    start = time.monotonic()
    proc = run_cli(["tracking.http_request_max_retries=0"], cwd=tmp_path,
                   env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    elapsed = time.monotonic() - start
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: tracking.uri: connecting failed at MLflow tracking URI http://127.0.0.1:9: "
                     "Connection refused"]
    assert elapsed < 60  # bounded retries: MLflow's defaults would stall for minutes
    out = _only_output_dir(tmp_path / "outputs")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mlflow"]["run_id"] is None and "Connection refused" in summary["mlflow"]["error"]
    assert round(summary["target_record"]["membership_probability"], 2) == 0.80
    assert (out / "plots" / "shadow_confidence_histogram.png").stat().st_size > 0
    assert (out / "plots" / "attack_roc.png").stat().st_size > 0


BAD_INPUT = [
    ("model.gamma=abc", "model.gamma"),
    ("model.gama=1", "model.gama"),
    ("data.classes.responders.features.diabetes.p=1.5", "data.classes.responders.features.diabetes.p"),
    ("data.classes.responders.features.bmi_group.weights=[-1,5,7,5]", "data.classes.responders.features.bmi_group.weights"),
    ("data.classes.responders.features.bmi_group.weights=[0,0,0,0]", "data.classes.responders.features.bmi_group.weights"),
    ("data.classes.responders.features.bmi_group.weights=[1,2]", "data.classes.responders.features.bmi_group.weights"),
    ("data.classes.responders.features.age.mu=0", "data.classes.responders.features.age.mu"),
    ("data.classes.responders.features.age.low=95", "data.classes.responders.features.age.low"),
    ("data.classes.responders.features.age={dist: poisson, mu: 3, low: 300, high: 400}",
     "data.classes.responders.features.age"),
    ("data.classes.responders.size=0", "data.classes.responders.size"),
    ("~data.classes.non_responders.features.age", "data.classes.non_responders.features"),
    ("data.classes.responders.features.age.dist=gamma", "data.classes.responders.features.age.dist"),
    ("~data.target_record.features.age", "data.target_record.features.age"),
    ("+data.target_record.features.height=180", "data.target_record.features.height"),
    ("data.target_record.features.bmi_group=9", "data.target_record.features.bmi_group"),
    ("shadow.test_size=0.995", "shadow.test_size"),
    ("model=no_such_model", "model/no_such_model"),
    ("attack=no_such_attack", "attack/no_such_attack"),
    ("attack.shadow_lr.kind=lirra", "attack.shadow_lr.kind"),
]


@pytest.mark.parametrize("override,key", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_key(tmp_path, override, key):
    proc = run_cli(["tracking=none", override], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and key in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("overrides,key", [
    (["attack=[lira,rmia]", "reference.n_models=3"], "reference.n_models"),
    (["attack=lira", "model.probability=false"], "model.probability"),
    # 2 + 2 shadow rows, offline: the pool allows 2 x 2 = 4 distinct stratified halves.
    (["attack=lira_population", "shadow.size_per_class=2", "shadow.stratify=true",
      "reference.n_models=6"], "reference.n_models"),
])
def test_attack_bad_input_is_one_line_naming_the_key(tmp_path, overrides, key):
    proc = run_cli(["tracking=none", *overrides], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), proc.stderr


def test_attack_suite_logs_every_attack_and_reuses_cached_reference_models(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["attack=suite", "reference.n_models=8", "attack.worst_case.n_repeats=1", f"tracking.uri={uri}"]
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = json.loads((_only_output_dir(tmp_path / "outputs") / "summary.json").read_text())
    names = ["shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline", "lira_population",
             "rmia_population", "worst_case"]
    assert list(first["attacks"]) == names and first["reference"]["from_cache"] is False
    assert first["attack"]["name"] in names and first["target_record"]["attack"] == first["attack"]["name"]
    # One set of reference models per pool: the candidates pool and the population rows only.
    pools = first["reference"]["pools"]
    cached = list((tmp_path / ".mia_cache" / "reference").glob("*.npz"))
    assert sorted(c.stem for c in cached) == sorted(p["cache_key"] for p in pools.values())
    assert first["reference"]["cache_key"] == pools["candidates"]["cache_key"]

    client = _client(uri)
    run = client.get_run(first["mlflow"]["run_id"])
    m = run.data.metrics
    for name in names:
        assert m[f"attacks/{name}/auc"] == pytest.approx(first["attacks"][name]["auc"])
        assert m[f"attacks/{name}/epsilon_lower_bound"] == pytest.approx(first["attacks"][name]["epsilon_lower_bound"])
        assert m[f"target_record/attacks/{name}/score"] == pytest.approx(first["target_record"]["attacks"][name]["score"])
    assert m["attacks/lira/reference_models"] == 8.0 and m["attack/auc"] == pytest.approx(first["attack"]["auc"])
    assert m["attacks/lira/tpr_at_fpr_0.001_resolved"] == 0.0
    arts = _artifacts(client, run.info.run_id, "plots")
    assert {"plots/attack_roc.png", *(f"plots/scores_{n}.png" for n in names)} <= arts
    assert run.data.tags["mia.attack"] == ",".join(names)

    # The same configuration again: the reference models come from the cache, numbers identical.
    shutil.rmtree(tmp_path / "outputs")
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((_only_output_dir(tmp_path / "outputs") / "summary.json").read_text())
    assert again["reference"]["from_cache"] is True
    assert all(p["from_cache"] for p in again["reference"]["pools"].values())
    assert again["attacks"] == first["attacks"] and again["target_record"] == first["target_record"]
    # Another target recipe: another key, trained afresh.
    shutil.rmtree(tmp_path / "outputs")
    proc = run_cli([*args, "model.gamma=2.5"], cwd=tmp_path)
    third = json.loads((_only_output_dir(tmp_path / "outputs") / "summary.json").read_text())
    assert third["reference"]["from_cache"] is False and third["reference"]["cache_key"] != first["reference"]["cache_key"]
    assert len(list((tmp_path / ".mia_cache" / "reference").glob("*.npz"))) == 4


def test_same_config_twice_same_summary_and_no_store_without_tracking(tmp_path):
    summaries = []
    for sub in ("a", "b"):
        d = tmp_path / sub
        d.mkdir()
        proc = run_cli(["tracking=none", "model.gamma=0.3", "data.seed=99"], cwd=d)
        assert proc.returncode == 0, proc.stderr
        summaries.append(json.loads((_only_output_dir(d / "outputs") / "summary.json").read_text()))
        assert not (d / "mlflow.db").exists() and not (d / "mlruns").exists()
    assert summaries[0] == summaries[1]
    assert summaries[0]["mlflow"] == {"run_id": None, "experiment_id": None, "tracking_uri": None}


def test_chdir_jobs_share_the_launch_directory_store(tmp_path):
    proc = run_cli(["-m", "hydra.job.chdir=true", "model.gamma=0.1,1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.relative_to(tmp_path) for p in tmp_path.glob("**/mlflow.db")] == [Path("mlflow.db")]
    client = _client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mia-engine").experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port (SQLite backend, proxied artifacts)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "server"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start (exit code {proc.poll()})")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_multirun_against_a_tracking_server(tmp_path, mlflow_server):
    import urllib.parse
    import urllib.request

    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(["-m", "tracking=server", f"tracking.uri={mlflow_server}", "model.gamma=0.1,3"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()  # all went to the server
    client = _client(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("mia-engine").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
    parent = next(r for r in runs if r.data.tags.get("mia.role") == "sweep")
    child = next(r for r in runs if r.data.params.get("model.gamma") == "3.0")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert round(child.data.metrics["target_record/membership_probability"], 2) == 0.80
    # The artifact over plain HTTP, through the server's artifact proxy.
    query = urllib.parse.urlencode({"path": "summary.json", "run_uuid": child.info.run_id})
    with urllib.request.urlopen(f"{mlflow_server}/get-artifact?{query}", timeout=30) as resp:
        summary = json.loads(resp.read())
    assert summary["mlflow"]["tracking_uri"] == mlflow_server and summary["mlflow"]["run_id"] == child.info.run_id
    jobs = Path(client.download_artifacts(parent.info.run_id, "sweep_summary/jobs.csv", str(tmp_path)))
    assert len(jobs.read_text().splitlines()) == 3


@pytest.mark.parametrize("background", ["true", "false"])
def test_failure_after_the_run_opened_closes_it_failed(tmp_path, background):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    # A parameter scikit-learn checks only when fitting (not in its parameter constraints).
    proc = run_cli([f"tracking.background={background}", "model=mlp", "model.hidden_layer_sizes=[0]"], cwd=tmp_path,
                   env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model: fitting MLPClassifier failed")
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name("mia-engine").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.parametrize("background", ["true", "false"])
def test_bad_config_opens_no_run(tmp_path, background):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = run_cli([f"tracking.background={background}", "data.classes.responders.features.smoker.p=2"],
                   cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2
    if (tmp_path / "store.db").exists():
        client = _client(uri)
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_mlflow_ui_renders_the_sweep(tmp_path, mlflow_server):
    import subprocess

    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(["-m", f"tracking.uri={mlflow_server}", "model.gamma=0.1,3"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    client = _client(mlflow_server)
    exp = client.get_experiment_by_name("mia-engine")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("mia.role") == "sweep")
    assert parent.info.run_name == "sweep model.gamma=0.1,3"

    def rendered(fragment: str, profile: str) -> str:
        out = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / profile}", "--window-size=1400,1000", "--virtual-time-budget=30000",
             "--dump-dom", f"{mlflow_server}/#/experiments/{exp.experiment_id}{fragment}"],
            capture_output=True, text=True, timeout=120)
        return out.stdout

    runs_page = rendered("/runs", "p0")
    assert parent.info.run_name in runs_page and "matching runs" in runs_page
    for i, child in enumerate(r for r in runs if r is not parent):
        page = rendered(f"/runs/{child.info.run_id}", f"p{i + 1}")
        assert child.info.run_name in page, child.info.run_name
