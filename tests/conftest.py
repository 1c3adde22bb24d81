"""Shared helpers: compose configs in-process, run the CLI in a subprocess inside tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mia_engine.config import register_configs

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
RUN_PY = REPO / "run.py"

register_configs()


@pytest.fixture(scope="session", autouse=True)
def _cache_secret(tmp_path_factory):
    """The reference cache's signing secret in a temporary file, never the user's home; CLI
    runs inherit it through the environment."""
    path = tmp_path_factory.mktemp("secret") / "cache.secret"
    old = os.environ.get("MIA_ENGINE_SECRET_FILE")
    os.environ["MIA_ENGINE_SECRET_FILE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MIA_ENGINE_SECRET_FILE", None)
    else:
        os.environ["MIA_ENGINE_SECRET_FILE"] = old


#: The tutorial's target as a reference recipe (libsvm's probability calibration seeded).
SVC_NODE = {"_target_": "sklearn.svm.SVC", "C": 1.0, "gamma": 3.0, "probability": True, "random_state": 12}


def compose_config(overrides=(), resolve=True):
    """The scenario config `python run.py <overrides>` would get (without the hydra node)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True) if resolve else cfg


def run_cli(args, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python run.py <args>` in `cwd` (outputs and the SQLite store land there)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(RUN_PY), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, as paths relative to its root."""
    out = set()
    for a in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, a.path) if a.is_dir else {a.path}
    return out


@pytest.fixture
def quiet_sklearn():
    """Silence the warnings scikit-learn gives on purpose-built models: SVC(probability=True)'s
    deprecation in 1.9, iterations that stop at max_iter."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*(converge|Maximum number of iteration).*")
        yield


@pytest.fixture
def compose_cfg():
    return compose_config


def make_patients(n: int = 300, seed: int = 0, missing: bool = True):
    """A small table of made-up patients as a real user's CSV would hold them: an id column,
    a string label ("Yes"/"No"), a categorical column with gaps, numbers and a binary column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, n)
    smoker = rng.choice(["no", "yes"], n, p=[0.7, 0.3])
    region = rng.choice(["north", "south", "east", "west"], n).astype(object)
    bmi = np.round(rng.normal(27, 4, n), 1)
    risk = 0.04 * (age - 55) + 1.2 * (smoker == "yes") + 0.15 * (bmi - 27) + (region == "north") * 0.8
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-risk)), "Yes", "No")
    if missing:
        region[rng.choice(n, 12, replace=False)] = None
    return pd.DataFrame({"patient_id": [f"P{i:04d}" for i in range(n)], "age": age, "smoker": smoker,
                         "region": region, "bmi": bmi, "readmitted": label})


@pytest.fixture(scope="session")
def patients_csv(tmp_path_factory):
    """patients.csv (one table), and train.csv / test.csv / population.csv (a researcher's split)."""
    d = tmp_path_factory.mktemp("patients")
    frame = make_patients(400)
    frame.to_csv(d / "patients.csv", index=False)
    frame.iloc[:200].to_csv(d / "train.csv", index=False)
    frame.iloc[200:300].to_csv(d / "test.csv", index=False)
    frame.iloc[300:].to_csv(d / "population.csv", index=False)
    return d


@pytest.fixture(scope="session")
def saved_forest(patients_csv):
    """A researcher's Pipeline (one-hot + random forest) fitted on train.csv, saved with skops."""
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = pd.read_csv(patients_csv / "train.csv")
    X, y = train.drop(columns=["patient_id", "readmitted"]), train["readmitted"]
    cat = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                    ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pre = ColumnTransformer([("cat", cat, ["smoker", "region"])], remainder="passthrough")
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(n_estimators=50, random_state=0))]).fit(X, y)
    path = patients_csv / "forest.skops"
    sio.dump(model, path)
    return path
