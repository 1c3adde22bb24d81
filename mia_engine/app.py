"""The Hydra task: one composed scenario in, outputs on disk and in MLflow out.

Order of work, so that nothing computed is lost:

1. Validate the whole config (a bad value stops here, before any run is opened).
2. Open the MLflow run (child of the sweep's parent in a multirun). If the store cannot be
   reached, remember the error and go on without tracking. (MLflow itself starts loading in
   a helper process before step 1; see :class:`mia_engine.tracking.TrackingSession`.)
3. Run the scenario; write summary.json, the resolved config, plots, CSVs and models.
4. Log params, metrics, tags and artifacts; close the run FINISHED (FAILED on any error).
5. If tracking failed in step 2, exit non-zero now, with the outputs already on disk.

Before the reference models, the run logs an estimate of its cost, extrapolated from its own
target fit (:mod:`mia_engine.cost`); cost.json keeps it beside the measured times. With
``plan_only=true`` the job stops after step 1: it prints what the run would fit and query, its
sizes, memory and an estimate from one timed fit, writes ``plan.json``, and opens no run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

log = logging.getLogger("mia_engine")


#: Config nodes that can hold a real person's values (a named record's id or features): kept
#: out of MLflow for a table unless ``tracking.log_datasets`` (all but their ``name``).
RECORD_NODES = ("data.target_record", "data.probe_records", "evaluation.records")
REDACTED = "<redacted: tracking.log_datasets=false>"


def _is_record_override(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return any(key == node or key.startswith(node + ".") for node in RECORD_NODES) and not key.endswith(".name")


def redact_records(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the resolved config with every value under :data:`RECORD_NODES` replaced by
    :data:`REDACTED`, except the records' names."""
    import copy

    out = copy.deepcopy(dict(resolved))

    def blank(node):
        if isinstance(node, dict):
            return {k: (v if k == "name" and not isinstance(v, (dict, list)) else blank(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [blank(v) for v in node]
        return None if node is None else REDACTED

    for path in RECORD_NODES:
        parent, _, leaf = path.rpartition(".")
        holder = out.get(parent)
        if isinstance(holder, dict) and holder.get(leaf) is not None:
            holder[leaf] = blank(holder[leaf])
    return out


def _run_name(tracking: Mapping[str, Any], overrides: list[str]) -> str:
    if tracking.get("run_name"):
        return str(tracking["run_name"])
    shown = [o for o in overrides if not o.startswith(("tracking.", "hydra."))]
    return " ".join(shown) if shown else "defaults"


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def run_job(cfg) -> float | None:
    """The body of ``run.py``'s ``@hydra.main`` function; returns the ``objectives`` values
    (None with ``plan_only=true``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from .scenario.game import format_game, play_game, prepare_game, write_game_outputs
    from .outputs import write_json, write_run_outputs
    from .report import format_report
    from .scenario import execute_scenario, prepare_scenario
    from .verdict import decide

    started = time.perf_counter()
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    launch_dir = Path(hc.runtime.cwd)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracking = resolved["tracking"]
    overrides = list(hc.overrides.task)
    # Rows and fitted models (which can embed rows) of real data stay out of MLflow unless asked
    # for; a synthetic population's go by default. A table's named records are real people too:
    # their values stay out of params, tags, the run name and the logged config with the rows.
    synthetic = resolved["data"].get("kind") == "population"
    log_datasets = synthetic if tracking.get("log_datasets") is None else bool(tracking["log_datasets"])
    log_models = synthetic if tracking.get("log_models") is None else bool(tracking["log_models"])
    logged_config = resolved if log_datasets else redact_records(resolved)
    if not log_datasets:
        overrides = [o for o in overrides if not _is_record_override(o)]
    run_name = _run_name(tracking, overrides)
    objectives = resolved.get("objectives")
    plan_only = resolved.get("plan_only", False)
    if not isinstance(plan_only, bool):
        raise ConfigError("plan_only", f"true or false, got {plan_only!r}")

    digest = config_hash(resolved)
    session = None
    if tracking["enabled"] and not plan_only:  # a plan opens no run and touches no store
        from . import tracking as trk

        multirun = hc.mode == RunMode.MULTIRUN
        sweep_dir = launch_dir / hc.sweep.dir if multirun else None
        tags = {
            "mia.overrides": " ".join(overrides),
            "mia.output_dir": str(out_dir.resolve()),
            "mia.population": str(resolved["data"].get("name") or resolved["data"].get("builtin")
                                  or resolved["data"].get("kind")),
            "mia.attack": ",".join(resolved.get("attack") or {}),
            "mlflow.source.git.commit": trk.git_commit(Path(__file__).resolve().parent),
            "mia.config_hash": digest,
        }
        if multirun:
            tags.update({"mia.sweep_dir": str(sweep_dir), "mia.job_num": hc.job.num})
        parent_run_id = trk.read_parent_run(sweep_dir) if multirun else None
        params = trk.flatten({k: v for k, v in logged_config.items() if k != "hydra"})
        if tracking.get("resume"):
            reused = trk.reuse_finished_run(tracking, launch_dir, digest, out_dir, run_name, tags, parent_run_id,
                                            params)
            if reused is not None:
                log.info("resume: this config (hash %s) already FINISHED as run %s; reusing its results",
                         digest[:12], reused["mlflow"]["reused_run_id"])
                return objective_values(reused, objectives)
        # Started before validation so that MLflow loads while the scenario runs; no run
        # exists until open(), so a bad config leaves nothing behind in the store.
        # The background helper pays MLflow's import for one run; a sweep's jobs share one
        # import per process (driver or launcher worker), so they track in-process.
        session = trk.TrackingSession(dict(tracking, background=tracking.get("background") and not multirun),
                                      launch_dir, run_name, tags, parent_run_id)

    tracking_error = None
    try:
        check_attack_choice(overrides)
        plan = prepare_scenario(resolved, launch_dir, risk_name=str(hc.runtime.choices.get("risk") or "risk"))
        game_plan = prepare_game(resolved, plan)
        check_report(resolved.get("report") or {})
        check_objectives(objectives, plan)
        if out_dir.resolve() == launch_dir.resolve():
            raise ConfigError("hydra.run.dir", "empty or the launch directory itself: outputs would mix with the "
                                               "project's files; name a folder (the default is outputs/<date>/<time>)")
        if plan_only:
            show_plan(plan, game_plan, out_dir, run_name, overrides)
            return None
        if uses_ray(plan, game_plan):  # start or join Ray now: a bad ray.address fails before any run opens
            from .compute import ray_runtime

            ray_runtime(plan.ray_settings, announce=False)
        if session is not None:
            session.open()  # returns at once with a background helper
        estimated: dict[str, Any] = {}
        result = execute_scenario(plan, on_timed=lambda measured: estimated.update(
            log_estimate(plan, game_plan, measured)))
        written = write_run_outputs(result, out_dir, datasets=log_datasets, models=log_models,
                                    schema=plan.source.schema_yaml())
        # records/scores.parquet says who is exposed: logged only when asked for.
        local_scores = None if tracking.get("log_scores") else written.pop("records", None)
        game = None
        if game_plan is not None:
            game = play_game(plan, game_plan)
            written.update(write_game_outputs(game, out_dir))
        if session is not None:
            try:
                session.wait_open()
            except Exception as e:  # TrackingError: outputs are on disk; report at the end
                tracking_error, session = e, None
                log.error("%s; continuing without tracking, outputs go to %s", e, out_dir)

        summary = result.summary()
        if game is not None:
            summary["game"] = game.summary()
        summary["mlflow"] = {
            "run_id": session.run_id if session else None,
            "experiment_id": session.experiment_id if session else None,
            "tracking_uri": session.uri if session else None,
        }
        if tracking_error is not None:
            summary["mlflow"]["error"] = str(tracking_error)
        summary["verdict"] = decide(summary, plan.risk)
        # The estimate beside what the run took: the fits' stages, and the job's wall time
        # from run_job's start to here (Python's start-up before it and tracking after it excluded).
        measured = dict(result.timings)
        if game is not None:
            measured["game"] = game.seconds
        # cost.json, not summary.json: the same config gives a byte-identical summary anywhere.
        cost_doc = {**estimated, "measured": measured, "measured_seconds": time.perf_counter() - started}
        write_json(out_dir / "cost.json", cost_doc)
        write_json(out_dir / "summary.json", summary)
        (out_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(resolved))
        report_node = resolved.get("report") or {}
        if report_node.get("enabled"):
            written["report"] = write_release_record(out_dir, summary, plan, result, report_node)
        report = format_report(summary, plan.target_recipe.label(), str(out_dir), data_line=not synthetic,
                               local_scores=local_scores)
        if game is not None:
            report += "\n" + format_game(game)
        log.info("scenario %s\n%s", run_name, report)

        returned = objective_values(summary, objectives)  # a bad key fails the run here, before logging
        if session is not None:
            from .tracking import VERDICT_TAG, metrics_from_summary

            artifacts = [(out_dir / "summary.json", None), (out_dir / "cost.json", None)]
            if log_datasets:
                artifacts.append((out_dir / "resolved_config.yaml", "config"))
                if hc.output_subdir:
                    artifacts.append((out_dir / hc.output_subdir, "hydra"))
            else:  # the config as logged: named records' values redacted; Hydra's own copies stay local
                redacted = out_dir / "config_logged" / "resolved_config.yaml"
                redacted.parent.mkdir(exist_ok=True)
                redacted.write_text(OmegaConf.to_yaml(logged_config))
                artifacts.append((redacted, "config"))
            artifacts += [(path, artifact_dir) for artifact_dir, path in written.items()]
            artifacts.append((out_dir / f"{hc.job.name}.log", "logs"))
            _flush_logs()
            session.log_and_finish(params, {**metrics_from_summary(summary), **metrics_from_summary({"cost": cost_doc})},
                                   artifacts,
                                   datasets=plan.source.tracked_datasets(),
                                   tags={VERDICT_TAG: summary["verdict"]["outcome"]})
            session = None
    except BaseException:
        if session is not None:
            session.abandon()
        raise
    if tracking_error is not None:
        raise tracking_error
    return returned


def uses_ray(plan, game_plan) -> bool:
    """Whether the run sends fits to Ray: reference models (when an attack needs them) or the
    game's trials."""
    _, _, attacks = plan.build_estimators()
    reference = plan.reference_node.get("backend") == "ray" and any(a.needs_reference for a in attacks.values())
    return reference or (game_plan is not None and game_plan.backend == "ray")


def show_plan(plan, game_plan, out_dir: Path, run_name: str, overrides: list[str]) -> dict[str, Any]:
    """``plan_only=true``: what the run would fit and query, its sizes, memory and an estimate of
    its time from one timed fit; logged like the report (console and run.log) and written to
    ``plan.json``. Nothing else is fitted, no MLflow run is opened."""
    from . import cost
    from .outputs import write_json

    log.info("plan %s: timing one fit (plan_only=true: nothing else is fitted, nothing is tracked) ...", run_name)
    work, timing, total = cost.plan_and_time(plan, game_plan)
    doc = cost.plan_document(work, timing, total, scenario=run_name, overrides=overrides, plan_only=True,
                             output_dir=str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "plan.json", doc)
    text = cost.format_plan(work, timing, total, extra=[("plan.json", str(out_dir / "plan.json"))])
    log.info("plan %s\n%s", run_name, text)
    return doc


def log_estimate(plan, game_plan, measured: Mapping[str, Any]) -> dict[str, Any]:
    """A normal run's estimate, from its own target (or shadow) fit: one INFO line, and the
    estimate that cost.json keeps. An estimate never stops a run: a failure is a warning."""
    from . import cost

    try:
        work = cost.plan_work(plan, game_plan, measured.get("audit_nonmembers_scored"))
        timing = cost.measured_timing(plan, measured, game_plan)
        total = cost.estimate(work, timing)
    except Exception as e:  # noqa: BLE001
        log.warning("cost estimate: not available (%s: %s)", type(e).__name__, e)
        return {}
    log.info("%s", cost.estimate_line(work, timing, total))
    return cost.cost_summary(work, timing, total)


def model_card(plan, result) -> dict[str, Any]:
    """What the report says of the target: its family and hyperparameters, rows and accuracy."""
    from .checks import final_estimators

    model = result.models["target"]
    final = next(iter(final_estimators(model)), model)
    params = {}
    for k, v in sorted(final.get_params(deep=False).items()):
        if v is None or isinstance(v, (bool, int, float, str)):
            params[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in v):
            params[k] = list(v)
        else:
            params[k] = type(v).__name__
    return {"label": plan.target_recipe.label(), "family": type(final).__name__, "hyperparameters": params,
            "n_train": int(len(result.datasets["target_train"].y)),
            "train_accuracy": result.target_train_accuracy, "test_accuracy": result.target_test_accuracy,
            "saved": plan.target_recipe.path if plan.target_recipe.saved else None}


def check_attack_choice(overrides: list[str]) -> None:
    """``attack=[a,b,a]``: Hydra merges the repeat silently; say so instead."""
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") == "attack" and value.strip().startswith("["):
            names = [v.strip() for v in value.strip()[1:-1].split(",") if v.strip()]
            seen = {n for i, n in enumerate(names) if n in names[:i]}
            if seen:
                raise ConfigError("attack", f"{', '.join(sorted(seen))} listed more than once")


def predicted_keys(plan) -> set[str]:
    """The numeric run-summary keys a plan's run will have (for ``objectives``, checked before
    the run): the individual's, the headline attack's and the upper bound's metrics, the
    target's and the shadow model's."""
    from .metrics import attack_metrics

    out = {"target.train_accuracy", "shadow.train_mean_confidence", "shadow.test_mean_confidence",
           "shadow.train_accuracy", "shadow.test_accuracy", "shadow.n_train", "shadow.n_test"}
    if plan.audit_enabled:
        out.add("target.test_accuracy")
        names = [k for k in attack_metrics([1.0, 0.9], [0.1, 0.2], 0.5, plan.fpr_levels).summary()
                 if not k.endswith("_resolved")]
        _, _, attacks = plan.build_estimators()
        realistic = [a for a in attacks.values() if not a.needs_membership_labels]
        if realistic:
            out |= {f"attack.{k}" for k in names} | {"attack.reference_models"}
        if len(realistic) < len(attacks):
            out |= {f"upper_bound.{k}" for k in names}
    rec = plan.source.target_record
    if rec is not None:
        out |= {"target_record.score", "target_record.max_confidence", "target_record.membership_probability"}
    return out


def check_objectives(keys, plan) -> None:
    """``objectives`` name numbers the run will have: refused before any run opens."""
    if keys is None:
        return
    known = predicted_keys(plan)
    for i, key in enumerate(keys):
        if str(key) not in known:
            raise ConfigError(f"objectives.{i}", f"{key!r} will not be a number in this run's summary; choose from "
                                                 f"{', '.join(sorted(known))}")


def check_report(node: Mapping[str, Any]) -> None:
    """A browser named in ``report.chromium`` must exist (checked before anything runs); with
    none named and none on PATH, ``report.pdf=true`` is skipped with a warning."""
    if node.get("enabled") and node.get("pdf") and node.get("chromium"):
        from .report_files import find_chromium

        if find_chromium(str(node["chromium"])) is None:
            raise ConfigError("report.chromium", f"no runnable browser at {node['chromium']!r}; name a Chromium "
                                                 "binary, or null to look for one on PATH")


def write_release_record(out_dir: Path, summary: Mapping[str, Any], plan, result,
                         node: Mapping[str, Any]) -> Path:
    """report/report.html, report.json, manifest.json (and report.pdf on request): the folder."""
    from . import __version__
    from .report_files import write_report
    from .tracking import git_commit

    plots = out_dir / "plots"
    images = {"ROC curves of every attack": plots / "attack_roc.png"}
    for name in summary.get("attacks") or {}:
        images[f"Scores of {name}: members vs non-members"] = plots / f"scores_{name}.png"
    images["The attacker's shadow model: confidence on its members and non-members"] = (
        plots / "shadow_confidence_histogram.png")
    for path in sorted(plots.glob("game_*.png")):  # the individual's game: IN vs OUT scores per record
        images[f"The individual's game: {path.stem[len('game_'):]} (scores when in vs out)"] = path
    inputs: dict[str, Any] = {}
    for part in getattr(plan.source, "parts", ()):
        if part.source and Path(part.source).is_file():
            inputs[f"data:{part.context}"] = Path(part.source)
        else:  # a bundled table: digested as read
            inputs[f"data:{part.context}"] = {"source": part.source, "sha256": part.digest}
    if plan.target_recipe.saved:
        inputs["model"] = Path(plan.target_recipe.path)
    try:
        paths = write_report(out_dir, summary, model_card=model_card(plan, result), images=images, inputs=inputs,
                             resolved_config=out_dir / "resolved_config.yaml",
                             commit=git_commit(Path(__file__).resolve().parent), engine_version=__version__,
                             pdf=bool(node.get("pdf")), chromium=node.get("chromium"))
    except RuntimeError as e:  # printing the PDF failed; the HTML, JSON and manifest are on disk
        raise ConfigError("report.pdf", f"{e}; report.html and report.json are in {out_dir / 'report'} "
                                        "(report.pdf=false skips the PDF)") from None
    return paths["report"]


def config_hash(resolved: Mapping[str, Any]) -> str:
    """SHA-256 of everything that produces a run's results: the resolved scenario (all but
    ``hydra`` and ``tracking``) and the engine's version and git commit."""
    import hashlib
    import json

    from . import __version__
    from .tracking import git_commit

    payload = {k: v for k, v in resolved.items() if k not in ("hydra", "tracking")}
    payload["__engine__"] = {"version": __version__, "commit": git_commit(Path(__file__).resolve().parent)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def default_objectives(summary: Mapping[str, Any]) -> list[str]:
    """``objectives: null``: the individual's score when there is one, else the strongest
    attack's AUC as leakage (max(AUC, 1 - AUC): a reliably wrong attack leaks too), else nothing."""
    if (summary.get("target_record") or {}).get("score") is not None:
        return ["target_record.score"]
    return ["attack.auc_leakage"] if "attack" in summary else []


def objective_values(summary: Mapping[str, Any], keys: list[str] | None) -> float | list[float] | None:
    """What the task returns to a sweeper: the summary values named by ``objectives``.

    One key gives a float (Optuna's single objective), several a list (multi-objective);
    ``None`` takes :func:`default_objectives`.
    """
    if keys is None:
        keys = default_objectives(summary)
    values = []
    for i, key in enumerate(keys):
        section, _, name = str(key).partition(".")
        value = (summary.get(section) or {}).get(name) if isinstance(summary.get(section), dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            numeric = sorted(f"{s}.{k}" for s, d in summary.items() if isinstance(d, dict)
                             for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise ConfigError(f"objectives.{i}", f"{key!r} is not a number in the run summary; "
                                                 f"choose from {', '.join(numeric)}")
        values.append(float(value))
    if not values:
        return None
    return values[0] if len(values) == 1 else values
