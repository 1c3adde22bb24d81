"""The run's cost, before it runs (mia_engine.cost): the fits of every stage, the sizes a run then
uses, the memory, a time estimate from one timed fit; `plan_only=true` prints the plan, writes
plan.json and fits, caches and tracks nothing."""

from __future__ import annotations

import json

import pytest

from conftest import compose_config, run_cli
from mia_engine import cost
from mia_engine.scenario import execute_scenario, prepare_scenario
from mia_engine.scenario.game import prepare_game

SMALL = ["tracking=none", "reference.cache=false", "reference.n_models=8"]


def _plan(overrides, tmp_path=None):
    cfg = compose_config([*SMALL, *overrides])
    plan = prepare_scenario(cfg, tmp_path)
    return plan, prepare_game(cfg, plan)


def _fits(work: cost.Work) -> dict[str, int]:
    return {s.key: s.fits for s in work.stages}


def test_the_suite_and_the_game_list_every_fit_per_stage():
    plan, game = _plan(["attack=suite"])
    work = cost.plan_work(plan, game)
    assert _fits(work) == {"target": 1, "shadow": 1, "reference_candidates": 8, "reference_population": 8,
                           "worst_case": 25}
    assert work.fits == 1 + 1 + 2 * 8 + 25
    pools = work.sizes["reference_pools"]
    # Halves of a pool up to twice the target's size, the target's size from a larger one.
    assert pools["population"] == {"pool_rows": 200, "query_rows": 600, "population_in_pool": True, "halves": True,
                                   "train_rows_per_model": 100}
    # The scored records (200 members, 200 fresh) alone: halves of 200, the target's size.
    assert pools["candidates"] == {"pool_rows": 400, "query_rows": 600, "population_in_pool": False, "halves": True,
                                   "train_rows_per_model": 200}
    assert {k for k, _, _ in work.memory} >= {"reference.n_models", "shadow.size_per_class", "audit.n_nonmembers"}
    assert all(b > 0 for _, _, b in work.memory)
    assert work.workers["reference"]["backend"] == "threading" and work.workers["reference"]["workers"] >= 1

    # The game learns the attacker again (records as candidates) and fits one target per trial.
    plan, game = _plan(["attack=[shadow_lr,lira]", "evaluation=individual_game", "evaluation.n_trials=12",
                        "evaluation.backend=threading", "evaluation.n_jobs=1"])
    work = cost.plan_work(plan, game)
    fits = _fits(work)
    assert fits["game_trials"] == 12 and fits["game_reference_candidates"] == 8 and fits["reference_candidates"] == 8
    assert fits["game_target"] == 1 and fits["game_shadow"] == 1
    g = work.sizes["game"]
    assert g["trials"] == 12 and g["records"] == len(game.records)
    # The game's candidates pool: its few records join the attacker's rows (pool_population=auto).
    assert g["reference_pools"]["candidates"]["pool_rows"] == 200 + len(game.records)
    assert work.workers["evaluation"]["workers"] == 1
    # Replaying one trial: one fit.
    plan, game = _plan(["evaluation=individual_game", "evaluation.replay_trial=3"])
    assert cost.plan_work(plan, game).stage("game_trials").fits == 1


def test_sizes_match_the_run_and_the_estimate_is_sane(quiet_sklearn):
    """plan_only's sizes are the run's own (drawn alike), and the estimate lies within 10x of what
    the fits took (a loose bound: timings on a shared machine vary)."""
    plan, _ = _plan(["attack=[lira,lira_population]", "reference.n_models=16"])
    work, timing, total = cost.plan_and_time(plan)
    assert total > 0 and all(s.seconds is not None and s.seconds > 0 for s in work.stages if s.fits)
    timed = timing.fits["shadow"][0]
    assert timed.rows == work.stage("reference_candidates").train_rows and timed.fit_seconds > 0
    assert "one timed fit" in timing.basis

    measured = {}
    result = execute_scenario(plan, on_timed=measured.update)
    s = work.sizes
    assert s["target_rows"] == len(result.datasets["target_train"].y)
    assert s["shadow_train_rows"] == result.summary()["shadow"]["n_train"]
    assert s["audit_nonmembers_scored"] == result.audit_info["n_nonmembers"] == measured["audit_nonmembers_scored"]
    for pool, info in result.reference["pools"].items():
        assert s["reference_pools"][pool]["pool_rows"] == info["pool_rows"]
        assert s["reference_pools"][pool]["population_in_pool"] == info["population_in_pool"]
    actual = sum(result.timings[k] for k in ("target_fit", "shadow_fits", "reference"))
    assert actual / 10 < total < actual * 10, (total, actual, result.timings)

    # A normal run's estimate: from its own target fit, reported before the reference models.
    assert measured["target_fit"]["rows"] == s["target_rows"] and measured["target_fit"]["query_rows"] > 0
    from mia_engine.app import log_estimate

    summary_cost = log_estimate(plan, None, measured)
    assert summary_cost["estimated_seconds"] > 0
    assert set(summary_cost["estimated"]) == {"target", "shadow", "reference_candidates", "reference_population"}
    assert actual / 10 < summary_cost["estimated_seconds"] < actual * 10
    assert "from the target's fit" in summary_cost["estimate_basis"]


