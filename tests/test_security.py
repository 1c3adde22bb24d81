"""A config is not code: `_target_` builds only scikit-learn estimators, the engine's factories
and classes the user lists in security.allowed_targets; nothing else is imported or run."""

from __future__ import annotations

import sys

import pytest

from conftest import compose_config
from mia_engine.errors import ConfigError
from mia_engine.scenario import prepare_scenario, run_scenario


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Two importable modules: one that leaves a marker when imported, one with an estimator."""
    marker = tmp_path / "imported"
    (tmp_path / "planted_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "def run(command=''):\n    return command\n")
    (tmp_path / "extra_models.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "class WideLR(LogisticRegression):\n    pass\n"
        "def not_a_class(**kw):\n    return kw\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    for name in ("planted_mod", "extra_models"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("overrides,key", [
    (["model._target_=planted_mod.run"], "model._target_"),
    (["attack.shadow_lr.classifier._target_=planted_mod.run"], "attack.shadow_lr.classifier._target_"),
    (["model@shadow.model=logistic_regression", "shadow.model._target_=planted_mod.run"], "shadow.model._target_"),
])
def test_a_target_outside_the_allowlist_is_refused_before_it_is_imported(modules, overrides, key):
    cfg = compose_config(["tracking=none", *overrides])
    with pytest.raises(ConfigError, match="not a scikit-learn estimator") as err:
        prepare_scenario(cfg)
    assert err.value.key == key
    assert not modules.exists()  # the module was never imported


def test_a_listed_estimator_class_builds_and_runs(modules, quiet_sklearn):
    cfg = compose_config(["tracking=none", "model=logistic_regression", "model._target_=extra_models.WideLR",
                          "security.allowed_targets=[extra_models.]"])
    r = run_scenario(cfg)
    assert type(r.models["target"]).__name__ == "WideLR" and r.summary()["attack"]["auc"] > 0
    # The same config without the listing is refused.
    cfg["security"]["allowed_targets"] = []
    with pytest.raises(ConfigError, match="security.allowed_targets"):
        prepare_scenario(cfg)


def test_a_listed_name_must_still_be_an_estimator_class(modules):
    cfg = compose_config(["tracking=none", "model=logistic_regression", "model._target_=extra_models.not_a_class",
                          "security.allowed_targets=[extra_models.]"])
    with pytest.raises(ConfigError, match="not an estimator class") as err:
        prepare_scenario(cfg)
    assert err.value.key == "model._target_"
    cfg = compose_config(["tracking=none", "attack.shadow_lr.classifier._target_=subprocess.Popen",
                          "security.allowed_targets=[subprocess.Popen]"])
    with pytest.raises(ConfigError, match="not an estimator class"):
        prepare_scenario(cfg)


@pytest.mark.parametrize("value", ["[\"\"]", "[.]", "['os system']"])
def test_bad_allowed_targets_name_their_key(value):
    with pytest.raises(ConfigError) as err:
        prepare_scenario(compose_config(["tracking=none", f"security.allowed_targets={value}"]))
    assert err.value.key == "security.allowed_targets.0"
    from mia_engine.models import check_allowed_targets

    with pytest.raises(ConfigError, match="a list"):
        check_allowed_targets("os.")


def test_named_records_values_are_redacted_but_names_kept():
    from mia_engine.app import REDACTED, _is_record_override, redact_records

    resolved = {"data": {"kind": "table", "target_record": {"name": "p5", "features": {"age": 62, "region": "west"},
                                                            "label": "Yes", "id": None},
                         "probe_records": None},
                "evaluation": {"records": {"patient_7": {"id": "P0007"}, "other": {"features": {"age": [1, 2]}}}},
                "model": {"C": 1.0}}
    out = redact_records(resolved)
    assert out["data"]["target_record"] == {"name": "p5", "features": {"age": REDACTED, "region": REDACTED},
                                            "label": REDACTED, "id": None}
    assert out["evaluation"]["records"] == {"patient_7": {"id": REDACTED},
                                            "other": {"features": {"age": [REDACTED, REDACTED]}}}
    assert out["model"] == {"C": 1.0} and resolved["data"]["target_record"]["features"]["age"] == 62
    assert _is_record_override("data.target_record.id=P0005") and _is_record_override("+evaluation.records.x={id: 7}")
    assert not _is_record_override("data.target_record.name=p5") and not _is_record_override("model.C=2")
