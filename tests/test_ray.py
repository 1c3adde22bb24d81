"""Fits inside one run on Ray: the same numbers as serial, errors and Ctrl-C reach the caller,
and cancelled tasks free the cluster. One local Ray instance (2 CPUs) serves the module."""

from __future__ import annotations

import logging
import signal
import sys
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from conftest import SVC_NODE, compose_config  # noqa: E402
from mia_engine import compute  # noqa: E402
from mia_engine.errors import ConfigError  # noqa: E402
from mia_engine.reference import train_reference_models  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import os
    import shutil
    import tempfile

    from ray import cloudpickle  # Ray's own copy pickles the tasks' arguments

    # The helper functions below travel by value: Ray's workers cannot import this test module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # A short directory: Ray's socket paths must fit in 107 characters. A RAY_ADDRESS in the
    # environment would make ray.init join that cluster instead of starting this one.
    temp = tempfile.mkdtemp(prefix="mia-ray-")
    address = os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, _temp_dir=temp)
    try:
        yield
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if address is not None:
            os.environ["RAY_ADDRESS"] = address
        shutil.rmtree(temp, ignore_errors=True)


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X[:200], y[:200], X[200:], y[200:]


FOREST = {"_target_": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 5, "random_state": 0}


@pytest.mark.parametrize("node", [FOREST, SVC_NODE], ids=["forest", "svc"])
def test_reference_models_on_ray_are_bit_identical_to_serial(node, monkeypatch, caplog):
    X, y, Xe, ye = _table()
    args = dict(n_models=8, seed=11, progress=False)
    serial = train_reference_models(node, "model", X, y, Xe, ye, n_jobs=1, **args)
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(type(value).__name__) or real_put(value, **kw))
    caplog.set_level(logging.INFO, logger="mia_engine")
    monkeypatch.setattr(compute.Progress, "QUIET_SECONDS", 0.0)  # report even a quick stage
    on_ray = train_reference_models(node, "model", X, y, Xe, ye, backend="ray", **args)
    assert puts == ["_Shared"]  # the data went to the object store once, not once per model
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reference models: ")]
    assert progress and all("/8 models" in m and "left" in m for m in progress)
    assert on_ray.scores.dtype == np.float32 and on_ray.scores.shape == (8, 300)
    assert np.array_equal(on_ray.scores, serial.scores)
    assert np.array_equal(on_ray.in_mask, serial.in_mask) and on_ray.key == serial.key
    # not trivially equal: each model has its own half and its own seed
    assert len({row.tobytes() for row in on_ray.scores}) == 8


def _game(overrides):
    from mia_engine.scenario import prepare_scenario
    from mia_engine.scenario.game import play_game, prepare_game

    cfg = compose_config(["tracking=none", "evaluation=individual_game", "evaluation.n_trials=6",
                          "attack=[lira,rmia_offline]", "reference.n_models=8", "reference.cache=false",
                          "reference.progress=false", *overrides])
    plan = prepare_scenario(cfg)
    return play_game(plan, prepare_game(cfg, plan))


def test_the_game_on_ray_is_identical_to_serial():
    serial = _game(["evaluation.n_jobs=1", "reference.n_jobs=1"])
    on_ray = _game(["evaluation.backend=ray", "reference.backend=ray"])
    assert len(serial.trials) == 6 * 3 * 2  # trials x records x attacks
    assert on_ray.trials == serial.trials  # every row: trial, seeds, inclusion, score, decision
    assert on_ray.single_run == serial.single_run and on_ray.thresholds == serial.thresholds
    for rec, by_attack in serial.metrics.items():
        for attack, m in by_attack.items():
            assert on_ray.metrics[rec][attack].summary() == m.summary()


def _fail_on_two(item, shared):
    if item == 2:
        raise ConfigError("model.C", "stand-in for a fit that fails in a worker")
    return item * shared


def test_a_task_error_reaches_the_caller_as_raised():
    with pytest.raises(ConfigError) as e:
        dict(compute.map_tasks(_fail_on_two, range(6), 10, backend="ray", n_jobs=-1))
    assert type(e.value) is ConfigError  # the task's own error, not Ray's wrapper (a ConfigError subclass)
    assert e.value.key == "model.C" and "stand-in" in e.value.message
    ok = dict(compute.map_tasks(_fail_on_two, [0, 1, 3], 10, backend="ray", n_jobs=-1))
    assert ok == {0: 0, 1: 10, 2: 30}  # by index, whatever the order of finishing


def _sleep(seconds, shared):
    """A stand-in for a long fit inside one C call, run the way the engine runs fits."""
    from mia_engine.models import _interruptible

    _interruptible(time.sleep, seconds)
    return seconds


def _free_cpus(timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ray.available_resources().get("CPU", 0) >= 2:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_cancels_the_tasks_and_frees_the_cluster(caplog):
    """SIGINT while 6 one-minute tasks run: KeyboardInterrupt within a second or so, the tasks
    are cancelled and both CPUs are free again at once (not after a minute)."""
    caplog.set_level(logging.INFO, logger="mia_engine")
    assert _free_cpus()
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    previous = signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in compute.map_tasks(_sleep, [60] * 6, None, backend="ray", n_jobs=-1):
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < 5
    assert "ray: cancelled 6 task(s)" in caplog.text
    assert _free_cpus(), ray.available_resources()
    assert time.monotonic() - start < 20


@pytest.mark.e2e
def test_an_unreachable_cluster_is_one_line_before_any_run_opens(tmp_path):
    import socket

    from conftest import mlflow_client, run_cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    proc = run_cli(["attack=[lira]", "reference.backend=ray", f"ray.address=127.0.0.1:{port}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: ray.address: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"]
    assert time.monotonic() - start < 60  # Ray alone waits minutes
    if (tmp_path / "mlflow.db").exists():
        client = mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []
