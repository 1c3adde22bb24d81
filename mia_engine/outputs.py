"""Files a run leaves in its output directory: summary, resolved config, plots, data, models."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

from .scenario import Dataset, ScenarioResult


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    return path


def write_dataset(path: Path, ds: Dataset) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*ds.feature_names, "label"])
        for row, label in zip(ds.X, ds.y):
            w.writerow([int(v) if d else repr(float(v)) for v, d in zip(row, ds.discrete)] + [int(label)])
    return path


def write_models(directory: Path, models: Mapping[str, Any]) -> list[Path]:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    return [Path(joblib.dump(m, directory / f"{name}_model.joblib")[0]) for name, m in models.items()]


def write_run_outputs(result: ScenarioResult, out_dir: Path, *, datasets: bool, models: bool) -> dict[str, Path]:
    """Plots, CSVs and models; returns artifact-directory -> path (files or folders)."""
    from . import plots

    written: dict[str, Path] = {}
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots.confidence_histogram(result, plot_dir / "shadow_confidence_histogram.png")
    if result.audit is not None:
        plots.attack_roc(result, plot_dir / "attack_roc.png")
        for attack in result.attacks.values():
            if attack.metrics is not None:
                plots.score_histogram(result, attack, plot_dir / f"scores_{attack.name}.png")
    written["plots"] = plot_dir
    if datasets:
        data_dir = out_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        for name, ds in result.datasets.items():
            write_dataset(data_dir / f"{name}.csv", ds)
        written["data"] = data_dir
    if models:
        write_models(out_dir / "models", result.models)
        written["models"] = out_dir / "models"
    return written
