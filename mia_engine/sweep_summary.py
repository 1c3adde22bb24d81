"""A sweep's jobs side by side: a table (CSV, Markdown), metric-vs-parameter plots, the Pareto front.

Plain functions over plain rows, so they work the same for any launcher or sweeper; the
tracking module gathers the rows from MLflow and logs the files on the sweep's parent run.
A row is ``{"run_name", "run_id", "status", "params": {override: value}, "metrics": {...}}``, and
``"verdict"`` (the job's recommendation, tag ``mia.verdict``) when there is one.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class MetricInfo:
    """How a sweep plot shows one metric."""

    title: str                   # the panel's title
    label: str                   # its axis label
    note: str = ""               # which way is safer or more useful, e.g. "lower = less leakage"
    chance: float | None = None  # the value a guessing attacker gets, when one is defined
    chance_label: str = ""


_LEAK = "↓ lower = less leakage"
_KNOWN_METRICS = {
    "target_record/membership_probability": MetricInfo(
        "Named record", "membership probability of the named record", _LEAK, 0.5, "coin flip (0.5)"),
    "target_record/score": MetricInfo("Named record", "attack score of the named record", _LEAK),
    "attack/auc": MetricInfo("Strongest attack", "attack AUC", _LEAK, 0.5, "chance (AUC 0.5)"),
    "attack/auc_leakage": MetricInfo("Strongest attack", "attack AUC leakage, max(AUC, 1 − AUC)", _LEAK, 0.5,
                                     "chance (0.5)"),
    "attack/advantage": MetricInfo("Strongest attack", "membership advantage (TPR − FPR)", _LEAK, 0.0,
                                   "chance (0)"),
    "attack/epsilon_lower_bound": MetricInfo("Strongest attack", "ε lower bound (privacy loss)",
                                             _LEAK, 0.0, "no evidence (0)"),
    "target/test_accuracy": MetricInfo("Usefulness", "accuracy on unseen rows",
                                       "↑ higher = more useful"),
    "target/train_accuracy": MetricInfo("Fit to training rows", "accuracy on training rows",
                                        "far above unseen = memorising"),
}


def metric_info(key: str) -> MetricInfo:
    """Title, axis label, safer direction and chance level of a run-summary metric (its key
    itself, with no note, for a metric this module does not know)."""
    if key in _KNOWN_METRICS:
        return _KNOWN_METRICS[key]
    prefix = "attack/tpr_at_fpr_"
    if key.startswith(prefix) and _number(key[len(prefix):]) is not None:
        f = _number(key[len(prefix):])
        return MetricInfo("Strongest attack, low FPR", f"true positive rate at FPR {f:g}",
                          _LEAK, f, f"chance (TPR = FPR = {f:g})")
    return MetricInfo(key, key)


# A job's recommendation (the verdict module's outcomes) -> marker and legend text.
VERDICT_MARKERS = {"do_not_release": ("X", "do not release"), "needs_review": ("^", "needs review"),
                   "no_evidence": ("o", "no evidence")}
_NO_VERDICT = ("s", "no recommendation")
MAX_LINES = 8  # more settings of the other swept parameters than this: a coloured scatter, not lines


def _verdict_marker(row: Mapping[str, Any]) -> tuple[str, str]:
    return VERDICT_MARKERS.get(row.get("verdict") or "", _NO_VERDICT)


@dataclass
class SweepLayout:
    """How the jobs of a metrics-against-parameter plot are drawn.

    ``"lines"``: one line per setting of the other swept parameters (``groups``, label -> rows;
    the legend's title is ``group_title``). ``"scatter"``: too many settings for lines, so one
    point per job coloured by ``colour_param`` (None: one colour), on a log colour scale when
    ``colour_log``."""

    mode: str
    groups: dict[str, list] = field(default_factory=dict)
    group_title: str = ""
    colour_param: str | None = None
    colour_log: bool = False


def sweep_layout(done: Sequence[Mapping[str, Any]], param: str, others: Sequence[str] = (),
                 max_lines: int = MAX_LINES) -> SweepLayout:
    """Lines for a grid with few settings of the other swept parameters, a scatter coloured by
    (the first numeric) one of them otherwise, as in a random search where every job differs."""
    rest = [o for o in others if o != param]
    groups: dict[str, list] = {}
    for r in done:
        label = " ".join(f"{o.rsplit('.', 1)[-1]}={r['params'].get(o, '')}" for o in rest)
        groups.setdefault(label, []).append(r)
    if len(groups) <= max_lines:
        return SweepLayout("lines", groups, ", ".join(rest))
    for o in rest:
        values = [_number(r["params"].get(o)) for r in done]
        if all(v is not None for v in values) and len(set(values)) > 1:
            return SweepLayout("scatter", colour_param=o, colour_log=log_scale(values))
    return SweepLayout("scatter")


def _decorate(ax, info: MetricInfo) -> None:
    """Title, axis label, the safer direction (right-hand title) and the chance line."""
    from matplotlib.transforms import blended_transform_factory

    ax.set_title(info.title, loc="left", fontsize="medium")
    if info.note:
        ax.set_title(info.note, loc="right", fontsize="small", color="dimgrey", style="italic")
    ax.set_ylabel(info.label)
    if info.chance is not None:
        lo, hi = ax.get_ylim()
        span = max(hi, info.chance) - min(lo, info.chance)
        ax.set_ylim(min(lo, info.chance - 0.06 * span), max(hi, info.chance + 0.06 * span))  # off the frame
        ax.axhline(info.chance, color="grey", linestyle=":", linewidth=1.3, zorder=1)
        ax.annotate(info.chance_label, (0.01, info.chance), xycoords=blended_transform_factory(ax.transAxes,
                    ax.transData), xytext=(0, 2), textcoords="offset points", va="bottom", fontsize="x-small",
                    color="dimgrey")


def _verdict_legend(fig, rows: Sequence[Mapping[str, Any]]) -> None:
    """A legend of the recommendation markers used, when the jobs made recommendations."""
    from matplotlib.lines import Line2D

    if not any(r.get("verdict") for r in rows):
        return
    used = dict.fromkeys(_verdict_marker(r) for r in rows)
    handles = [Line2D([], [], linestyle="none", marker=m, color="dimgrey", markersize=7, label=t) for m, t in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small",
               title="each job's recommendation", title_fontsize="small", frameon=False)


def metrics_figure(rows: Sequence[Mapping[str, Any]], param: str, metrics: Sequence[str],
                   others: Sequence[str] = ()):
    """The figure :func:`plot_metrics_vs_parameter` saves, and its layout; None if the parameter
    is not numeric or no finished job has one of the metrics."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    done = [r for r in rows if r["status"] == "FINISHED" and _number(r["params"].get(param)) is not None]
    metrics = [m for m in metrics if any(m in r["metrics"] for r in done)]
    if not done or not metrics:
        return None
    layout = sweep_layout(done, param, others)
    verdicts = any(r.get("verdict") for r in done)
    xs_all = [_number(r["params"][param]) for r in done]
    fig = Figure(figsize=(4.4 * len(metrics) + (1.0 if layout.mode == "scatter" else 0.0), 4.2),
                 layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(layout.groups))]
    norm = cmap = None
    if layout.mode == "scatter" and layout.colour_param is not None:
        cvals = [_number(r["params"][layout.colour_param]) for r in done]
        norm = (LogNorm if layout.colour_log else Normalize)(min(cvals), max(cvals))
        cmap = "viridis"
    for ax, metric in zip(axes, metrics):
        if layout.mode == "lines":
            for colour, (label, members) in zip(colours, layout.groups.items()):
                pts = sorted(((_number(r["params"][param]), r["metrics"].get(metric), r) for r in members
                              if r["metrics"].get(metric) is not None), key=lambda p: p[0])
                ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "-", color=colour, label=label or None)
                by_marker: dict[str, list] = {}
                for x, y, r in pts:
                    by_marker.setdefault(_verdict_marker(r)[0] if verdicts else "o", []).append((x, y))
                for marker, xy in by_marker.items():
                    ax.scatter([x for x, _ in xy], [y for _, y in xy], marker=marker, color=colour, s=40, zorder=3,
                               edgecolors="black" if verdicts else "none", linewidths=0.5)
        else:
            by_marker = {}
            for r in done:
                if r["metrics"].get(metric) is not None:
                    by_marker.setdefault(_verdict_marker(r)[0] if verdicts else "o", []).append(r)
            for marker, members in by_marker.items():
                kw = ({"c": [_number(r["params"][layout.colour_param]) for r in members], "cmap": cmap, "norm": norm}
                      if norm is not None else {"color": "tab:blue"})
                ax.scatter([_number(r["params"][param]) for r in members], [r["metrics"][metric] for r in members],
                           marker=marker, s=40, edgecolors="black", linewidths=0.5, zorder=3, **kw)
        if log_scale(xs_all):
            ax.set_xscale("log")
        ax.set_xlabel(param)
        _decorate(ax, metric_info(metric))
        ax.grid(alpha=0.3)
    if layout.mode == "lines" and len(layout.groups) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small",
                   title=layout.group_title, title_fontsize="small")
    if norm is not None:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), location="right", shrink=0.9,
                     label=f"{layout.colour_param}" + (" (log scale)" if layout.colour_log else ""))
    _verdict_legend(fig, done)
    how = ""
    if layout.mode == "scatter":
        how = (f"; one point per job, colour = {layout.colour_param}" if layout.colour_param
               else f"; one point per job ({len(done)} settings of the other parameters)")
    fig.suptitle(f"{len(done)} jobs: metrics against {param}{how}")
    return fig, layout


