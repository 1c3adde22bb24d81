"""Bad input is caught before any data are drawn or any run exists, blaming the right key, in
one line: the late, wrong-key and silently accepted cases a hostile review found."""

from __future__ import annotations

import pytest

from conftest import compose_config, run_cli
from mia_engine.errors import ConfigError
from mia_engine.scenario import prepare_scenario


@pytest.mark.parametrize("overrides,key,words", [
    (["+foo=bar"], "foo", "unknown top-level key"),
    (["+a.b.c=1"], "a", "unknown top-level key"),
    (["attack=[]"], "attack", "no attack selected"),
    (["reference.seed=-1", "attack=lira"], "reference.seed", "a seed is a whole number"),
    (["model.random_state=-1"], "model.random_state", "a seed is a whole number"),
    (["evaluation.seed=-1"], "evaluation.seed", "a seed is a whole number"),
    (["shadow.split_seed=-1"], "shadow.split_seed", "a seed is a whole number"),
    (["data.seed=4294967296"], "data.seed", "a seed is a whole number"),
    (["shadow.size_per_class=1"], "shadow.size_per_class", "fewer than 2 rows"),
    (["tracking.experiment_name=''"], "tracking.experiment_name", "non-empty"),
    (["tracking.mlflow_log_level=NOTALEVEL"], "tracking.mlflow_log_level", "unknown level"),
    (["tracking.http_request_timeout=-1"], "tracking.http_request_timeout", ">= 1"),
    (["attack=rmia", "attack.rmia.gamma=inf"], "attack.rmia.gamma", "finite"),
    (["attack=loss_threshold", "attack.loss_threshold.threshold=inf"], "attack.loss_threshold.threshold", "finite"),
    (["attack=lira", "attack.lira.threshold=-inf"], "attack.lira.threshold", "finite"),
    (["model.kernel=precomputed"], "model.kernel", "kernel matrix"),
    (["model=knn", "model.n_neighbors=150"], "model.n_neighbors", "has 100 rows"),
    (["attack=lira", "reference.cache_dir=/proc/mia"], "reference.cache_dir", "cannot create"),
])
def test_caught_before_anything_is_drawn(overrides, key, words):
    with pytest.raises(ConfigError, match=words) as err:
        prepare_scenario(compose_config(overrides))
    assert err.value.key == key


def test_a_cache_dir_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create") as err:
        prepare_scenario(compose_config(["attack=lira", f"reference.cache_dir={tmp_path / 'file' / 'cache'}"]))
    assert err.value.key == "reference.cache_dir"


