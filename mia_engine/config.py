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
    # {name: {dist, <that family's parameters>}} (see FeatureConfig): kept untyped so that a
    # composed config shows only the parameters given; mia_engine.data.population checks each.
    features: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordConfig:
    """A named individual: feature values, true label, and whether it is in the training data."""

    name: str = MISSING
    label: int = MISSING
    member: bool = MISSING
    features: Dict[str, Any] = field(default_factory=dict)


@dataclass
class NamedRecordConfig:
    """A further named individual (the game plays it): ``label`` and ``features``, or, in a
    table, the ``id`` of its row (``data.id_column``)."""

    label: Optional[Any] = None
    id: Optional[Any] = None
    features: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PopulationConfig:
    kind: str = MISSING       # rows drawn from the declared distributions below
    name: str = MISSING
    # python_random: the tutorial's draw order with Python's `random` (exact replay);
    # numpy: vectorised, an independent stream per (draw, class, feature).
    sampler: str = MISSING
    seed: int = MISSING
    classes: Dict[str, ClassConfig] = field(default_factory=dict)
    target_record: Optional[RecordConfig] = None
    # Further named records whose target-model probabilities are reported (no attack).
    probe_records: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class TableFeatureConfig:
    kind: str = MISSING                    # numeric | categorical | binary
    categories: Optional[List[Any]] = None  # categorical / binary: the values, in code order


@dataclass
class TableRecordConfig:
    """The individual at risk in a table: a row (``id``, in ``data.id_column``) or feature values."""

    name: Optional[str] = None
    id: Optional[Any] = None
    label: Optional[Any] = None
    member: bool = MISSING
    features: Optional[Any] = None   # {column: value}; typed Any so a whole dict can be given at once


@dataclass
class SplitConfig:
    """One table split, stratified by label: fractions of the rows (0 < v < 1) or counts (>= 1)."""

    target: float = MISSING          # the target model's training rows (the members)
    population: float = MISSING     # the attacker's population rows (shadow and reference data)
    nonmembers: float = MISSING     # held-out rows: the audit's non-members


@dataclass
class TableConfig:
    kind: str = MISSING
    name: Optional[str] = None             # null: the file's name
    builtin: Optional[str] = None          # a bundled table: breast_cancer
    path: Optional[str] = None             # one table the engine splits (data.split)
    train_path: Optional[str] = None       # or your own split: the members,
    test_path: Optional[str] = None        # held-out rows (the audit's non-members),
    population_path: Optional[str] = None  # and the attacker's rows (optional)
    format: str = MISSING                   # auto (by extension) | csv | parquet
    label: Optional[str] = None            # the label column
    drop: List[str] = field(default_factory=list)   # columns the model never sees
    id_column: Optional[str] = None        # row identifiers: never a feature
    # {column: {kind: numeric|categorical|binary, categories: [...]}}; columns not listed are
    # inferred. (Values typed Any so that `+data.features.<col>=...` works; checked in code.)
    features: Dict[str, Any] = field(default_factory=dict)
    missing: str = MISSING                 # error | impute
    split: SplitConfig = field(default_factory=SplitConfig)
    population_fraction: float = MISSING      # train/test files without population_path: test rows to the attacker
    seed: int = MISSING                          # the split's (and subsamples') seed
    # No id and no features: no individual at risk.
    target_record: TableRecordConfig = field(default_factory=TableRecordConfig)
    probe_records: Dict[str, Any] = field(default_factory=dict)


# ---- models ------------------------------------------------------------------------------
# Each names a scikit-learn classifier in `_target_` (only sklearn.* classes are accepted) with
# its keyword arguments. `preprocess`: true / false / null (tables get a Pipeline that one-hot
# encodes categories, scales for the families that need it and imputes with data.missing=impute;
# declared populations are fed as drawn). `random_state` seeds a fresh RandomState per fit.


@dataclass
class SVCConfig:
    _target_: str = MISSING
    C: float = MISSING
    gamma: float = MISSING
    kernel: str = MISSING
    probability: bool = MISSING
    random_state: Optional[int] = MISSING
    max_iter: int = MISSING           # libsvm iterations per fit; -1: no limit (a fit may then never end)
    preprocess: Optional[bool] = MISSING


