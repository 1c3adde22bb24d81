"""Memory stays flat in the number of reference models: each model is fitted, scores the query
rows and is dropped; only a float32 score per model and row is kept, and scoring gathers the
scores a block of records at a time.

The run: ``python run.py`` on a 40,000-row table (20,000 target rows, 10,000 attacker rows,
10,000 audit non-members; every one of the 40,000 rows is a reference query row) with online
LiRA and offline RMIA, 16 and then 64 reference models. Its peak RSS is ``ru_maxrss`` of that
child alone (``os.wait4``). The models are Gaussian naive Bayes, so that the fits are quick and
what is measured is what the engine keeps. Before the change the engine kept every model's
float64 probabilities and scored all models at once: 64 models took about 30% more memory than
16 here; now the difference is the scores themselves, 48 x 40,000 x 4 bytes (7.7 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import RUN_PY

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 40_000
    X = rng.normal(size=(n, 6)).round(3)
    y = (X[:, 0] + X[:, 1] + rng.normal(size=n) > 0).astype(int)
    path = tmp_path_factory.mktemp("table") / "rows.csv"
    header = ",".join([f"x{i}" for i in range(6)] + ["label"])
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt="%.3f")
    return path


def _peak_rss_mb(args, cwd) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    proc = subprocess.Popen([sys.executable, str(RUN_PY), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out[-3000:]
    return usage.ru_maxrss / 1024, out  # Linux: kilobytes


def test_peak_memory_is_flat_in_the_number_of_reference_models(table, tmp_path):
    peaks = {}
    for n_models in (16, 64):
        peaks[n_models], out = _peak_rss_mb([
            "data=table", f"data.path={table}", "data.label=label", "model=gaussian_nb", "attack=[lira,rmia_offline]",
            f"reference.n_models={n_models}", "reference.cache=false", "reference.progress=false",
            "reference.n_jobs=2", "tracking=none", "report.enabled=false", "objectives=[attack.auc]",
            f"hydra.run.dir={tmp_path / str(n_models)}"], tmp_path)
        assert f"trained {n_models} reference models" in out
    # The scores of 48 more models: 7.7 MB. Everything else must not grow.
    assert peaks[64] <= 1.10 * peaks[16], peaks
    assert peaks[64] - peaks[16] < 48 * 40_000 * 4 / 2**20 + 40, peaks
