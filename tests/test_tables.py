"""Real tables and real models: the table source, model families, saved models, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config, make_patients
from mia_engine.errors import ConfigError
from mia_engine.scenario import prepare_scenario, run_scenario
from mia_engine.scenario.game import play_game, prepare_game

FAST = ["tracking=none", "reference.cache=false"]


def _one_table(path, *extra):
    return compose_config([*FAST, "data=table", f"data.path={path}", "data.label=readmitted",
                           "data.id_column=patient_id", *extra])


def _files(d, *extra, population=True):
    out = [*FAST, "data=table", f"data.train_path={d / 'train.csv'}", f"data.test_path={d / 'test.csv'}",
           "data.label=readmitted", "data.id_column=patient_id", "data.missing=impute", *extra]
    if population:
        out.append(f"data.population_path={d / 'population.csv'}")
    return compose_config(out)


# ---- breast_cancer: a real table in one override ------------------------------------------------


def test_breast_cancer_single_run():
    r = run_scenario(compose_config([*FAST, "data=breast_cancer", "model=random_forest",
                                     "model.n_estimators=30"]))
    s = r.summary()
    assert s["labels"] == ["benign", "malignant"]
    card = s["data"]
    # 569 rows, patient 42 held out of the split and appended as a member: 284 + 142 + 142 = 568.
    assert card["rows"] == {"target": 284, "attacker": 142, "nonmembers": 142, "named": 1}
    # stratified: 357 benign, 211 malignant left after patient 42 (malignant); 178.5 / 105.5 rounds to
    assert card["class_counts"]["target"] == {"benign": 179, "malignant": 105}
    assert len(card["features"]) == 30 and set(card["features"].values()) == {"numeric"}
    assert card["sources"][0]["source"] == "sklearn.datasets.load_breast_cancer"
    assert s["target_record"]["name"] == "patient_42" and s["target_record"]["is_member"] is True
    assert s["attack"]["n_members"] == 285 and s["attack"]["n_nonmembers"] == 142
    assert 0.85 < s["target"]["test_accuracy"] <= 1.0 and s["target"]["train_accuracy"] == 1.0
    # every audited record's score, row ids from the table
    rs = r.record_scores
    assert len(rs["member"]) == 427 and rs["member"].sum() == 285 and "shadow_lr" in rs["scores"]
    assert rs["id"][284] == 42                       # the named record is the last member
    # same config, same numbers
    assert run_scenario(compose_config([*FAST, "data=breast_cancer", "model=random_forest",
                                        "model.n_estimators=30"])).summary() == s


def test_breast_cancer_suite_with_reference_models():
    r = run_scenario(compose_config([*FAST, "data=breast_cancer", "model=random_forest", "model.n_estimators=20",
                                     "attack=suite", "reference.n_models=8", "reference.n_jobs=1"]))
    assert set(r.attacks) == {"shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline",
                              "lira_population", "rmia_population", "worst_case"}
    for a in r.attacks.values():
        assert a.metrics.n_members == 285 and 0.3 < a.metrics.auc < 1.0
    # A forest memorises: the reference-model attacks see it.
    assert r.attacks["lira"].metrics.auc > 0.52
    assert r.reference["n_models"] == 8


def test_breast_cancer_game():
    cfg = compose_config([*FAST, "data=breast_cancer", "model=decision_tree", "evaluation=individual_game",
                          "evaluation.n_trials=12", "evaluation.n_jobs=1",
                          "+evaluation.records.patient_7={id: 7}"])
    plan = prepare_scenario(cfg)
    game = play_game(plan, prepare_game(cfg, plan))
    s = game.summary()
    assert set(s["records"]) == {"patient_42", "patient_7"}
    m = s["records"]["patient_42"]["shadow_lr"]
    assert m["n_in"] + m["n_out"] == 12 and m["n_in"] > 0 and m["n_out"] > 0
    # Each trial's target is a fresh draw of 284 training rows from the rows the attacker lacks.
    first = plan.source.trial_target(1)
    # 567 rows once both named patients are held out: a split of 283 training rows, redrawn
    assert len(first) == sum(plan.source.target_counts().values()) == 283 and not np.array_equal(first.X, plan.source.trial_target(2).X)
    assert np.array_equal(first.X, plan.source.trial_target(1).X)


# ---- a user's CSV: string labels, categories with gaps, ids ----------------------------------------


def test_missing_values_error_names_the_column(patients_csv):
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_one_table(patients_csv / "patients.csv"))
    assert e.value.key == "data.missing" and "'region' has 12 missing value(s)" in e.value.message


def test_csv_with_string_labels_categories_and_gaps(patients_csv):
    cfg = _one_table(patients_csv / "patients.csv", "data.missing=impute", "model=logistic_regression",
                     "data.target_record={name: p7, id: P0007}")
    plan = prepare_scenario(cfg)
    kinds = {f.name: f.kind for f in plan.source.features}
    assert kinds == {"age": "numeric", "smoker": "binary", "region": "categorical", "bmi": "numeric"}
    region = next(f for f in plan.source.features if f.name == "region")
    assert region.categories == ("east", "north", "south", "west")
    est = plan.target_recipe.build()
    names = [n for n, _ in est.steps]
    assert names == ["preprocess", "model"]          # one-hot, scaling and imputation in the Pipeline
    r = run_scenario(cfg)
    assert r.summary()["labels"] == ["No", "Yes"]
    # 400 rows less the named one: 200 + 100 + 100 (rounded), the named record a member
    assert r.summary()["data"]["rows"]["target"] + 1 == r.attacks["shadow_lr"].metrics.n_members
    assert r.target_record.name == "p7" and r.target_record.is_member


def test_schema_pinned_in_config_and_declared_categories(patients_csv):
    cfg = _one_table(patients_csv / "patients.csv", "data.missing=impute",
                     "+data.features.region={kind: categorical, categories: [west, east, north, south]}")
    plan = prepare_scenario(cfg)
    region = next(f for f in plan.source.features if f.name == "region")
    assert region.categories == ("west", "east", "north", "south")   # the declared code order
    with pytest.raises(ConfigError, match="data.features.smokes"):
        prepare_scenario(_one_table(patients_csv / "patients.csv", "data.missing=impute",
                                    "+data.features.smokes={kind: binary}"))


def test_unseen_category_at_audit_time_is_not_an_error(tmp_path):
    frame = make_patients(300, seed=3, missing=False)
    train, test = frame.iloc[:150].copy(), frame.iloc[150:].copy()
    test.loc[test.index[:5], "region"] = "islands"        # a category the model never saw
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    r = run_scenario(compose_config([*FAST, "data=table", f"data.train_path={tmp_path / 'train.csv'}",
                                     f"data.test_path={tmp_path / 'test.csv'}", "data.label=readmitted",
                                     "data.drop=[patient_id]", "model=logistic_regression"]))
    assert r.attacks["shadow_lr"].metrics.n_nonmembers == 75  # half the test rows went to the attacker


def test_two_file_layout(patients_csv):
    r = run_scenario(_files(patients_csv))
    rows = r.summary()["data"]["rows"]
    assert rows == {"target": 200, "attacker": 100, "nonmembers": 100, "named": 0}
    assert r.attacks["shadow_lr"].metrics.n_members == 200
    # Without population_path a stratified half of the test rows goes to the attacker.
    r2 = run_scenario(_files(patients_csv, population=False))
    assert r2.summary()["data"]["rows"] == {"target": 200, "attacker": 50, "nonmembers": 50, "named": 0}


def test_records_by_feature_values(patients_csv):
    cfg = _files(patients_csv, "data.target_record={name: someone, label: 'Yes', member: false, "
                               "features: {age: 70, smoker: 'yes', region: north, bmi: 31.5}}")
    r = run_scenario(cfg)
    assert r.target_record.name == "someone" and r.target_record.is_member is False
    with pytest.raises(ConfigError, match="data.target_record.features.region"):
        prepare_scenario(_files(patients_csv, "data.target_record={name: x, label: 'Yes', features: "
                                              "{age: 70, smoker: 'yes', region: mars, bmi: 31.5}}"))


@pytest.mark.parametrize("family", ["logistic_regression", "decision_tree", "random_forest",
                                    "hist_gradient_boosting", "knn", "mlp", "gaussian_nb", "svc", "svc_calibrated"])
def test_every_model_family_audits_a_table(patients_csv, family):
    extra = {"random_forest": ["model.n_estimators=20"], "hist_gradient_boosting": ["model.max_iter=20"],
             "mlp": ["model.max_iter=200"]}.get(family, [])
    cfg = _files(patients_csv, f"model={family}", *extra)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # an MLP that stops at max_iter says so
        r = run_scenario(cfg)
    m = r.attacks["shadow_lr"].metrics
    assert m.n_members == 200 and m.n_nonmembers == 100 and 0.0 <= m.auc <= 1.0
    assert 0.5 < r.target_train_accuracy <= 1.0


def test_preprocess_false_feeds_the_matrix(patients_csv, tmp_path):
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_files(patients_csv, "model=random_forest", "model.preprocess=false"))
    assert e.value.key == "model.preprocess"             # imputation needs the pipeline
    make_patients(200, seed=5, missing=False).to_csv(tmp_path / "clean.csv", index=False)
    cfg = _one_table(tmp_path / "clean.csv", "model=random_forest", "model.n_estimators=10")
    assert type(prepare_scenario(cfg).target_recipe.build()).__name__ == "Pipeline"     # one-hot for region
    plan = prepare_scenario(_one_table(tmp_path / "clean.csv", "model=random_forest", "model.n_estimators=10",
                                       "model.preprocess=false"))
    assert type(plan.target_recipe.build()).__name__ == "RandomForestClassifier"    # codes as they are
    assert run_scenario(_one_table(tmp_path / "clean.csv", "model=random_forest", "model.n_estimators=10",
                                   "model.preprocess=false")).attacks["shadow_lr"].metrics.n_members == 100


# ---- saved models ----------------------------------------------------------------------------------


def test_saved_skops_model_is_audited_as_it_is(patients_csv, saved_forest):
    import skops.io as sio

    cfg = _files(patients_csv, "model=saved", f"model.path={saved_forest}",
                 "data.target_record={name: p3, id: P0003, member: true}")
    r = run_scenario(cfg)
    # The target's answer for the record is the researcher's model's own answer on its row.
    trusted = sio.get_untrusted_types(file=saved_forest)
    model = sio.load(saved_forest, trusted=trusted)
    row = pd.read_csv(patients_csv / "train.csv").set_index("patient_id").loc[["P0003"]]
    expected = model.predict_proba(row.drop(columns=["readmitted"]))[0]
    order = [list(model.classes_).index(v) for v in ("No", "Yes")]
    np.testing.assert_allclose(r.target_record.probabilities, expected[order])
    # The saved model was trained on all of train.csv: its training accuracy is the forest's.
    assert r.target_train_accuracy > 0.95
    assert r.summary()["data"]["layout"] == "files"


def test_saved_joblib_model_needs_trust(patients_csv, saved_forest, tmp_path, caplog):
    import joblib
    import skops.io as sio

    model = sio.load(saved_forest, trusted=sio.get_untrusted_types(file=saved_forest))
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_files(patients_csv, "model=saved", f"model.path={path}"))
    assert e.value.key == "model.trust_pickle"
    r = run_scenario(_files(patients_csv, "model=saved", f"model.path={path}", "model.trust_pickle=true"))
    assert r.attacks["shadow_lr"].metrics.n_members == 200
    assert "runs code" in caplog.text


def test_saved_model_needs_the_training_rows(patients_csv, saved_forest):
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_one_table(patients_csv / "patients.csv", "data.missing=impute", "model=saved",
                                    f"model.path={saved_forest}"))
    assert e.value.key == "model.path" and "train_path" in e.value.message


# ---- bad input: one line naming the key, file or column ----------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


BAD = "id,x,color,y\n1,0.5,red,a\n2,1.5,blue,b\n3,2.5,red,a\n4,0.1,blue,b\n5,0.2,red,a\n6,0.9,blue,b\n7,1.1,red,a\n8,2.0,blue,b\n"


@pytest.mark.parametrize("make,extra,key,words", [
    (lambda d: d / "nope.csv", [], "data.path", "no such file"),
    (lambda d: _write(d / "empty.csv", ""), [], "data.path", "is empty"),
    (lambda d: _write(d / "header.csv", "id,x,color,y\n"), [], "data.path", "no rows"),
    (lambda d: _write(d / "t.txt", BAD), [], "data.path", "extension"),
    (lambda d: d, [], "data.path", "directory"),
    (lambda d: _write(d / "t.csv", BAD), ["data.label=outcome"], "data.label", "no column 'outcome'"),
    (lambda d: _write(d / "t.csv", BAD.replace(",b\n", ",a\n")), [], "data.label", "one class"),
    (lambda d: _write(d / "t.csv", BAD), ["data.drop=[name]"], "data.drop.0", "no column 'name'"),
    (lambda d: _write(d / "t.csv", BAD), ["data.id_column=pid"], "data.id_column", "no column 'pid'"),
    (lambda d: _write(d / "t.csv", BAD.replace("2.5", "abc")), ["+data.features.x={kind: numeric}"],
     "data.features.x", "text in a numeric column: row 2"),
    (lambda d: _write(d / "t.csv", BAD.replace("2,1.5", "2,oops")), [], "data.features.x",
     "text in a numeric column: row 1 (id=2) holds 'oops'"),
    (lambda d: _write(d / "t.csv", BAD), ["data.split.target=6", "data.split.population=4"], "data.split",
     "the table has 8"),
    (lambda d: _write(d / "t.csv", BAD), ["data.target_record={name: z, id: 99}"], "data.target_record.id",
     "no row has id=99"),
    (lambda d: _write(d / "t.csv", BAD.replace("3,2.5", "2,2.5")), ["data.target_record={name: z, id: 2}"],
     "data.target_record.id", "2 rows have id=2"),
    (lambda d: _write(d / "t.csv", BAD), ["data.missing=maybe"], "data.missing", "choose error or impute"),
])
def test_bad_tables(tmp_path, make, extra, key, words):
    path = make(tmp_path)
    cfg = compose_config([*FAST, "data=table", f"data.path={path}", "data.label=y", "data.id_column=id",
                          "data.split.target=0.5", "data.split.population=0.25", "data.split.nonmembers=0.25",
                          *extra])
    with pytest.raises(ConfigError) as e:
        prepare_scenario(cfg)
    assert e.value.key == key and words in e.value.message, str(e.value)


def test_train_and_test_with_other_columns(tmp_path, patients_csv):
    pd.read_csv(patients_csv / "test.csv").drop(columns=["bmi"]).to_csv(tmp_path / "test.csv", index=False)
    cfg = compose_config([*FAST, "data=table", f"data.train_path={patients_csv / 'train.csv'}",
                          f"data.test_path={tmp_path / 'test.csv'}", "data.label=readmitted"])
    with pytest.raises(ConfigError) as e:
        prepare_scenario(cfg)
    assert e.value.key == "data.test_path" and "missing bmi" in e.value.message


@pytest.mark.parametrize("change,key,words", [
    ("classes", "model.path", "classes"),
    ("features", "model.path", "region"),
    ("no_proba", "model", "predict_proba"),
    ("untrusted", "model.path", "trusted list"),
    ("missing", "model.path", "no such file"),
])
def test_bad_saved_models(tmp_path, patients_csv, change, key, words):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    train = pd.read_csv(patients_csv / "train.csv").dropna()
    X = train[["age", "bmi"]]
    y = train["readmitted"]
    path = tmp_path / "m.skops"
    if change == "classes":
        model = LogisticRegression().fit(train[["age", "smoker", "region", "bmi"]].assign(
            smoker=lambda f: (f.smoker == "yes").astype(int), region=lambda f: f.region.factorize()[0]),
            y.map({"Yes": "yes", "No": "no"}))
    elif change == "features":
        model = LogisticRegression().fit(X, y)
    elif change == "no_proba":
        model = SVC().fit(train[["age", "bmi"]].assign(smoker=0, region=0), y)
        model.feature_names_in_ = np.asarray(["age", "smoker", "region", "bmi"], dtype=object)
    else:
        model = make_pipeline(FunctionTransformer(_drop_text), LogisticRegression()).fit(
            train[["age", "smoker", "region", "bmi"]], y)
    if change != "missing":
        sio.dump(model, path)
    cfg = _files(patients_csv, "model=saved", f"model.path={path}")
    with pytest.raises(ConfigError) as e:
        prepare_scenario(cfg)
    assert e.value.key == key and words in e.value.message, str(e.value)


def _drop_text(frame):
    return frame[["age", "bmi"]]


def test_parquet_tables_read_like_csv(tmp_path, patients_csv):
    frame = pd.read_csv(patients_csv / "patients.csv")
    frame.to_parquet(tmp_path / "patients.parquet", index=False)
    a = run_scenario(_one_table(patients_csv / "patients.csv", "data.missing=impute", "model=logistic_regression"))
    b = run_scenario(_one_table(tmp_path / "patients.parquet", "data.missing=impute", "model=logistic_regression"))
    assert a.summary()["attack"] == b.summary()["attack"]
    assert b.summary()["data"]["sources"][0]["source"].endswith("patients.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_one_table(tmp_path / "junk.parquet"))
    assert e.value.key == "data.path" and "cannot read it as parquet" in e.value.message


def test_saved_target_with_another_attacker_recipe(patients_csv, saved_forest):
    cfg = _files(patients_csv, "model=saved", f"model.path={saved_forest}", "model@shadow.model=logistic_regression")
    plan = prepare_scenario(cfg)
    assert plan.target_recipe.saved and type(plan.shadow_recipe.build()[-1]).__name__ == "LogisticRegression"
    r = run_scenario(cfg)
    assert type(r.models["shadow"][-1]).__name__ == "LogisticRegression"
    # By default the attacker clones the saved model's recipe.
    default = prepare_scenario(_files(patients_csv, "model=saved", f"model.path={saved_forest}"))
    assert default.shadow_recipe is default.target_recipe
    assert type(default.shadow_recipe.build().estimator[-1]).__name__ == "RandomForestClassifier"


def test_table_sources_refuse_population_only_settings(patients_csv):
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_files(patients_csv, "data@shadow.population=cancer_patients_rough"))
    assert e.value.key == "shadow.population"
    with pytest.raises(ConfigError) as e:
        prepare_scenario(_files(patients_csv, "+shadow.sizes.a=3"))
    assert e.value.key == "shadow.sizes"
    with pytest.raises(ConfigError) as e:
        prepare_scenario(compose_config([*FAST, "data=table", f"data.path={patients_csv / 'patients.csv'}"]))
    assert e.value.key == "data.label"
    with pytest.raises(ConfigError) as e:
        prepare_scenario(compose_config([*FAST, "data=table", "data.label=readmitted"]))
    assert e.value.key == "data.path" and "name one table" in e.value.message


def test_game_with_a_saved_model_refits_its_recipe(patients_csv, saved_forest):
    cfg = _files(patients_csv, "model=saved", f"model.path={saved_forest}", "data.target_record.id=P0003",
                 "data.target_record.name=p3", "evaluation=individual_game", "evaluation.n_trials=6",
                 "evaluation.n_jobs=1", "+evaluation.records.p250={id: P0250}")
    plan = prepare_scenario(cfg)
    game = play_game(plan, prepare_game(cfg, plan))
    s = game.summary()
    assert set(s["records"]) == {"p3", "p250"}
    assert all(m["shadow_lr"]["n_in"] + m["shadow_lr"]["n_out"] == 6 for m in s["records"].values())
    # P0250 came from the test file: it is held out of the audit's non-members too.
    assert plan.source.rows(plan.source.split.nonmembers).ids.tolist().count("P0250") == 0


def test_probe_records_of_a_table(patients_csv):
    r = run_scenario(_files(patients_csv, "+data.probe_records.older_smoker={features: {age: 80, smoker: 'yes', "
                                          "region: north, bmi: 30.0}}", "+data.probe_records.p9={id: P0009}"))
    probes = {p.name: p for p in r.probe_records}
    assert set(probes) == {"older_smoker", "p9"} and all(sum(p.probabilities) == pytest.approx(1) for p in
                                                          probes.values())
    assert probes["older_smoker"].label is None and probes["p9"].label in (0, 1)


def test_a_table_without_a_named_record_returns_the_audit_auc(patients_csv):
    from mia_engine.app import default_objectives, objective_values

    r = run_scenario(_files(patients_csv))
    s = r.summary()
    assert "target_record" not in s and default_objectives(s) == ["attack.auc_leakage"]
    assert objective_values(s, None) == s["attack"]["auc"]
    tutorial = run_scenario(compose_config(FAST)).summary()
    assert objective_values(tutorial, None) == tutorial["target_record"]["score"]