@dataclass
class CalibratedSVCConfig:
    _target_: str = MISSING
    C: float = MISSING
    gamma: float = MISSING
    kernel: str = MISSING
    random_state: Optional[int] = MISSING
    method: str = MISSING
    cv: int = MISSING
    ensemble: bool = MISSING
    max_iter: int = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class LogisticRegressionConfig:
    _target_: str = MISSING
    C: float = MISSING
    max_iter: int = MISSING
    class_weight: Optional[str] = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class DecisionTreeConfig:
    _target_: str = MISSING
    criterion: str = MISSING
    max_depth: Optional[int] = MISSING
    min_samples_leaf: int = MISSING
    class_weight: Optional[str] = MISSING
    random_state: Optional[int] = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class RandomForestConfig:
    _target_: str = MISSING
    n_estimators: int = MISSING
    criterion: str = MISSING
    max_depth: Optional[int] = MISSING
    min_samples_leaf: int = MISSING
    max_features: Optional[str] = MISSING
    bootstrap: bool = MISSING
    class_weight: Optional[str] = MISSING
    random_state: Optional[int] = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class HistGradientBoostingConfig:
    _target_: str = MISSING
    learning_rate: float = MISSING
    max_iter: int = MISSING
    max_leaf_nodes: Optional[int] = MISSING
    max_depth: Optional[int] = MISSING
    min_samples_leaf: int = MISSING
    l2_regularization: float = MISSING
    early_stopping: bool = MISSING
    random_state: Optional[int] = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class KNNConfig:
    _target_: str = MISSING
    n_neighbors: int = MISSING
    weights: str = MISSING
    p: float = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class MLPConfig:
    _target_: str = MISSING
    hidden_layer_sizes: List[int] = MISSING
    alpha: float = MISSING
    learning_rate_init: float = MISSING
    max_iter: int = MISSING
    early_stopping: bool = MISSING
    random_state: Optional[int] = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class GaussianNBConfig:
    _target_: str = MISSING
    var_smoothing: float = MISSING
    preprocess: Optional[bool] = MISSING


@dataclass
class SavedModelConfig:
    """A fitted model file to audit (the target, not refitted). The attacker's models are
    clones of it: the recipe, refitted on the attacker's rows."""

    path: str = MISSING
    format: str = MISSING                   # auto (by extension) | skops | pickle
    trusted_types: List[str] = MISSING  # skops types beyond the engine's list
    trust_pickle: bool = MISSING             # joblib/pickle files run code when loaded
    random_state: Optional[int] = MISSING     # the clones' seed; null: the model's own setting


@dataclass
class ShadowConfig:
    # Rows drawn per class for the shadow data; `sizes` overrides it class by class. Declared
    # populations only: a table's attacker rows are set by the data (data.split.population,
    # data.population_path).
    size_per_class: Optional[int] = MISSING
    sizes: Dict[str, int] = field(default_factory=dict)
    test_size: float = MISSING
    stratify: bool = MISSING
    split_seed: int = MISSING
    # Hand the target model's RandomState object (already advanced by the target's fit)
    # to the shadow model, as the notebook's mitigation cell did.
    reuse_target_random_state: bool = MISSING
    # Filled through the defaults list (`data@shadow.population=...`, `model@shadow.model=...`);
    # null means the attacker samples the target's population / uses the target's model config.
    population: Optional[Any] = None
    model: Optional[Any] = None


# ---- attacks ------------------------------------------------------------------------------
# Each file in conf/attack/ nests its settings under its own name (attack.<name>.*), so that
# several can be selected at once (`attack=[lira,rmia]`, or `attack=suite`). `kind` picks the
# algorithm; the name is free (lira and lira_offline are both kind lira).


# Schemas below hold types (and None for "absent"); every value lives in the group's YAML file.


@dataclass
class ShadowLRConfig:
    """Shokri et al. (2017): a classifier on shadow models' outputs, member vs non-member."""

    kind: str = MISSING
    # Any of max_probability, true_label_probability, sorted_probabilities, entropy,
    # true_label_logit; several are concatenated.
    features: List[str] = MISSING
    classifier: Any = MISSING
    n_shadow_models: int = MISSING       # model 0 is the tutorial's split; more come from split_seed
    per_class: bool = MISSING        # one attack classifier per true label
    threshold: float = MISSING         # membership probability at or above this means "member"


@dataclass
class LossThresholdConfig:
    """Yeom et al. (2018): a record whose loss on the target is low enough was trained on."""

    kind: str = MISSING
    # mean_train_loss: the shadow model's mean loss on its own training rows (Yeom's rule);
    # best_accuracy: the loss that best separates shadow members from non-members.
    calibration: str = MISSING
    n_shadow_models: int = MISSING
    threshold: Optional[float] = None  # in score units (log p_true); null: calibrated


