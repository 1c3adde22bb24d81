"""The sweep summary's pieces on rows whose answers are known."""

from __future__ import annotations

import csv

from mia_engine.sweep_summary import (log_scale, pareto_front, parse_overrides, swept_parameters,
                                      write_sweep_summary)


def _row(name, params, metrics, status="FINISHED"):
    return {"run_name": name, "run_id": name + "-id", "status": status, "params": params, "metrics": metrics}


ROWS = [
    _row("a", {"model.gamma": "0.01", "data.seed": "1"}, {"attack/auc": 0.50, "target/test_accuracy": 0.80}),
    _row("b", {"model.gamma": "0.1", "data.seed": "1"}, {"attack/auc": 0.55, "target/test_accuracy": 0.90}),
    _row("c", {"model.gamma": "1", "data.seed": "1"}, {"attack/auc": 0.90, "target/test_accuracy": 0.85}),
    _row("d", {"model.gamma": "3", "data.seed": "1"}, {"attack/auc": 0.93, "target/test_accuracy": 0.70}),
    _row("e", {"model.gamma": "10", "data.seed": "1"}, {"attack/auc": 0.40, "target/test_accuracy": 0.95},
         status="FAILED"),
]


def test_parse_overrides_and_swept_parameters():
    assert parse_overrides("model.gamma=0.1 +shadow.sizes.a=3 experiment=x") == {
        "model.gamma": "0.1", "shadow.sizes.a": "3", "experiment": "x"}
    assert swept_parameters(ROWS) == ["model.gamma"]  # data.seed is the same everywhere


def test_pareto_front_minimise_leakage_maximise_accuracy():
    front = pareto_front(ROWS, ["attack/auc", "target/test_accuracy"], ["minimize", "maximize"])
    # a (0.50, 0.80) and b (0.55, 0.90) trade off; c and d are dominated by b; e failed.
    assert [r["run_name"] for r in front] == ["a", "b"]
    both_max = pareto_front(ROWS, ["attack/auc", "target/test_accuracy"], ["maximize", "maximize"])
    assert [r["run_name"] for r in both_max] == ["b", "c", "d"]


def test_log_scale_needs_two_decades_of_positive_values():
    assert log_scale([0.01, 0.1, 1, 3]) and not log_scale([1, 3, 10]) and not log_scale([0, 1, 1000])


def test_write_sweep_summary_files(tmp_path):
    out = write_sweep_summary(ROWS, tmp_path / "s", ["attack/auc", "target/test_accuracy"], ["minimize", "maximize"])
    with (out / "jobs.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["run_name"] for r in table] == ["a", "b", "c", "d", "e"]
    assert table[1]["model.gamma"] == "0.1" and float(table[1]["attack/auc"]) == 0.55
    assert "| b | FINISHED | 0.1 |" in (out / "jobs.md").read_text()
    with (out / "pareto_front.csv").open() as fh:
        assert [r["run_name"] for r in csv.DictReader(fh)] == ["a", "b"]
    for png in ("metrics_vs_model.gamma.png", "pareto_front.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_the_jobs_table_shows_each_jobs_recommendation(tmp_path):
    rows = [dict(r, verdict=v) for r, v in zip(ROWS, ["no_evidence", "needs_review", "do_not_release", None, None])]
    out = write_sweep_summary(rows, tmp_path / "s")
    with (out / "jobs.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["verdict"] for r in table] == ["no_evidence", "needs_review", "do_not_release", "", ""]
    assert "| a | FINISHED | no_evidence | 0.01 |" in (out / "jobs.md").read_text()
    # Jobs that made no recommendation (older runs): no verdict column at all.
    write_sweep_summary(ROWS, tmp_path / "t")
    assert "verdict" not in (tmp_path / "t" / "jobs.csv").read_text().splitlines()[0]
