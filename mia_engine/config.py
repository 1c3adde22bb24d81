"""Structured-config schemas for every config group.

Each YAML file in ``conf/`` lists one of these schemas first in its defaults list
(``- /schema/<name>@_here_``), so
Hydra rejects a wrong type (``model.gamma=abc``) or an unknown key (``model.gama=1``)
while composing, before anything runs.  Checks a type cannot express (a probability
outside [0, 1], a class with no rows, ...) live in :mod:`mia_engine.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class FeatureConfig:
    """One feature's distribution within one class.

    ``dist`` picks the family; only that family's parameters may be set:

    - ``bernoulli``: ``p`` (value 1 with probability p, else 0)
    - ``categorical``: ``values`` and ``weights`` (relative, need not sum to 1)
    - ``poisson``: ``mu``; ``low``/``high`` restrict it to an inclusive range
    - ``normal``: ``mean``, ``std``; optional ``low``/``high`` truncate it
    - ``uniform_int``: ``low``, ``high`` (inclusive)
    """

    dist: str = MISSING
    p: Optional[float] = None
    values: Optional[List[Any]] = None
    weights: Optional[List[float]] = None
    mu: Optional[float] = None
    mean: Optional[float] = None
    std: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None


@dataclass
class ClassConfig:
    label: int = MISSING
    size: int = MISSING
    features: Dict[str, FeatureConfig] = field(default_factory=dict)


@dataclass
class RecordConfig:
    """A named individual: feature values, true label, and whether it is in the training data."""

    name: str = MISSING
    label: int = MISSING
    member: bool = True
    features: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PopulationConfig:
    name: str = MISSING
    # python_random: the tutorial's draw order with Python's `random` (exact replay);
    # numpy: vectorised, an independent stream per (draw, class, feature).
    sampler: str = "numpy"
    seed: int = MISSING
    classes: Dict[str, ClassConfig] = field(default_factory=dict)
    target_record: Optional[RecordConfig] = None
    # Further named records whose target-model probabilities are reported (no attack).
    probe_records: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class SVCConfig:
    _target_: str = "sklearn.svm.SVC"
    C: float = 1.0
    gamma: float = 3.0
    kernel: str = "rbf"
    probability: bool = True
    random_state: Optional[int] = 12


@dataclass
class CalibratedSVCConfig:
    _target_: str = "mia_engine.models.calibrated_svc"
    C: float = 1.0
    gamma: float = 3.0
    kernel: str = "rbf"
    random_state: Optional[int] = 12
    method: str = "sigmoid"
    cv: int = 5
    ensemble: bool = False


@dataclass
class ShadowConfig:
    # Rows drawn per class for the shadow data; `sizes` overrides it class by class.
    size_per_class: Optional[int] = 100
    sizes: Dict[str, int] = field(default_factory=dict)
    test_size: float = 0.5
    stratify: bool = False
    split_seed: int = 1234
    # Hand the target model's RandomState object (already advanced by the target's fit)
    # to the shadow model, as the notebook's mitigation cell did.
    reuse_target_random_state: bool = False
    # Filled through the defaults list (`data@shadow.population=...`, `model@shadow.model=...`);
    # null means the attacker samples the target's population / uses the target's model config.
    population: Optional[Any] = None
    model: Optional[Any] = None


@dataclass
class AttackConfig:
    name: str = MISSING
    feature: str = "max_probability"
    classifier: Any = MISSING
    threshold: float = 0.5


@dataclass
class AuditConfig:
    enabled: bool = True
    # Fresh non-members drawn from the population; null: as many as the training rows,
    # class by class.
    n_nonmembers: Optional[int] = None
    fpr_levels: List[float] = field(default_factory=lambda: [0.01, 0.1])


@dataclass
class TrackingConfig:
    enabled: bool = True
    # null: $MLFLOW_TRACKING_URI if set, else sqlite:///<launch dir>/mlflow.db.
    uri: Optional[str] = None
    experiment_name: str = "mia-engine"
    run_name: Optional[str] = None
    http_request_timeout: int = 10
    http_request_max_retries: int = 1
    http_request_backoff_factor: int = 1
    # Skip a job whose identical resolved config (tag mia.config_hash) already has a FINISHED
    # run in this experiment: rerun a sweep that died halfway with tracking.resume=true.
    resume: bool = False
    # MLflow's own log level (its INFO lines announce e.g. database creation).
    mlflow_log_level: str = "WARNING"
    # Import MLflow and log from a forked helper process while the scenario computes.
    background: bool = True
    log_datasets: bool = True
    log_models: bool = True


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; the YAML files name them in their defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    # Stored outside the groups (so `--help` lists only real options); a group file pulls its
    # schema in with `- /schema/<name>@_here_`.
    for name, node in (("population", PopulationConfig), ("svc", SVCConfig),
                       ("svc_calibrated", CalibratedSVCConfig), ("shadow", ShadowConfig),
                       ("attack", AttackConfig), ("audit", AuditConfig), ("tracking", TrackingConfig)):
        cs.store(group="schema", name=name, node=node)