@dataclass
class LiraConfig:
    """Carlini et al. (2022): Gaussian fits of the logit-scaled true-label probability."""

    kind: str = MISSING
    online: bool = MISSING            # IN and OUT fits per record; false: OUT only, one-sided test
    variance: str = MISSING   # per_record | fixed (one pooled variance)
    # Decision threshold on the score: online, the log likelihood ratio (0: IN more likely);
    # offline, -ln(p-value) of the OUT test (3.0 is p < 0.05).
    threshold: Optional[float] = None
    # Reference models from the "candidates" pool (the scored records, IN for half of the
    # models) or the "population" pool (the attacker's population rows only; offline only).
    pool: str = MISSING


@dataclass
class RmiaConfig:
    """Zarifzadeh et al. (2024): likelihood ratio of the record against population samples z."""

    kind: str = MISSING
    online: bool = MISSING
    gamma: float = MISSING             # a z "loses" to the record when LR(x, z) >= gamma
    a: float = MISSING                 # offline: Pr(x) ~ ((1 + a) Pr_OUT(x) + 1 - a) / 2
    threshold: float = MISSING         # fraction of z dominated at or above this means "member"
    # Order records that beat the same number of z by their own ratio (less than half a step
    # of 1/|z|, so decisions at `threshold` do not change).
    tie_break: bool = MISSING
    pool: str = MISSING                # candidates | population (offline only): as for LiRA


@dataclass
class WorstCaseConfig:
    """Upper bound: the attacker holds part of the real members and non-members."""

    kind: str = MISSING
    features: List[str] = MISSING
    classifier: Any = MISSING
    n_folds: int = MISSING               # held-out folds: every record is scored by a model not fitted on it
    n_repeats: int = MISSING             # repeated with fresh fold assignments; scores are averaged
    seed: int = MISSING
    threshold: float = MISSING


@dataclass
class ReferenceConfig:
    """The attacker's reference models (LiRA, RMIA): one set, shared by every attack in a run."""

    n_models: int = MISSING
    seed: int = MISSING
    # Each reference attack names its pool (attack.<name>.pool): "candidates" holds the records
    # it scores (online attacks need models trained with and without each), "population" the
    # attacker's population rows only. For the candidates pool: whether the population rows
    # (the shadow data) join it: auto adds them only when the scored records are fewer than
    # twice the target's training rows, so a half is about the target's size; always; never.
    pool_population: str = MISSING
    n_jobs: int = MISSING               # joblib workers; -1: all cores (ignored by ray)
    backend: str = MISSING              # threading | loky | multiprocessing | ray
    cache: bool = MISSING
    cache_dir: Optional[str] = None  # null: <launch dir>/.mia_cache/reference
    progress: Optional[bool] = None  # null: a bar on a terminal, log lines otherwise


@dataclass
class AuditConfig:
    enabled: bool = MISSING
    # Fresh non-members drawn from the population; null: as many as the training rows,
    # class by class.
    n_nonmembers: Optional[int] = None
    fpr_levels: List[float] = MISSING
    # Share of the population that is in the training data, for the PPV; null: the audit's
    # own share (members / all scored records).
    base_rate: Optional[float] = None
    # Non-members that copy a member row (features and label): their membership is not defined
    # by what the model sees. drop: counted and left out of the audit; keep: scored as non-members.
    duplicates: str = MISSING


@dataclass
class RiskConfig:
    """The thresholds a TRE applies (conf/risk/<name>.yaml holds the values and their sources)."""

    min_cell_count: int = MISSING
    # [{estimator, param, min/max, source}]: hyperparameter rules checked on the fitted target.
    rules: List[Any] = MISSING
    # Significance of an attack's AUC above chance (Bonferroni over the realistic attacks).
    p_value: float = MISSING
    # [{fpr, review, fail, source}]: the TPR the strongest realistic attack may reach at an FPR.
    tpr_at_fpr: List[Any] = MISSING
    auc: Any = MISSING                   # {review, fail, source}
    epsilon: Any = MISSING               # {review, fail, source}: the empirical lower bound
    # Estimator classes allowed to keep training rows verbatim (support vectors, kNN's data).
    may_embed_rows: List[str] = MISSING
    sources: Dict[str, str] = MISSING    # threshold name -> where it comes from


@dataclass
class SubgroupsConfig:
    """The headline attack's figures per slice of the audited records (report.subgroups)."""

    by_class: bool = MISSING
    columns: List[str] = MISSING         # categorical or binary features: one slice per value
    loss_bins: int = MISSING             # slices by the target's loss percentile; 0: none


