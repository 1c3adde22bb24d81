"""The individual's privacy game: known answers, replay, determinism, the tutorial's mitigation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import compose_config, run_cli
from mia_engine.errors import ConfigError
from mia_engine.scenario.game import play_game, prepare_game
from mia_engine.scenario import prepare_scenario
from test_attacks import MEMORISER, NOISE


def _game(overrides=(), data=None, model=None):
    cfg = compose_config(["tracking=none", "evaluation=individual_game", *overrides])
    if data is not None:
        cfg["data"] = data
    if model is not None:
        cfg["model"] = dict(model)
    plan = prepare_scenario(cfg)
    return play_game(plan, prepare_game(cfg, plan))


NOISE_GAME = ["evaluation.n_trials=60", "shadow.size_per_class=60", "evaluation.n_jobs=1",
              "evaluation.records=null", "attack=[loss_threshold,shadow_lr]",
              "attack.shadow_lr.features=[true_label_probability]"]


def test_a_memorising_target_gives_the_record_away():
    g = _game(NOISE_GAME, NOISE, MEMORISER)
    for attack in ("loss_threshold", "shadow_lr"):
        m = g.metrics["someone"][attack]
        assert m.auc > 0.95 and m.n_members + m.n_nonmembers == 60
        s = g.summary()["records"]["someone"][attack]
        assert s["accuracy"] >= 0.85 and s["accuracy_ci_low"] > 0.7 and s["epsilon_lower_bound"] > 1.0


def test_a_target_that_ignores_its_input_gives_nothing_away():
    uniform = {"_target_": "sklearn.dummy.DummyClassifier", "strategy": "uniform"}
    g = _game(NOISE_GAME, NOISE, uniform)
    for attack in ("loss_threshold", "shadow_lr"):
        m = g.metrics["someone"][attack]
        assert m.auc == pytest.approx(0.5, abs=1e-12) and m.epsilon_lower_bound == 0.0
        s = g.summary()["records"]["someone"][attack]
        # Chance, and the interval says so.
        assert s["accuracy_ci_low"] < 0.5 < s["accuracy_ci_high"]


def test_same_config_same_trials_and_any_trial_replays_alone():
    a = _game(["evaluation.n_trials=12", "evaluation.n_jobs=1"])
    b = _game(["evaluation.n_trials=12", "evaluation.n_jobs=2", "evaluation.backend=loky"])
    assert a.trials == b.trials
    assert len(a.trials) == 12 * 3 and len({r["data_seed"] for r in a.trials}) == 12
    # A longer game begins with the same trials: trial t depends only on the root seed and t.
    longer = _game(["evaluation.n_trials=20", "evaluation.n_jobs=1"])
    assert longer.trials[: len(a.trials)] == a.trials
    alone = _game(["evaluation.n_trials=12", "evaluation.replay_trial=7"])
    assert alone.trials == [r for r in a.trials if r["trial"] == 7]
    assert "records" not in alone.summary() and alone.summary()["replayed_trial"] == 7
    other_seed = _game(["evaluation.n_trials=12", "evaluation.n_jobs=1", "evaluation.seed=5"])
    assert [r["score"] for r in other_seed.trials] != [r["score"] for r in a.trials]


def test_reference_attacks_play_too():
    g = _game(["evaluation.n_trials=16", "evaluation.n_jobs=1", "attack=[lira,rmia_offline]",
               "reference.n_models=8", "reference.cache=false"])
    assert set(g.metrics["former_prime_minister"]) == {"lira", "rmia_offline"}
    # The attacker's knowledge was learned once: every trial scores with the same fitted attack.
    assert {r["attack"] for r in g.trials} == {"lira", "rmia_offline"}


@pytest.fixture(scope="module")
def tutorial_games():
    return {g: _game([f"model.gamma={g}", "evaluation.n_trials=300", "evaluation.records=null"]) for g in (3, 0.1)}


def test_the_mitigation_is_a_statistic(tutorial_games):
    """A plain simulation of this game (tutorial attack, shadow model once, 300 trials) gave
    the MP an AUC of 0.94-0.95 at gamma=3 and 0.60-0.69 at gamma=0.1."""
    hi = tutorial_games[3].summary()["records"]["former_prime_minister"]["shadow_lr"]
    lo = tutorial_games[0.1].summary()["records"]["former_prime_minister"]["shadow_lr"]
    assert hi["n_in"] + hi["n_out"] == 300
    assert 0.93 <= hi["auc"] <= 0.98 and hi["auc_ci_low"] <= 0.95
    assert 0.60 <= lo["auc"] <= 0.69
    # Lower gamma helps, but the attacker still beats a coin flip for this person.
    assert lo["auc_ci_low"] > 0.5 and lo["auc_ci_high"] < hi["auc_ci_low"]
    # The single run's score is the tutorial's.
    assert round(hi["single_run_score"], 2) == 0.80 and round(lo["single_run_score"], 2) == 0.48


def test_several_records_are_ranked():
    g = _game(["evaluation.n_trials=40", "evaluation.n_jobs=1"])
    ranking = g.summary()["ranking"]
    assert set(ranking) == {"former_prime_minister", "typical_responder", "unusual_responder"}
    aucs = [ranking[r]["auc"] for r in sorted(ranking, key=lambda r: ranking[r]["rank"])]
    assert aucs == sorted(aucs, reverse=True)


@pytest.mark.parametrize("overrides,key,fragment", [
    (["evaluation.n_trials=1"], "evaluation.n_trials", "at least 2"),
    (["evaluation.inclusion_probability=1.0"], "evaluation.inclusion_probability", "strictly between"),
    (["evaluation.inclusion_probability=0"], "evaluation.inclusion_probability", "strictly between"),
    (["~evaluation.records.typical_responder.features.age"], "evaluation.records.typical_responder.features.age",
     "missing"),
    (["evaluation.records.typical_responder.features.bmi_group=9"],
     "evaluation.records.typical_responder.features.bmi_group", "outside"),
    (["evaluation.records.typical_responder.label=4"], "evaluation.records.typical_responder.label", "not a class"),
    (["evaluation.replay_trial=100"], "evaluation.replay_trial", "0 to 99"),
    (["attack=worst_case"], "attack.worst_case", "leave it out of the game"),
    (["evaluation.mode=tournament"], "evaluation.mode", "unknown evaluation mode"),
])
def test_game_bad_input_names_the_key(overrides, key, fragment):
    cfg = compose_config(["tracking=none", "evaluation=individual_game", *overrides])
    with pytest.raises(ConfigError) as err:
        prepare_game(cfg, prepare_scenario(cfg))
    assert err.value.key == key and fragment in err.value.message


@pytest.mark.e2e
def test_game_run_logs_to_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = run_cli(["evaluation=individual_game", "evaluation.n_trials=20", f"tracking.uri={uri}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = next((tmp_path / "outputs").glob("*/*"))
    summary = json.loads((out / "summary.json").read_text())
    game = summary["game"]["records"]["former_prime_minister"]["shadow_lr"]
    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow"]["run_id"])
    m = run.data.metrics
    assert m["game/records/former_prime_minister/shadow_lr/auc"] == pytest.approx(game["auc"])
    assert m["game/records/former_prime_minister/shadow_lr/accuracy_ci_low"] == pytest.approx(game["accuracy_ci_low"])
    assert m["game/ranking/former_prime_minister/rank"] >= 1
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "game")}
    assert {"game/trials.csv", "game/ranking.csv", "game/ranking.md"} <= arts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/game_former_prime_minister_shadow_lr.png" in plots
    with (out / "game" / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 * 3 and set(rows[0]) == {"trial", "data_seed", "record", "included", "attack", "score",
                                                    "predicted_member"}
    # Scores in the CSV are exact (repr): the table replays.
    mp = [r for r in rows if r["record"] == "former_prime_minister"]
    assert np.isfinite([float(r["score"]) for r in mp]).all()


@pytest.mark.e2e
def test_game_bad_input_is_one_line(tmp_path):
    proc = run_cli(["tracking=none", "evaluation=individual_game", "evaluation.n_trials=1"], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: evaluation.n_trials: "), proc.stderr


def test_a_long_game_reports_progress_and_time_left(caplog):
    import logging

    from mia_engine.compute import Progress
    from mia_engine.scenario.game import _chunks

    with caplog.at_level(logging.INFO, logger="mia_engine"):
        p = Progress(1000, "individual game", "trials")
        p.start -= Progress.QUIET_SECONDS  # as if the first trials took that long
        for _ in range(100):
            p.done(10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 9 and lines[0].startswith("individual game: 100/1000 trials (10%)")
    assert all("left" in line for line in lines)
    # Chunks: every trial once, at most 1% of a large game each.
    chunks = _chunks(list(range(100_000)), 2)
    assert sorted(t for c in chunks for t in c) == list(range(100_000)) and max(map(len, chunks)) == 1000
