"""Sweeps at scale: joblib, the Optuna privacy-utility search, resume, Ray, bad sweep settings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.e2e


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mia-engine")
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    parents = [r for r in runs if r.data.tags.get("mia.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    return client, parents, children


def _artifact(client, run_id: str, path: str, dst: Path) -> Path:
    return Path(client.download_artifacts(run_id, path, str(dst)))


def test_joblib_eight_parallel_jobs_on_the_default_store(tmp_path):
    gammas = "0.01,0.03,0.1,0.3,1,3,10,30"
    proc = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8", f"model.gamma={gammas}"],
                   cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    client, parents, children = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(parents) == 1 and len(children) == 8
    assert parents[0].info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"] * 8
    assert {c.data.params["model.gamma"] for c in children} == {str(float(g)) for g in gammas.split(",")}
    # Jobs ran in joblib's worker processes, each nested under the driver's parent.
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    jobs = _artifact(client, parents[0].info.run_id, "sweep_summary/jobs.csv", tmp_path)
    with jobs.open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 8 and {r["status"] for r in table} == {"FINISHED"}
    by_gamma = {r["model.gamma"]: r for r in table}
    assert round(float(by_gamma["3"]["target_record/membership_probability"]), 2) == 0.80
    # Every SVC keeps training rows verbatim: none may be released under the default risk file.
    assert {r["verdict"] for r in table} == {"do_not_release"}
    assert {c.data.tags["mia.verdict"] for c in children} == {"do_not_release"}
    png = _artifact(client, parents[0].info.run_id, "sweep_summary/metrics_vs_model.gamma.png", tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"


def _search(cwd: Path, *extra: str):
    return run_cli(["experiment=privacy_utility_search", "hydra.sweeper.n_trials=6", *extra], cwd=cwd, timeout=300)


def test_privacy_utility_search_is_seeded_and_logs_its_pareto_front(tmp_path):
    sampled = []
    for name in ("first", "second"):
        d = tmp_path / name
        d.mkdir()
        proc = _search(d)
        assert proc.returncode == 0, proc.stderr
        client, parents, children = _runs(f"sqlite:///{d / 'mlflow.db'}")
        assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
        sampled.append(sorted((c.data.params["model.gamma"], c.data.params["model.C"]) for c in children))
    assert sampled[0] == sampled[1]  # the sampler is seeded
    assert len(set(sampled[0])) == 6
    # The parent's Pareto front is the non-dominated set of (attack AUC down, fresh accuracy up).
    points = {c.info.run_id: (c.data.metrics["attack/auc_leakage"], c.data.metrics["target/test_accuracy"])
              for c in children}
    # Leakage is the AUC's distance from chance: a reliably wrong attack leaks too.
    assert all(c.data.metrics["attack/auc_leakage"] == max(c.data.metrics["attack/auc"],
                                                            1 - c.data.metrics["attack/auc"]) for c in children)
    expected = {rid for rid, (auc, acc) in points.items()
                if not any(a <= auc and b >= acc and (a, b) != (auc, acc) for a, b in points.values())}
    front = _artifact(client, parents[0].info.run_id, "sweep_summary/pareto_front.csv", tmp_path)
    with front.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["run_id"] for r in rows} == expected
    # Which configurations pass: each job's recommendation, as tagged on its run.
    tags = {c.info.run_id: c.data.tags["mia.verdict"] for c in children}
    assert all(r["verdict"] == tags[r["run_id"]] for r in rows)
    assert set(tags.values()) <= {"do_not_release", "needs_review", "no_evidence"}
    assert _artifact(client, parents[0].info.run_id, "sweep_summary/pareto_front.png", tmp_path).exists()


def test_search_on_tpr_at_low_fpr_returns_that_objective(tmp_path):
    import yaml

    proc = _search(tmp_path, "search.leakage=attack.tpr_at_fpr_0.01", "hydra.sweeper.n_trials=3", "tracking=none")
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load(next(tmp_path.glob("multirun/*/*/optimization_results.yaml")).read_text())
    jobs = {}
    for path in tmp_path.glob("multirun/*/*/*/summary.json"):
        s = json.loads(path.read_text())
        cfg = yaml.safe_load((path.parent / "resolved_config.yaml").read_text())
        jobs[(cfg["model"]["gamma"], cfg["model"]["C"])] = (s["attack"]["tpr_at_fpr_0.01"], s["target"]["test_accuracy"])
    assert len(jobs) == 3 and results["solutions"]
    for sol in results["solutions"]:
        key = (sol["params"]["model.gamma"], sol["params"]["model.C"])
        assert tuple(sol["values"]) == pytest.approx(jobs[key])  # what run.py returned to Optuna


def test_resume_skips_jobs_that_already_finished(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A sweep that dies at its third job (an impossible Poisson rate).
    first = run_cli(["-m", "data.classes.responders.features.age.mu=72,-1", "model.gamma=0.1,3"], cwd=tmp_path)
    assert first.returncode == 2
    client, parents, children = _runs(uri)
    assert len(children) == 2 and parents[0].info.status == "FAILED"
    done = {c.data.tags["mia.config_hash"]: c.info.run_id for c in children}
    # Rerun with a fixed grid and resume on: the two finished configs are not computed again.
    second = run_cli(["-m", "data.classes.responders.features.age.mu=72,70", "model.gamma=0.1,3",
                      "tracking.resume=true"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("resume: this config") == 2
    client, parents, children = _runs(uri)
    new_parent = next(p for p in parents if p.info.status == "FINISHED")
    new_children = [c for c in children if c.data.tags["mlflow.parentRunId"] == new_parent.info.run_id]
    assert len(new_children) == 4 and all(c.info.status == "FINISHED" for c in new_children)
    reused = {c.data.tags["mia.config_hash"]: c.data.tags.get("mia.reused_run_id") for c in new_children}
    assert {h: reused[h] for h in done} == done  # the reused ones point at the original runs
    assert sum(v is None for v in reused.values()) == 2  # the two new configs were computed
    again = {c.data.tags["mia.config_hash"]: c.data.metrics for c in new_children}
    for c in children:
        if c.info.run_id in done.values():
            assert again[c.data.tags["mia.config_hash"]] == c.data.metrics
    # Without the flag, the same configs run again.
    third = run_cli(["-m", "model.gamma=0.1"], cwd=tmp_path)
    assert third.returncode == 0 and "resume:" not in third.stdout


@pytest.mark.parametrize("args,line", [
    (["-m", "hydra/launcher=nope", "model.gamma=1,3"], "hydra/launcher/nope"),
    (["-m", "hydra/sweeper=nope", "model.gamma=1,3"], "hydra/sweeper/nope"),
    (["-m", "model.gamma=choice()"], "empty choice"),
    (["experiment=privacy_utility_search", "search.gamma.low=10", "search.gamma.high=0.1"],
     "error: hydra.sweeper.params.model.gamma: interval low=10.0 is not below high=0.1"),
    (["experiment=privacy_utility_search", "search.C.low=0"],
     "error: hydra.sweeper.params.model.C: a log-scaled interval needs low > 0"),
    (["experiment=privacy_utility_search", "hydra.sweeper.n_trials=0"],
     "error: hydra.sweeper.n_trials: must be at least 1, got 0"),
])
def test_bad_sweep_settings_are_one_line_and_launch_nothing(tmp_path, args, line):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli(args, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and line in lines[0], proc.stderr
    assert not list(tmp_path.glob("multirun/*/*/*/summary.json"))  # no job ran


def test_unreachable_server_stops_a_sweep_before_its_jobs(tmp_path):
    proc = run_cli(["-m", "model.gamma=0.1,3", "tracking.http_request_max_retries=0"], cwd=tmp_path,
                   env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "error: tracking.uri: connecting failed at MLflow tracking URI http://127.0.0.1:9: Connection refused"]
    assert not list(tmp_path.glob("multirun/*/*/*/summary.json"))