@pytest.mark.parametrize("overrides,line", [
    (["objectives=[attack.nonexistent]"], "error: objectives.0: 'attack.nonexistent' will not be a number"),
    (["objectives=[upper_bound.auc]"], "error: objectives.0: 'upper_bound.auc' will not be a number"),
    (["attack=[lira,shadow_lr,lira]"], "error: attack: lira listed more than once"),
    (["hydra.run.dir="], "error: hydra.run.dir: empty or the launch directory itself"),
    (["evaluation=individual_game", "evaluation.seed=-1"], "error: evaluation.seed: a seed is a whole number"),
])
def test_caught_before_any_run_opens(tmp_path, overrides, line):
    proc = run_cli(overrides, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(line), proc.stderr[-500:]
    # No run exists: a bad config leaves nothing in the store.
    assert not list(tmp_path.rglob("summary.json"))
    if (tmp_path / "mlflow.db").exists():
        from conftest import mlflow_client

        client = mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


def test_objectives_a_run_will_have_pass_the_check(tmp_path):
    proc = run_cli(["tracking=none", "objectives=[attack.auc_leakage,target.test_accuracy,target_record.score]",
                    f"hydra.run.dir={tmp_path / 'o'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1000:]


@pytest.mark.parametrize("overrides,key", [
    (["data.classes.responders.size=100000000"], "data.classes.responders.size"),
    (["audit.n_nonmembers=100000000"], "audit.n_nonmembers"),
    (["attack=lira", "reference.n_models=100000000"], "reference.n_models"),
    (["shadow.size_per_class=100000000"], "shadow.size_per_class"),
])
def test_a_scenario_that_cannot_fit_in_memory_is_refused_before_drawing(overrides, key):
    with pytest.raises(ConfigError, match=r"needs about [\d.]+ GiB .* GiB are available") as err:
        prepare_scenario(compose_config(overrides))
    assert err.value.key == key


def test_the_memory_estimate_follows_the_sizes(monkeypatch):
    import mia_engine.scenario.plan as plan_mod

    plan = prepare_scenario(compose_config(["attack=lira"]))
    _, _, attacks = plan.build_estimators()
    parts = {k: b for k, _, b in plan_mod.memory_estimate(plan.source, plan.reference_node, attacks, plan.member_counts(),
                                                                {0: 100, 1: 100})}
    # 64 models x 601 query rows x (a float32 score + 1 mask byte), and scoring's six float64
    # arrays of (models x records) at a time
    assert parts["reference.n_models"] == 64 * 601 * 5 + 6 * 8 * 64 * 601
    # The tutorial's sampler draws Python values: 64 bytes each, about three copies.
    (data_key,) = [k for k in parts if k.startswith("data.classes.")]
    assert parts[data_key] == 3 * 200 * 6 * 64
    # Less memory than that: refused, naming the largest part.
    monkeypatch.setattr(plan_mod, "available_memory", lambda: 1_000_000)  # the rows fit, the models do not
    with pytest.raises(ConfigError, match="needs about") as err:
        prepare_scenario(compose_config(["attack=lira"]))
    assert err.value.key == "reference.n_models"


@pytest.mark.parametrize("override,key", [
    ("data.classes.responders.features.age.high=1000000000000", "data.classes.responders.features.age.high"),
    ("data.classes.responders.features.age={dist: poisson, mu: 1e12, low: null, high: null}",
     "data.classes.responders.features.age.mu"),
])
def test_a_poisson_support_too_wide_to_tabulate_is_refused(override, key):
    with pytest.raises(ConfigError, match="tabulates at most") as err:
        prepare_scenario(compose_config([override]))
    assert err.value.key == key


def test_an_svc_that_never_converges_stops_at_its_bound(tmp_path):
    # libsvm with C=1e20 iterates for ever without a bound; model.max_iter stops it in seconds.
    proc = run_cli(["tracking=none", "model.C=1e20", f"hydra.run.dir={tmp_path / 'o'}"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: model.max_iter: SVC stopped after max_iter=1,000,000 iterations without converging")


def test_an_output_dir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")  # (running as root ignores permissions: a file in the way)
    proc = run_cli(["tracking=none", "hydra.run.dir=afile/sub"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("error: hydra.run.dir: cannot create the output directory "
                                                    "afile/sub: Not a directory")


def test_a_joblib_launcher_with_no_workers_is_refused_in_the_driver(tmp_path):
    proc = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "model.gamma=0.1,3", "tracking=none"],
                   cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: hydra.launcher.n_jobs: must be a positive number")
    assert not list(tmp_path.rglob("summary.json"))


def test_experiments_open_in_the_model_training_view_and_resume_is_quiet(tmp_path):
    from conftest import mlflow_client

    assert run_cli([], cwd=tmp_path).returncode == 0
    client = mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("mia-engine").tags["mlflow.experimentKind"] == "custom_model_development"
    again = run_cli(["tracking.resume=true"], cwd=tmp_path)
    assert again.returncode == 0 and "already FINISHED" in again.stdout + again.stderr
    assert "Downloading artifacts" not in again.stderr and "%|" not in again.stderr


def test_no_named_record_runs_to_the_end_and_says_so(tmp_path):
    proc = run_cli(["data.target_record=null", f"hydra.run.dir={tmp_path / 'o'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1000:]
    import json

    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "target_record" not in s and s["verdict"]["outcome"] == "do_not_release"
    from conftest import mlflow_client

    client = mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(s["mlflow"]["run_id"]).info.status == "FINISHED"


def test_the_composed_config_shows_only_parameters_given(tmp_path):
    proc = run_cli(["--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0
    data = proc.stdout.split("\nmodel:")[0]
    # Each feature lists its dist and its own parameters: no rows of nulls.
    assert "null" not in data.split("target_record:")[0]
    assert len(proc.stdout.splitlines()) < 300
