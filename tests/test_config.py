"""Every config file composes; schemas reject wrong types and unknown keys; scenario-level checks."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from conftest import CONF, compose_config
from mia_engine.errors import ConfigError
from mia_engine.scenario import prepare_scenario

GROUP_FILES = sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml"))


def test_every_group_has_files():
    groups = {g for g, _ in GROUP_FILES}
    assert {"data", "model", "shadow", "attack", "reference", "audit", "tracking", "experiment"} <= groups
    assert {"shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline", "worst_case",
            "suite"} <= {n for g, n in GROUP_FILES if g == "attack"}


def _kind(group, name):
    import yaml

    return (yaml.safe_load((CONF / group / f"{name}.yaml").read_text()) or {}).get("kind")


@pytest.mark.parametrize("group,name", GROUP_FILES, ids=[f"{g}={n}" for g, n in GROUP_FILES])
def test_every_config_file_composes_and_validates(group, name, patients_csv, saved_forest):
    files = ["data=table", f"data.train_path={patients_csv / 'train.csv'}", f"data.test_path={patients_csv / 'test.csv'}",
             "data.label=readmitted", "data.id_column=patient_id", "data.missing=impute"]
    if group == "experiment":
        overrides = [f"experiment={name}"]
    elif group == "data" and _kind(group, name) == "population":
        # A population file serves as the target's population and as the attacker's.
        overrides = [f"data={name}", f"data@shadow.population={name}"]
    elif group == "data" and name == "table":
        overrides = files
    elif group == "model" and name == "saved":
        overrides = files + ["model=saved", f"model.path={saved_forest}"]
    else:
        overrides = [f"{group}={name}"]
    cfg = compose_config(overrides)
    plan = prepare_scenario(cfg)
    assert plan.source.feature_names


def test_defaults_are_the_tutorial():
    cfg = compose_config()
    assert cfg["data"]["name"] == "cancer_patients" and cfg["data"]["seed"] == 12345
    assert cfg["model"]["gamma"] == 3.0 and cfg["model"]["random_state"] == 12
    assert cfg["shadow"]["test_size"] == 0.5 and cfg["shadow"]["split_seed"] == 1234
    assert cfg["shadow"]["population"] is None and cfg["shadow"]["model"] is None
    assert list(cfg["attack"]) == ["shadow_lr"] and cfg["attack"]["shadow_lr"]["features"] == ["max_probability"]
    assert cfg["tracking"]["enabled"] is True


def test_suite_and_lists_select_several_attacks():
    suite = compose_config(["attack=suite"])["attack"]
    assert list(suite) == ["shadow_lr", "loss_threshold", "lira", "lira_offline", "rmia", "rmia_offline",
                           "lira_population", "rmia_population", "worst_case"]
    assert suite["lira_offline"]["kind"] == "lira" and suite["lira_offline"]["online"] is False
    picked = compose_config(["attack=[lira,rmia_offline]", "attack.lira.variance=fixed"])["attack"]
    assert list(picked) == ["lira", "rmia_offline"] and picked["lira"]["variance"] == "fixed"


@pytest.mark.parametrize("override,key", [
    ("model.gamma=abc", "model.gamma"),
    ("model.random_state=twelve", "model.random_state"),
    ("data.classes.responders.size=many", "data.classes.responders.size"),
    ("shadow.test_size=half", "shadow.test_size"),
    ("audit.n_nonmembers=lots", "audit.n_nonmembers"),
    ("tracking.enabled=maybe", "tracking.enabled"),
    ("attack.shadow_lr.n_shadow_models=many", "attack.shadow_lr.n_shadow_models"),
    ("reference.n_models=lots", "reference.n_models"),
])
def test_schema_rejects_wrong_types(override, key):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert isinstance(err.value.__cause__, ValidationError)
    assert err.value.__cause__.full_key == key


@pytest.mark.parametrize("override,key", [
    ("model.gama=1", "model.gama"),
    ("shadow.split_sed=1", "shadow.split_sed"),
    ("attack.shadow_lr.treshold=0.4", "attack.shadow_lr.treshold"),
    ("reference.n_model=3", "reference.n_model"),
    ("data.classes.responders.features.age.rate=3", "data.classes.responders.features.age.rate"),
])
def test_schema_rejects_unknown_keys(override, key):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert isinstance(err.value.__cause__, (ConfigKeyError, ConfigAttributeError))
    assert err.value.__cause__.full_key == key


@pytest.mark.parametrize("overrides,key,fragment", [
    (["shadow.test_size=0"], "shadow.test_size", "strictly between"),
    # Feature nodes are untyped (a composed config shows only the parameters given): the
    # population parser checks them.
    (["data.classes.responders.features.diabetes.p=high"], "data.classes.responders.features.diabetes.p",
     "must be a finite number"),
    (["shadow.test_size=0.995"], "shadow.test_size", "leaves class label(s) [0] out of the shadow train half"),
    (["shadow.size_per_class=0"], "shadow.size_per_class", "at least one shadow row"),
    (["+shadow.sizes.smokers=5"], "shadow.sizes.smokers", "no class 'smokers'"),
    (["+shadow.sizes.responders=0"], "shadow.sizes.responders", "at least one shadow row"),
    (["model.C=-1"], "model.C", "'C' parameter"),
    (["model.gamma=-3"], "model.gamma", "'gamma' parameter"),
    (["model.kernel=wavelet"], "model.kernel", "'kernel' parameter"),
    (["model.probability=false"], "model.probability", "no class probabilities"),
    (["model._target_=sklearn.svm.NoSuchModel"], "model._target_", "cannot import"),
    (["attack.shadow_lr.threshold=1.5"], "attack.shadow_lr.threshold", "[0, 1]"),
    (["attack.shadow_lr.kind=lirra"], "attack.shadow_lr.kind", "unknown attack kind"),
    (["attack.shadow_lr.features=[entropy,loss]"], "attack.shadow_lr.features.1", "unknown attack feature"),
    (["attack.shadow_lr.features=[]"], "attack.shadow_lr.features", "at least one feature"),
    (["attack.shadow_lr.n_shadow_models=0"], "attack.shadow_lr.n_shadow_models", "at least 1"),
    (["attack.shadow_lr.classifier._target_=sklearn.svm.LinearSVC"], "attack.shadow_lr.classifier", "no probabilities"),
    (["attack=loss_threshold", "attack.loss_threshold.calibration=median"], "attack.loss_threshold.calibration",
     "unknown calibration"),
    (["attack=lira", "attack.lira.variance=global"], "attack.lira.variance", "unknown variance"),
    (["attack=rmia", "attack.rmia.gamma=0"], "attack.rmia.gamma", "positive"),
    (["attack=rmia_offline", "attack.rmia_offline.a=2"], "attack.rmia_offline.a", "[0, 1]"),
    (["attack=worst_case", "attack.worst_case.n_folds=1"], "attack.worst_case.n_folds", "at least 2"),
    (["attack=worst_case", "audit=none"], "attack.worst_case", "audit=fresh_population"),
    (["attack=lira", "reference.n_models=3"], "reference.n_models", "at least 4"),
    (["attack=lira_offline", "reference.n_models=1"], "reference.n_models", "at least 2"),
    (["attack=lira", "attack.lira.pool=population"], "attack.lira.pool", "an online attack needs"),
    (["attack=rmia_offline", "attack.rmia_offline.pool=shadow"], "attack.rmia_offline.pool", "population"),
    (["attack=rmia", "reference.n_jobs=0"], "reference.n_jobs", "got 0"),
    (["attack=rmia", "reference.backend=dask"], "reference.backend", "unknown backend"),
    # A pool of 2 + 2 shadow rows (population only) has 2 x 2 = 4 distinct stratified halves.
    (["attack=lira_population", "shadow.size_per_class=2", "shadow.test_size=0.5",
      "shadow.stratify=true", "reference.n_models=6"], "reference.n_models", "allows only 4 distinct halves"),
    (["attack=lira", "model.probability=false"], "model.probability", "attack lira needs"),
    (["audit.base_rate=1.5"], "audit.base_rate", "strictly between 0 and 1"),
    (["audit.n_nonmembers=0"], "audit.n_nonmembers", "at least 1"),
    (["audit.fpr_levels=[0.01,2]"], "audit.fpr_levels.1", "(0, 1]"),
    (["data@shadow.population=cancer_patients", "shadow.population.classes.responders.label=5"],
     "shadow.population", "labels"),
    (["data@shadow.population=cancer_patients", "shadow.population.classes.responders.features.age.mu=-2"],
     "shadow.population.classes.responders.features.age.mu", "> 0"),
])
def test_scenario_level_errors_name_the_key(overrides, key, fragment):
    with pytest.raises(ConfigError) as err:
        prepare_scenario(compose_config(overrides))
    assert err.value.key == key
    assert fragment in err.value.message


def test_different_shadow_model_is_used():
    cfg = compose_config(["model@shadow.model=svc", "shadow.model.gamma=0.5"])
    plan = prepare_scenario(cfg)
    target, shadow, _ = plan.build_estimators()
    assert target.gamma == 3.0 and shadow.gamma == 0.5


def test_gamma_sweep_experiment_declares_the_sweep():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=gamma_sweep"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params["model.gamma"] == "0.01,0.1,0.3,1,3"


def test_a_bad_ray_setting_names_its_key():
    """Checked without Ray: the ray node and a backend's name (mia_engine.compute)."""
    from mia_engine import compute

    with pytest.raises(ConfigError) as e:
        compute.check_ray_settings({"address": None, "num_cpus": 0, "cpus_per_task": 1})
    assert e.value.key == "ray.num_cpus"
    with pytest.raises(ConfigError) as e:
        compute.check_ray_settings({"cpus_per_task": -1})
    assert e.value.key == "ray.cpus_per_task"
    with pytest.raises(ConfigError) as e:
        compute.check_backend({"n_jobs": -1, "backend": "dask"}, "reference")
    assert e.value.key == "reference.backend" and "ray" in e.value.message
