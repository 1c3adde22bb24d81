"""A sweep's jobs side by side: a table (CSV, Markdown), metric-vs-parameter plots, the Pareto front.

Plain functions over plain rows, so they work the same for any launcher or sweeper; the
tracking module gathers the rows from MLflow and logs the files on the sweep's parent run.
A row is ``{"run_name", "run_id", "status", "params": {override: value}, "metrics": {...}}``, and
``"verdict"`` (the job's recommendation, tag ``mia.verdict``) when there is one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# The metrics a sweep is read by: the individual's exposure, the attack on the whole target,
# and what the model is worth.
KEY_METRICS = (
    "target_record/membership_probability",
    "target_record/score",
    "attack/auc",
    "attack/tpr_at_fpr_0.01",
    "attack/tpr_at_fpr_0.1",
    "attack/advantage",
    "attack/epsilon_lower_bound",
    "target/train_accuracy",
    "target/test_accuracy",
)
PLOTTED_METRICS = ("target_record/membership_probability", "attack/auc", "target/test_accuracy")


def parse_overrides(text: str) -> dict[str, str]:
    """``"model.gamma=0.1 model.C=2"`` -> ``{"model.gamma": "0.1", "model.C": "2"}``."""
    out = {}
    for token in text.split():
        if "=" in token:
            key, value = token.split("=", 1)
            out[key.lstrip("+~")] = value
    return out


def swept_parameters(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys: dict[str, set] = {}
    for row in rows:
        for k, v in row["params"].items():
            keys.setdefault(k, set()).add(v)
    return [k for k, values in keys.items() if len(values) > 1 or len(rows) == 1]


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metrics: Sequence[str],
                csv_path: Path, md_path: Path) -> None:
    """One line per job: status, the recommendation (when the jobs made one), swept parameters, metrics."""
    verdicts = any(r.get("verdict") for r in rows)
    header = ["run_name", "status", *(["verdict"] if verdicts else []), *params, *metrics]

    def verdict(r):
        return [r.get("verdict") or ""] if verdicts else []

    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*header, "run_id"])
        for r in rows:
            w.writerow([r["run_name"], r["status"], *verdict(r), *(r["params"].get(p, "") for p in params),
                        *(r["metrics"].get(m, "") for m in metrics), r["run_id"]])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["run_name"], r["status"], *verdict(r), *(r["params"].get(p, "") for p in params),
                 *(_fmt(r["metrics"].get(m)) for m in metrics)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    md_path.write_text("\n".join(lines) + "\n")


def log_scale(values: Iterable[float]) -> bool:
    """Log axis when all values are positive and span at least two decades."""
    vals = [v for v in values if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= 100


def plot_metrics_vs_parameter(rows: Sequence[Mapping[str, Any]], param: str, metrics: Sequence[str],
                              path: Path, others: Sequence[str] = ()) -> Path | None:
    """One panel per metric against a swept parameter, one line per setting of the other swept
    parameters; None if the parameter is not numeric."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r["status"] == "FINISHED" and _number(r["params"].get(param)) is not None]
    metrics = [m for m in metrics if any(m in r["metrics"] for r in done)]
    if not done or not metrics:
        return None
    groups: dict[str, list] = {}
    for r in done:
        label = " ".join(f"{o}={r['params'].get(o, '')}" for o in others if o != param)
        groups.setdefault(label, []).append(r)
    xs_all = [_number(r["params"][param]) for r in done]
    fig = Figure(figsize=(4.2 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, members in groups.items():
            pts = sorted((_number(r["params"][param]), r["metrics"].get(metric)) for r in members)
            pts = [(x, y) for x, y in pts if y is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=label or None)
        if log_scale(xs_all):
            ax.set_xscale("log")
        ax.set_xlabel(param)
        ax.set_title(metric, fontsize="medium")
        ax.grid(alpha=0.3)
    if len(groups) > 1 and len(groups) <= 10:
        axes[-1].legend(fontsize="x-small")
    fig.suptitle(f"{len(done)} jobs: metrics against {param}")
    fig.savefig(path, dpi=100)
    return path


def pareto_front(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str],
                 directions: Sequence[str]) -> list[Mapping[str, Any]]:
    """The finished rows no other finished row dominates (better or equal everywhere, better once)."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    scored = []
    for r in rows:
        values = [r["metrics"].get(o) for o in objectives]
        if r["status"] == "FINISHED" and all(v is not None for v in values):
            scored.append((r, [s * v for s, v in zip(sign, values)]))

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [r for r, v in scored if not any(dominates(w, v) for _, w in scored)]


def plot_pareto(rows: Sequence[Mapping[str, Any]], front: Sequence[Mapping[str, Any]],
                objectives: Sequence[str], directions: Sequence[str], path: Path,
                params: Sequence[str] = ()) -> Path:
    from matplotlib.figure import Figure

    x_key, y_key = objectives[:2]
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    done = [r for r in rows if r["status"] == "FINISHED" and x_key in r["metrics"] and y_key in r["metrics"]]
    ax.scatter([r["metrics"][x_key] for r in done], [r["metrics"][y_key] for r in done], color="lightgrey",
               label="all jobs")
    front = sorted(front, key=lambda r: r["metrics"][x_key])
    ax.plot([r["metrics"][x_key] for r in front], [r["metrics"][y_key] for r in front], "o-", color="tab:red",
            label="Pareto front")
    for r in front:
        shown = {k: v for k, v in r["params"].items() if k in params} if params else r["params"]
        ax.annotate(" ".join(f"{k.rsplit('.', 1)[-1]}={_fmt(_number(v) if _number(v) is not None else v)}"
                             for k, v in shown.items()),
                    (r["metrics"][x_key], r["metrics"][y_key]), fontsize="x-small", xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel(f"{x_key} ({directions[0]})")
    ax.set_ylabel(f"{y_key} ({directions[1]})")
    ax.set_title("Privacy-utility trade-off")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def write_sweep_summary(rows: Sequence[Mapping[str, Any]], out_dir: Path,
                        objectives: Sequence[str] = (), directions: Sequence[str] = ()) -> Path:
    """Write the table, the plots and (with two or more objectives) the Pareto front to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = swept_parameters(rows)
    metrics = [m for m in KEY_METRICS if any(m in r["metrics"] for r in rows)]
    write_table(rows, params, metrics, out_dir / "jobs.csv", out_dir / "jobs.md")
    for p in params:
        plot_metrics_vs_parameter(rows, p, PLOTTED_METRICS, out_dir / f"metrics_vs_{p}.png", others=params)
    if len(objectives) >= 2 and len(directions) == len(objectives):
        front = pareto_front(rows, objectives, directions)
        write_table(front, params, list(dict.fromkeys([*objectives, *metrics])), out_dir / "pareto_front.csv",
                    out_dir / "pareto_front.md")
        plot_pareto(rows, front, objectives, directions, out_dir / "pareto_front.png", params)
    return out_dir
