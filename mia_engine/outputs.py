"""Files a run leaves in its output directory: summary, resolved config, plots, data, models."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .scenario import Dataset, ScenarioResult


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    return path


def _cell(v: float, feature) -> Any:
    if v != v:  # NaN: a missing value
        return ""
    if feature.kind != "numeric" and feature.categories:
        return feature.categories[int(v)]
    return int(v) if feature.discrete and float(v).is_integer() else repr(float(v))


def write_dataset(path: Path, ds: Dataset) -> Path:
    """Rows in the data's own values (categories by name, labels as the data calls them)."""
    label_of = dict(zip(ds.labels, ds.label_values))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow((["id"] if ds.ids is not None else []) + [*ds.feature_names, "label"])
        for i, (row, label) in enumerate(zip(ds.X, ds.y)):
            w.writerow(([ds.ids[i]] if ds.ids is not None else [])
                       + [_cell(v, f) for v, f in zip(row, ds.features)] + [label_of[int(label)]])
    return path


def write_record_scores(path: Path, result: ScenarioResult) -> Path | None:
    """Every audited record's score from every attack: row id, member flag, label, one column
    per attack. It says which records are exposed, so it is disclosive: local by default."""
    import pandas as pd

    rs = result.record_scores
    if not rs:
        return None
    labels = dict(zip(result.datasets["target_train"].labels, result.labels))
    n = len(rs["member"])
    ids = rs["id"] if rs["id"] is not None else np.asarray(
        [f"member:{i}" for i in range(int(rs["member"].sum()))] + [f"nonmember:{i}" for i in
                                                                   range(n - int(rs["member"].sum()))], dtype=object)
    frame = pd.DataFrame({"id": [str(v) for v in ids], "member": rs["member"],
                          "label": [str(labels[int(v)]) for v in rs["label"]]})
    for name, scores in rs["scores"].items():
        frame[name] = np.asarray(scores, dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def write_models(directory: Path, models: Mapping[str, Any]) -> list[Path]:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    return [Path(joblib.dump(m, directory / f"{name}_model.joblib")[0]) for name, m in models.items()]


def write_run_outputs(result: ScenarioResult, out_dir: Path, *, datasets: bool, models: bool,
                      schema: str | None = None) -> dict[str, Path]:
    """Plots, CSVs, models, per-record scores and (for a table) its schema; returns
    artifact-directory -> path (files or folders). ``datasets``/``models`` false: not written."""
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
    scores = write_record_scores(out_dir / "records" / "scores.parquet", result)
    if scores is not None:
        written["records"] = scores.parent
    if schema is not None:
        # A categorical column's categories can be as telling as rows (names, postcodes): the
        # schema goes to the tracker only with the datasets.
        (out_dir / "data_schema.yaml").write_text(schema)
        if datasets:
            written["config"] = out_dir / "data_schema.yaml"
    return written