def plot_metrics_vs_parameter(rows: Sequence[Mapping[str, Any]], param: str, metrics: Sequence[str],
                              path: Path, others: Sequence[str] = ()) -> Path | None:
    """One panel per metric against a swept parameter: readable titles and axis labels, the
    chance line and which way is safer; one line per setting of the other swept parameters (a
    scatter coloured by one of them when there are more than MAX_LINES settings); a job's
    recommendation as its marker. None if the parameter is not numeric."""
    built = metrics_figure(rows, param, metrics, others)
    if built is None:
        return None
    built[0].savefig(path, dpi=100)
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


def pareto_figure(rows: Sequence[Mapping[str, Any]], front: Sequence[Mapping[str, Any]],
                  objectives: Sequence[str], directions: Sequence[str], params: Sequence[str] = ()):
    """The figure :func:`plot_pareto` saves."""
    from matplotlib.figure import Figure

    x_key, y_key = objectives[:2]
    fig = Figure(figsize=(6.8, 5.0), layout="constrained")
    ax = fig.add_subplot()
    done = [r for r in rows if r["status"] == "FINISHED" and x_key in r["metrics"] and y_key in r["metrics"]]
    verdicts = any(r.get("verdict") for r in done)
    by_marker: dict[str, list] = {}
    for r in done:
        by_marker.setdefault(_verdict_marker(r)[0] if verdicts else "o", []).append(r)
    for i, (marker, members) in enumerate(by_marker.items()):
        ax.scatter([r["metrics"][x_key] for r in members], [r["metrics"][y_key] for r in members], marker=marker,
                   color="lightgrey", edgecolors="grey", linewidths=0.5, s=40, label="all jobs" if i == 0 else None)
    front = sorted(front, key=lambda r: r["metrics"][x_key])
    ax.plot([r["metrics"][x_key] for r in front], [r["metrics"][y_key] for r in front], "-", color="tab:red",
            label="Pareto front", zorder=3)
    for r in front:
        ax.scatter([r["metrics"][x_key]], [r["metrics"][y_key]], marker=_verdict_marker(r)[0] if verdicts else "o",
                   color="tab:red", edgecolors="black", linewidths=0.5, s=50, zorder=4)
    for i, r in enumerate(front):  # labels alternately above and below: neighbours on the front stay legible
        shown = {k: v for k, v in r["params"].items() if k in params} if params else r["params"]
        ax.annotate(" ".join(f"{k.rsplit('.', 1)[-1]}={_fmt(_number(v) if _number(v) is not None else v)}"
                             for k, v in shown.items()),
                    (r["metrics"][x_key], r["metrics"][y_key]), fontsize="x-small",
                    xytext=(5, 4) if i % 2 == 0 else (5, -10), textcoords="offset points")
    xi, yi = metric_info(x_key), metric_info(y_key)
    ax.set_xlabel(f"{xi.label} ({directions[0]}" + (f"; {xi.note.lstrip('↑↓ ')}" if xi.note else "") + ")")
    ax.set_ylabel(f"{yi.label} ({directions[1]}" + (f"; {yi.note.lstrip('↑↓ ')}" if yi.note else "") + ")")
    if xi.chance is not None:
        ax.axvline(xi.chance, color="grey", linestyle=":", linewidth=1.3, label=f"{xi.label}: {xi.chance_label}")
    if yi.chance is not None:
        ax.axhline(yi.chance, color="grey", linestyle="--", linewidth=1.0, label=f"{yi.label}: {yi.chance_label}")
    # The corner both objectives prefer, in the title (an arrow in the axes would sit on the front).
    towards = " and ".join([{"maximize": "up", "minimize": "down"}.get(directions[1], directions[1]),
                            {"maximize": "to the right", "minimize": "to the left"}.get(directions[0], directions[0])])
    ax.set_title(f"Privacy-utility trade-off (better: {towards})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    _verdict_legend(fig, done)
    return fig


def plot_pareto(rows: Sequence[Mapping[str, Any]], front: Sequence[Mapping[str, Any]],
                objectives: Sequence[str], directions: Sequence[str], path: Path,
                params: Sequence[str] = ()) -> Path:
    """Every finished job on the two objectives, the Pareto front in red, axis labels saying
    which way is safer or more useful, chance lines and the corner both objectives prefer."""
    pareto_figure(rows, front, objectives, directions, params).savefig(path, dpi=100)
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
