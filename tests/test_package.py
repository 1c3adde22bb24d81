"""Package hygiene: light imports, MLflow confined to one module, no import-time side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mia_engine"


def test_mlflow_is_imported_by_one_module_only():
    importers = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                       if any(line.strip().startswith(("import mlflow", "from mlflow"))
                              for line in p.read_text().splitlines()))
    assert importers == ["tracking.py"]


def test_start_up_imports_stay_light():
    code = (
        "import sys, logging, warnings\n"
        "import numpy  # numpy adds its own warning filters on import\n"
        "n_filters = len(warnings.filters); n_handlers = len(logging.getLogger().handlers)\n"
        "import mia_engine, mia_engine.app, mia_engine.cli, mia_engine.config, mia_engine.tracking, "
        "mia_engine.scenario, mia_engine.data.population, mia_engine.attacks, mia_engine.signals, mia_engine.models, "
        "mia_engine.reference, mia_engine.scenario.game, mia_engine.metrics\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'matplotlib', 'pandas', 'scipy.stats', 'sqlalchemy') "
        "if m in sys.modules]\n"
        "print(heavy, len(warnings.filters) == n_filters, len(logging.getLogger().handlers) == n_handlers)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True True"


def test_scenario_does_not_touch_global_random_state():
    import random

    import numpy as np

    from conftest import compose_config
    from mia_engine.scenario import run_scenario

    cfg = compose_config(["tracking=none", "attack=suite", "reference.n_models=8", "reference.cache=false"])
    # A first run imports everything: some libraries draw from `random` once on import
    # (rich, pulled in by scikit-learn's callbacks), which is theirs, not the scenario's.
    run_scenario(cfg)
    random.seed(5)
    np.random.seed(5)
    before = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    run_scenario(cfg)
    assert (random.random(), np.random.random()) == before
