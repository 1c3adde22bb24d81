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