@dataclass
class ReportConfig:
    """report/report.html, report.json and manifest.json (the release record)."""

    enabled: bool = MISSING
    pdf: bool = MISSING                  # also report.pdf, printed by headless Chromium
    chromium: Optional[str] = None       # null: chromium / chromium-browser / google-chrome on PATH
    subgroups: SubgroupsConfig = MISSING


@dataclass
class SecurityConfig:
    """Further ``_target_`` names a config may build: dotted class names or package prefixes
    ending in "." (each must be an estimator class)."""

    allowed_targets: List[str] = MISSING


@dataclass
class EvaluationConfig:
    """single_run: the scenario once. individual_game: T trials of fresh data, each named
    record IN with probability `inclusion_probability`; see mia_engine/scenario/game.py."""

    mode: str = MISSING
    n_trials: int = MISSING
    seed: int = MISSING
    inclusion_probability: float = MISSING
    include_target_record: bool = MISSING       # data.target_record plays too
    # {name: {label, features}}, or {name: {id}} for a row of a table (held out of every split);
    # filled from conf/game_records/<data>.yaml when there is one. null: the target record alone.
    records: Any = None
    fpr_levels: List[float] = MISSING
    n_jobs: int = MISSING                    # joblib workers; -1: all cores (ignored by ray)
    backend: str = MISSING                   # loky | threading | multiprocessing | ray
    replay_trial: Optional[int] = None       # play only this trial (same score as inside the game)


@dataclass
class RayConfig:
    """Where fits go with reference.backend=ray or evaluation.backend=ray (see mia_engine/compute.py)."""

    # null: the Ray runtime this process already has (a job under hydra/launcher=ray), else
    # $RAY_ADDRESS, else a local instance; "auto" or "ray://<head>:10001": an existing cluster.
    address: Optional[str] = None
    num_cpus: Optional[int] = None             # a local instance's CPUs; null: all
    object_store_memory: Optional[int] = None  # a local instance's object store, bytes; null: Ray's default
    cpus_per_task: float = MISSING             # CPUs Ray reserves for each fit


@dataclass
class TrackingConfig:
    enabled: bool = MISSING
    # null: $MLFLOW_TRACKING_URI if set, else sqlite:///<launch dir>/mlflow.db.
    uri: Optional[str] = None
    experiment_name: str = MISSING
    run_name: Optional[str] = None
    http_request_timeout: int = MISSING
    http_request_max_retries: int = MISSING
    http_request_backoff_factor: int = MISSING
    # Skip a job whose identical resolved config (tag mia.config_hash) already has a FINISHED
    # run in this experiment: rerun a sweep that died halfway with tracking.resume=true.
    resume: bool = MISSING
    # MLflow's own log level (its INFO lines announce e.g. database creation).
    mlflow_log_level: str = MISSING
    # Import MLflow and log from a forked helper process while the scenario computes.
    background: bool = MISSING
    # Rows (data/*.csv) and fitted models (models/, which can embed training rows) as artifacts.
    # null: yes for a declared (synthetic) population, no for a table of real records.
    log_datasets: Optional[bool] = None
    log_models: Optional[bool] = None
    # records/scores.parquet (every audited record's score: who is exposed) as an artifact.
    log_scores: bool = MISSING


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; the YAML files name them in their defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    # Stored outside the groups (so `--help` lists only real options); a group file pulls its
    # schema in with `- /schema/<name>@_here_`.
    for name, node in (("population", PopulationConfig), ("table", TableConfig), ("svc", SVCConfig),
                       ("svc_calibrated", CalibratedSVCConfig), ("logistic_regression", LogisticRegressionConfig),
                       ("decision_tree", DecisionTreeConfig), ("random_forest", RandomForestConfig),
                       ("hist_gradient_boosting", HistGradientBoostingConfig), ("knn", KNNConfig),
                       ("mlp", MLPConfig), ("gaussian_nb", GaussianNBConfig), ("saved", SavedModelConfig),
                       ("shadow", ShadowConfig),
                       ("attack_shadow_lr", ShadowLRConfig), ("attack_loss_threshold", LossThresholdConfig),
                       ("attack_lira", LiraConfig), ("attack_rmia", RmiaConfig),
                       ("attack_worst_case", WorstCaseConfig), ("reference", ReferenceConfig),
                       ("audit", AuditConfig), ("risk", RiskConfig), ("report", ReportConfig), ("security", SecurityConfig),
                       ("evaluation", EvaluationConfig), ("ray", RayConfig),
                       ("tracking", TrackingConfig)):
        cs.store(group="schema", name=name, node=node)
