"""Checks of a multirun's sweeper settings, made in the driver before any job launches."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def check_sweeper(config: Any) -> None:
    """Reject sweeper settings that would fail mid-sweep or quietly search nothing.

    Catches an Optuna search space whose interval runs backwards or is empty (or is
    log-scaled over non-positive values), a parameter that cannot be parsed, and
    ``n_trials`` below 1; names the ``hydra.sweeper...`` key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from omegaconf import OmegaConf

    launcher = OmegaConf.select(config, "hydra.launcher") or {}
    if "n_jobs" in launcher and launcher.get("n_jobs") == 0:
        raise ConfigError("hydra.launcher.n_jobs", "must be a positive number of workers or negative (-1: all "
                                                   "cores), got 0")
    sweeper = OmegaConf.select(config, "hydra.sweeper") or {}
    target = str(sweeper.get("_target_", ""))
    if "optuna" in target.lower():
        n_trials = sweeper.get("n_trials")
        if n_trials is not None and n_trials < 1:
            raise ConfigError("hydra.sweeper.n_trials", f"must be at least 1, got {n_trials}")
    params = sweeper.get("params") or {}
    parser = OverridesParser.create()
    for name, spec in params.items():
        key = f"hydra.sweeper.params.{name}"
        try:
            override = parser.parse_overrides([f"{name}={spec}"])[0]
        except Exception as e:
            raise ConfigError(key, " ".join(str(e).split())) from None
        value = override.value()
        if isinstance(value, IntervalSweep):
            lo, hi = value.start, value.end
            if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
                raise ConfigError(key, f"interval bounds must be finite numbers, got {spec}")
            if lo >= hi:
                raise ConfigError(key, f"interval low={lo} is not below high={hi} in {spec}")
            if "log" in (value.tags or set()) and lo <= 0:
                raise ConfigError(key, f"a log-scaled interval needs low > 0, got {spec}")
        elif isinstance(value, list) and not value:
            raise ConfigError(key, "an empty list of values sweeps nothing")
