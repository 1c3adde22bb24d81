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


@pytest.fixture
def compose_cfg():
    return compose_config