def test_the_plan_reads_as_lines_and_as_json(quiet_sklearn):
    plan, _ = _plan(["attack=suite"])
    work, timing, total = cost.plan_and_time(plan)
    text = cost.format_plan(work, timing, total)
    for word in ("reference_candidates", "reference_population", "worst_case", "memory", "time",
                 "estimate from one timed fit", "available"):
        assert word in text, text
    assert work.stage("worst_case").seconds > 0  # its classifier timed on stand-in features
    doc = json.loads(json.dumps(cost.plan_document(work, timing, total)))  # plain JSON
    assert doc["schema"] == cost.PLAN_SCHEMA and doc["fits"] == work.fits
    assert doc["estimated_seconds"] == pytest.approx(sum(st["seconds"] for st in doc["stages"]))
    assert doc["memory"]["total_bytes"] == sum(p["bytes"] for p in doc["memory"]["parts"]) > 0

    plan, game = _plan(["attack=[lira,lira_population]", "evaluation=individual_game", "evaluation.n_trials=4",
                        "evaluation.backend=threading"])
    work, timing, total = cost.plan_and_time(plan, game)
    assert {st.key: st.fits for st in work.stages}["game_trials"] == 4
    line = cost.estimate_line(work, timing, total)
    assert line.startswith("cost estimate: 8 reference models x 2 pools ~ ") and "game 4 trials ~ " in line, line


def test_ray_workers_are_counted_without_starting_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    w, where = cost.workers_for({"backend": "ray", "n_jobs": -1}, 64, {"num_cpus": 3, "cpus_per_task": 1})
    assert w == 3 and "not started" in where
    w, where = cost.workers_for({"backend": "ray", "n_jobs": -1}, 64, {"num_cpus": 3, "cpus_per_task": 2})
    assert w == 1
    w, where = cost.workers_for({"backend": "ray"}, 64, {"address": "ray://head:10001"})
    assert w is None and "unknown" in where
    # A cluster not joined yet: the reference stage's workers are unknown, its time is CPU time.
    plan, _ = _plan(["attack=[lira]", "reference.backend=ray", "ray.address=ray://head:10001"])
    work = cost.plan_work(plan)
    assert [(s.key, s.workers) for s in work.stages] == [("target", 1), ("shadow", 1), ("reference_candidates", None)]
    timed = [cost.FitTime("SVC", 200, 0.01, 0.01, 600, 0.01, 0.01)]
    cost.estimate(work, cost.Timing("t", {"target": timed, "shadow": timed}))
    assert cost.unknown_cluster(work)
    assert "of CPU time" in cost.format_plan(work, None, 1.0)


@pytest.mark.e2e
def test_plan_only_prints_writes_plan_json_and_fits_caches_and_tracks_nothing(tmp_path):
    """`python run.py plan_only=true` with the default tracking (the embedded SQLite store in the
    launch directory) and the reference cache on: exit 0, plan.json, and no run, no cache entry,
    no model, no summary."""
    proc = run_cli(["attack=[shadow_lr,lira]", "reference.n_models=8", "plan_only=true"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "reference_candidates" in proc.stdout and "plan.json" in proc.stdout, proc.stdout
    plans = list((tmp_path / "outputs").glob("**/plan.json"))
    assert len(plans) == 1
    out = plans[0].parent
    doc = json.loads(plans[0].read_text())
    assert doc["plan_only"] is True and doc["estimated_seconds"] > 0
    assert {st["key"]: st["fits"] for st in doc["stages"]} == {"target": 1, "shadow": 1, "reference_candidates": 8}
    assert not (out / "summary.json").exists() and not (out / "models").exists() and not (out / "report").exists()
    assert list(tmp_path.glob(".mia_cache/reference/*.npz")) == []
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # no store touched


@pytest.mark.e2e
def test_a_normal_run_logs_its_estimate_and_keeps_it_beside_the_measured_time_in_cost_json(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(["tracking=none", "reference.cache=false", "reference.n_models=8", "attack=[shadow_lr,lira]",
                    "report.enabled=false", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "cost estimate: 8 reference models ~ " in line]
    assert len(lines) == 1 and "from the target's fit" in lines[0], proc.stdout
    # Logged once, before the reference models are trained.
    assert proc.stdout.index("cost estimate:") < proc.stdout.index("training 8 reference models")
    summary = json.loads((out / "summary.json").read_text())
    assert "cost" not in summary  # timings stay out of the summary: the same config, the same bytes
    c = json.loads((out / "cost.json").read_text())
    assert c["estimated_seconds"] > 0 and set(c["estimated"]) == {"target", "shadow", "reference_candidates"}
    assert c["measured"]["reference"] > 0 and c["measured_seconds"] >= c["measured"]["scenario"] > 0
    assert summary["reference"]["pools"]["candidates"]["pool_rows"] == 580  # 200 + 180 non-members + 200 population


@pytest.mark.e2e
def test_a_sweep_of_plans_opens_no_run(tmp_path):
    proc = run_cli(["-m", "plan_only=true", "model.gamma=1,3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(tmp_path.glob("multirun/*/*/*/plan.json"))) == 2
    assert not list(tmp_path.glob("multirun/*/*/*/summary.json"))
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
