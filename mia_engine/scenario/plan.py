"""Validation and planning: a resolved config in, a :class:`ScenarioPlan` out, nothing drawn.

Every check that can be made before any data are drawn or any model is fitted happens here,
so a bad value stops the run before an MLflow run exists. The plan holds the data source, the
model recipes and the attack settings; :mod:`mia_engine.scenario.execute` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError


def build_source(cfg: Mapping[str, Any], launch_dir: Path | None = None):
    """The data source the ``data`` node describes (``data.kind``: population | table)."""
    data = cfg["data"]
    kind = data.get("kind", "population")
    if kind == "population":
        from ..data.population import population_source

        return population_source(data, cfg["shadow"])
    if kind == "table":
        from ..data.table import table_source

        ev = cfg.get("evaluation") or {}
        game_records = ev.get("records") if ev.get("mode") == "individual_game" else None
        return table_source(data, cfg["shadow"], launch_dir=launch_dir,
                            game_records=game_records if isinstance(game_records, Mapping) else None)
    raise ConfigError("data.kind", f"unknown data source {kind!r}; available: population, table")


#: The top-level keys a scenario has: one per config group, the sweeper's return values, and an
#: experiment's own search settings. Anything else (``+foo=bar``) is a typo or a stray key.
TOP_LEVEL_KEYS = frozenset({"data", "model", "shadow", "attack", "reference", "audit", "risk", "report", "security",
                            "evaluation", "tracking", "ray", "objectives", "search", "plan_only", "hydra"})
_SEED_KEYS = ("seed", "random_state", "split_seed")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def check_config(cfg: Mapping[str, Any]) -> None:
    """What applies to the whole config, before anything else: no unknown top-level key, an
    attack selected, every seed a valid one, tracking settings usable (each error names its key)."""
    for k in cfg:
        if k not in TOP_LEVEL_KEYS:
            raise ConfigError(str(k), f"unknown top-level key; a scenario has {', '.join(sorted(TOP_LEVEL_KEYS - {'hydra'}))}")
    if not cfg.get("attack"):
        raise ConfigError("attack", "no attack selected; e.g. attack=shadow_lr, attack=suite or attack=[lira,rmia]")

    def seeds(node, path):
        if isinstance(node, Mapping):
            for k, v in node.items():
                key = f"{path}.{k}" if path else str(k)
                if k in _SEED_KEYS and v is not None and not isinstance(v, Mapping):
                    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2 ** 32:
                        raise ConfigError(key, f"a seed is a whole number in [0, 2**32 - 1] (or null), got {v!r}")
                else:
                    seeds(v, key)

    seeds({k: v for k, v in cfg.items() if k != "hydra"}, "")
    t = cfg.get("tracking") or {}
    if t.get("enabled"):
        if not str(t.get("experiment_name") or "").strip():
            raise ConfigError("tracking.experiment_name", "name the MLflow experiment (a non-empty string)")
        level = str(t.get("mlflow_log_level", "WARNING")).upper()
        if level not in _LOG_LEVELS:
            raise ConfigError("tracking.mlflow_log_level", f"unknown level {t.get('mlflow_log_level')!r}; choose from "
                                                           f"{', '.join(_LOG_LEVELS)}")
        for key, low in (("http_request_timeout", 1), ("http_request_max_retries", 0),
                         ("http_request_backoff_factor", 0)):
            v = t.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < low):
                raise ConfigError(f"tracking.{key}", f"must be a number >= {low}, got {v!r}")


def _check_neighbours(plan: "ScenarioPlan", rows: int) -> None:
    """A nearest-neighbour model asks for at most as many neighbours as its smallest training set
    (the target's, the shadow model's half) holds; scikit-learn would only say so at predict time."""
    for recipe in (plan.target_recipe, plan.shadow_recipe):
        k = (recipe.node or {}).get("n_neighbors")
        if isinstance(k, int) and not isinstance(k, bool) and k > rows:
            raise ConfigError(f"{recipe.key}.n_neighbors", f"{k} neighbours, but the smallest training set of this "
                                                           f"scenario has {rows} rows")


def available_memory() -> int | None:
    """Bytes of memory this machine can give a new job now (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_estimate(source: Any, reference_node: Mapping[str, Any], attacks, target_counts: Mapping[int, int],
                    audit_counts: Mapping[int, int]) -> list[tuple[str, str, int]]:
    """The large allocations a run makes, before it makes them: (config key, what, bytes).
    Rows drawn value by value in Python (the tutorial's sampler) cost about 64 bytes a value,
    arrays 8; each is held about three times over (draw, matrix, the model's copy). Reference
    models keep a float32 score per model and query row (per pool); scoring gathers them a block
    of records at a time (a few arrays of 32 MB)."""
    n_features = max(len(source.features), 1)
    pop = getattr(source, "population", None)
    per_value = 64 if pop is not None and pop.sampler == "python_random" else 8
    n_target = sum(target_counts.values())
    n_attacker = sum(source.attacker_counts().values())
    n_audit = sum(audit_counts.values())
    data_key = (f"data.classes.{max(pop.classes, key=lambda c: c.size).name}.size" if pop is not None
                else "data")
    out = [(data_key, f"{n_target:,} training rows", 3 * n_target * n_features * per_value),
           ("shadow.size_per_class", f"{n_attacker:,} attacker rows", 3 * n_attacker * n_features * per_value),
           ("audit.n_nonmembers", f"{n_audit:,} audit non-members", 3 * n_audit * n_features * per_value)]
    users = [a for a in attacks.values() if a.needs_reference]
    if users:
        n_models = int(reference_node.get("n_models") or 0)
        n_query = n_attacker + n_target + n_audit + 1
        pools = len({a.pool for a in users})
        out.append(("reference.n_models", f"{n_models:,} reference models x {n_query:,} rows x {pools} pool(s)",
                    pools * n_models * n_query * 5 + 6 * 8 * min(n_models * n_query, 1 << 22)))  # scores, halves; blocks
    return out


def check_memory(source: Any, reference_node: Mapping[str, Any], attacks, target_counts, audit_counts) -> None:
    """Refuse, before anything is drawn, a scenario whose estimate exceeds the memory available."""
    free = available_memory()
    if free is None:
        return
    parts = memory_estimate(source, reference_node, attacks, target_counts, audit_counts)
    need = sum(b for _, _, b in parts)
    if need > free:
        key, what, biggest = max(parts, key=lambda p: p[2])
        raise ConfigError(key, f"this scenario needs about {need / 2**30:.1f} GiB ({what}: {biggest / 2**30:.1f} GiB) "
                               f"and {free / 2**30:.1f} GiB are available")


def split_shadow(X: np.ndarray, y: np.ndarray, shadow: Mapping[str, Any]):
    """The notebook's ``train_test_split``; every class must land in both halves.

    The notebook split with the global NumPy generator seeded once; a fresh
    ``RandomState(split_seed)`` gives the same permutation without touching global state.
    """
    from sklearn.model_selection import train_test_split

    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        key = ("shadow.size_per_class" if shadow.get("size_per_class") is not None and not shadow.get("sizes")
               else "shadow.sizes" if shadow.get("sizes") else "shadow.test_size")
        raise ConfigError(key, f"class label(s) {[int(v) for v in labels[counts < 2]]} have fewer than 2 rows in the "
                               "attacker's data: too few to put one in each half of the shadow split")
    try:
        parts = train_test_split(X, y, test_size=shadow["test_size"],
                                 random_state=np.random.RandomState(shadow["split_seed"]),
                                 stratify=y if shadow["stratify"] else None)
    except ValueError as e:
        raise ConfigError("shadow.test_size", f"cannot split the shadow data: {e}") from None
    labels = set(int(v) for v in np.unique(y))
    for part, y_part in (("train", parts[2]), ("test", parts[3])):
        missing = sorted(labels - set(int(v) for v in np.unique(y_part)))
        if missing:
            raise ConfigError(
                "shadow.test_size",
                f"the split (test_size={shadow['test_size']}, split_seed={shadow['split_seed']}, "
                f"stratify={shadow['stratify']}) leaves class label(s) {missing} out of the shadow {part} half",
            )
    return parts


def derived_seed(seed: int, index: int) -> int:
    """A seed for the index-th copy of something seeded by ``seed`` (index 0 keeps ``seed``)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def check_workers(node: Mapping[str, Any], key: str) -> None:
    """The settings ``n_jobs`` and ``backend`` of a config node (see :mod:`mia_engine.compute`)."""
    from ..compute import check_backend

    check_backend(node, key)


def population_in_pool(ref: Mapping[str, Any], n_candidates: int, n_target: int) -> bool:
    """Whether the attacker's population rows join the reference pool. ``auto``: only when the
    scored records alone are fewer than twice the target's training rows, so that a half of
    the pool is about as large as the target's training set (reference models trained on
    more rows than the target are more confident on everything, which blunts online LiRA:
    at gamma=3 its mean TPR at FPR 0.01 drops from 0.70 to 0.59)."""
    mode = ref.get("pool_population", "auto")
    if mode == "always":
        return True
    if mode == "never":
        return False
    return n_candidates < 2 * n_target


@dataclass
class ScenarioPlan:
    """A validated scenario, ready to run: everything built, nothing drawn or fitted yet."""

    source: Any                      # mia_engine.data.source.DataSource
    shadow: Mapping[str, Any]
    target_recipe: Any               # mia_engine.models.ModelRecipe
    shadow_recipe: Any
    attack_node: Mapping[str, Any]
    reference_node: Mapping[str, Any]
    audit_enabled: bool
    n_nonmembers: int | None
    fpr_levels: tuple[float, ...]
    base_rate: float | None
    cache_dir: Path | None = None
    cache_parts: Mapping[str, Any] | None = None
    duplicates: str = "keep"        # audit.duplicates: drop | keep
    min_cell_count: int = 0         # risk.min_cell_count: a tree leaf with fewer rows is small
    rules: tuple = ()               # risk.rules: hyperparameter rules checked on the fitted target
    risk: Any = None                # mia_engine.verdict.RiskThresholds: the verdict's thresholds
    # report.subgroups, checked: {"by_class": bool, "columns": (feature index, name)..., "loss_bins": int}
    subgroups: Mapping[str, Any] | None = None
    allowed_targets: tuple = ()     # security.allowed_targets: further estimator classes a config may name
    ray_settings: Mapping[str, Any] | None = None  # the ray node: where Ray-backed fits go

    @property
    def shadow_key(self) -> str:
        return self.shadow_recipe.key

    def build_estimators(self):
        """Fresh, unfitted (target model, shadow model, attacks), each seeded from the config.
        A saved target comes fitted (``target_recipe.fitted``) and is returned as it is."""
        from ..models import allowed_targets

        with allowed_targets(self.allowed_targets):
            return self._build_estimators()

    def _build_estimators(self):
        from ..attacks import build_attacks
        from ..models import random_state_from, require_probabilities

        target_rs = None if self.target_recipe.node is None else random_state_from(self.target_recipe.node)
        if self.target_recipe.fitted is not None:
            target_model = self.target_recipe.fitted
        else:
            target_model = self.target_recipe.build(target_rs)
        # The notebook's mitigation cell handed one RandomState object to both fits.
        if self.shadow.get("reuse_target_random_state"):
            shadow_model = self.shadow_recipe.build(target_rs)
        else:
            shadow_model = self.shadow_recipe.build_seeded()
        attacks = build_attacks(self.attack_node, "attack")
        needs = ", ".join(attacks)
        require_probabilities(target_model, "model", needs)
        require_probabilities(shadow_model, self.shadow_key, needs)
        return target_model, shadow_model, attacks

    def extra_shadow_model(self, index: int):
        """Shadow model ``index`` >= 1 (k shadow models): the shadow config, its seed derived."""
        seed = self.shadow_recipe.random_state_seed
        rs = None if seed is None else np.random.RandomState(derived_seed(int(seed), index))
        return self.shadow_recipe.build(rs)

    def member_counts(self) -> dict[int, int]:
        """Rows per label of the target's training set, the named record included when a member."""
        counts = dict(self.source.target_counts())
        rec = self.source.target_record
        if rec is not None and rec.member:
            counts[rec.label] = counts.get(rec.label, 0) + 1
        return counts


def _reference_checks(plan: ScenarioPlan, attacks, target_counts: dict[int, int], audit_counts: dict[int, int],
                      record_extra: int | None) -> None:
    """Reference settings an attack set cannot run with, caught before anything is drawn."""
    ref = plan.reference_node
    users = [a for a in attacks.values() if a.needs_reference]
    if not users:
        return
    from ..reference import max_distinct_halves, uses_halves

    if not ref:
        raise ConfigError("reference", f"attack(s) {', '.join(a.name for a in users)} need reference models; "
                                       "the config has no reference settings (compose reference=default)")
    n = ref["n_models"]
    online = [a.name for a in users if a.online]
    minimum = 4 if online else 2
    if n < minimum:
        why = (f"online attack(s) {', '.join(online)} need at least 2 IN and 2 OUT models per record"
               if online else "offline attacks need at least 2 OUT models per record")
        raise ConfigError("reference.n_models", f"must be at least {minimum}, got {n}: {why}")
    check_workers(ref, "reference")
    if ref.get("pool_population") not in ("auto", "always", "never"):
        raise ConfigError("reference.pool_population", f"unknown choice {ref.get('pool_population')!r}; available: "
                                                       "auto, always, never")
    cand = dict(target_counts) if audit_counts else {}
    for label, k in audit_counts.items():
        cand[label] = cand.get(label, 0) + k
    if record_extra is not None:
        cand[record_extra] = cand.get(record_extra, 0) + 1
    n_target = sum(target_counts.values())
    for pool in sorted({a.pool for a in users}):
        counts: dict[int, int] = {}
        if pool == "population":
            counts = dict(plan.source.attacker_counts())
        else:
            # Copies of members dropped from the audit can shrink the scored records below twice
            # the target's rows, which brings the population rows in (pool_population=auto):
            # check the pool as it may come out, the larger one for the IN count.
            may_join = population_in_pool(ref, sum(cand.values()), n_target) or (
                plan.duplicates == "drop" and ref.get("pool_population", "auto") == "auto")
            if may_join:
                counts = dict(plan.source.attacker_counts())
            for label, k in cand.items():
                counts[label] = counts.get(label, 0) + k
        n_pool = sum(counts.values())
        if not uses_halves(n_pool, n_target):
            # Each model trains on n_target of the pool's rows: a record is IN for about
            # n_models * n_target / n_pool of them, and online attacks need at least 2.
            if online and pool == "candidates" and n * n_target // n_pool < 2:
                need = -(-2 * n_pool // n_target)
                raise ConfigError("reference.n_models", f"{n} reference models of {n_target} rows from a pool of "
                                                        f"{n_pool} put a record IN for about {n * n_target / n_pool:.1f} "
                                                        f"of them; online attacks need at least 2: use {need} or more")
            continue
        allowed = max_distinct_halves(list(counts.values()))
        if n > allowed:
            raise ConfigError("reference.n_models", f"{n} reference models, but the {pool} pool of {n_pool} rows "
                                                    f"allows only {allowed} distinct halves")


def _rules(nodes) -> tuple:
    """``risk.rules``, checked: each names an estimator class and a parameter, with a numeric
    ``min`` and/or ``max`` and a ``source``."""
    out = []
    for i, rule in enumerate(nodes or ()):
        key = f"risk.rules.{i}"
        if not isinstance(rule, Mapping):
            raise ConfigError(key, f"a rule is {{estimator, param, min/max, source}}, got {rule!r}")
        for k in rule:
            if k not in ("estimator", "param", "min", "max", "source"):
                raise ConfigError(f"{key}.{k}", "unknown key; a rule takes estimator, param, min, max and source")
        for k in ("estimator", "param"):
            if not isinstance(rule.get(k), str) or not rule.get(k):
                raise ConfigError(f"{key}.{k}", f"name it (a string), got {rule.get(k)!r}")
        if rule.get("min") is None and rule.get("max") is None:
            raise ConfigError(key, "give a min, a max or both")
        for k in ("min", "max"):
            v = rule.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ConfigError(f"{key}.{k}", f"must be a number, got {v!r}")
        out.append(dict(rule))
    return tuple(out)


def _subgroups(node: Mapping[str, Any] | None, features) -> dict[str, Any] | None:
    """``report.subgroups``, checked against the data's features (categorical or binary only)."""
    if not node:
        return None
    for k in node:
        if k not in ("by_class", "columns", "loss_bins"):
            raise ConfigError(f"report.subgroups.{k}", "unknown key; subgroups take by_class, columns and loss_bins")
    bins = node.get("loss_bins")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 0:
        raise ConfigError("report.subgroups.loss_bins", f"a whole number of bins >= 0 (0: none), got {bins!r}")
    by_name = {f.name: (i, f) for i, f in enumerate(features)}
    columns = []
    for i, name in enumerate(node.get("columns") or ()):
        if name not in by_name:
            shown = ", ".join(list(by_name)[:10]) + (", ..." if len(by_name) > 10 else "")
            raise ConfigError(f"report.subgroups.columns.{i}", f"no feature {name!r}; the data has {shown}")
        index, feature = by_name[name]
        if feature.kind == "numeric":
            raise ConfigError(f"report.subgroups.columns.{i}", f"{name!r} is numeric; slice by a categorical or "
                                                               "binary column (numbers: by loss_bins)")
        columns.append((index, name))
    return {"by_class": bool(node.get("by_class", True)), "columns": tuple(columns), "loss_bins": bins}


def prepare_scenario(cfg: Mapping[str, Any], launch_dir: Path | None = None, risk_name: str = "default") -> ScenarioPlan:
    """Validate a resolved config (``data``, ``model``, ``shadow``, ``attack``, ``reference``,
    ``audit``, ``risk``, ``report``). Raises :class:`ConfigError` naming the first bad key; draws
    and fits nothing. ``launch_dir`` roots relative data paths and the default reference-model
    cache; ``risk_name`` is the risk file's name, quoted with the verdict."""
    from ..models import allowed_targets, check_allowed_targets, model_recipe
    from ..verdict import risk_thresholds

    check_config(cfg)
    shadow = cfg["shadow"]
    if not 0.0 < shadow["test_size"] < 1.0:
        raise ConfigError("shadow.test_size", f"must lie strictly between 0 and 1, got {shadow['test_size']}")
    source = build_source(cfg, launch_dir)
    # The rows alone first, before the attacker's labels are laid out for the split check below
    # (a class of 1e8 rows would take minutes there); the reference models join the full check.
    check_memory(source, {}, {}, source.target_counts(), {})
    # The attacker's labels are known before any draw (class blocks in order, or the table's
    # rows), so a split that leaves a class out of either half is caught here, as it will happen.
    y_shadow = source.attacker_labels()
    shadow_train_rows = len(split_shadow(np.arange(len(y_shadow)), y_shadow, shadow)[2])

    allowed = check_allowed_targets((cfg.get("security") or {}).get("allowed_targets"))
    with allowed_targets(allowed):
        target_recipe = model_recipe(cfg["model"], "model", source, launch_dir)
        if shadow.get("model") is not None:
            shadow_recipe = model_recipe(shadow["model"], "shadow.model", source, launch_dir)
        else:
            shadow_recipe = target_recipe
    attack_node = cfg["attack"]
    reference_node = cfg.get("reference") or {}

    audit_cfg = cfg.get("audit") or {"enabled": False}
    fpr_levels = tuple(float(v) for v in (audit_cfg.get("fpr_levels") or ()))
    for i, level in enumerate(fpr_levels):
        if not 0.0 < level <= 1.0:
            raise ConfigError(f"audit.fpr_levels.{i}", f"an FPR level must lie in (0, 1], got {level}")
    n_nonmembers = audit_cfg.get("n_nonmembers")
    if n_nonmembers is not None and n_nonmembers < 1:
        raise ConfigError("audit.n_nonmembers", f"must be at least 1 (or null), got {n_nonmembers}")
    duplicates = audit_cfg.get("duplicates") if audit_cfg.get("enabled") else "keep"
    if duplicates not in ("drop", "keep"):
        raise ConfigError("audit.duplicates", f"unknown choice {duplicates!r}; choose drop or keep")
    risk = cfg.get("risk") or {}
    min_cell = risk.get("min_cell_count")
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise ConfigError("risk.min_cell_count", f"must be a whole number of rows >= 1, got {min_cell!r}")
    rules = _rules(risk.get("rules"))
    thresholds = risk_thresholds(risk, risk_name, fpr_levels, bool(audit_cfg.get("enabled")))
    subgroups = _subgroups((cfg.get("report") or {}).get("subgroups"), source.features)
    base_rate = audit_cfg.get("base_rate")
    if base_rate is not None and not 0.0 < base_rate < 1.0:
        raise ConfigError("audit.base_rate", f"a share of the population must lie strictly between 0 and 1, got {base_rate}")

    cache_dir = None
    if reference_node.get("cache"):
        if reference_node.get("cache_dir"):
            cache_dir = Path(reference_node["cache_dir"]).expanduser()
            if launch_dir is not None and not cache_dir.is_absolute():
                cache_dir = Path(launch_dir) / cache_dir
        elif launch_dir is not None:
            cache_dir = Path(launch_dir) / ".mia_cache" / "reference"
    from ..compute import check_ray_settings

    ray_settings = check_ray_settings(cfg.get("ray"))
    plan = ScenarioPlan(source, shadow, target_recipe, shadow_recipe, attack_node, reference_node,
                        bool(audit_cfg.get("enabled")), n_nonmembers, fpr_levels, base_rate, cache_dir,
                        source.identity(), duplicates, min_cell, rules, thresholds, subgroups, allowed, ray_settings)
    _, _, attacks = plan.build_estimators()  # validates the models' and the attacks' parameters

    if cache_dir is not None and any(a.needs_reference for a in attacks.values()):
        from ..reference import prepare_cache_dir

        prepare_cache_dir(cache_dir)
    rec = source.target_record
    target_counts = plan.member_counts()
    _check_neighbours(plan, min(sum(target_counts.values()), shadow_train_rows))
    audit_counts: dict[int, int] = {}
    if plan.audit_enabled:
        audit_counts = source.nonmember_counts(target_counts, n_nonmembers, "audit.n_nonmembers")
    else:
        for name, a in attacks.items():
            if a.needs_membership_labels:
                raise ConfigError(f"attack.{name}", "the worst-case attack trains on the audit's members and "
                                                    "non-members; it needs audit=fresh_population")
    record_extra = rec.label if rec is not None and (not rec.member or not plan.audit_enabled) else None
    _reference_checks(plan, attacks, target_counts, audit_counts, record_extra)
    check_memory(source, reference_node, attacks, target_counts, audit_counts)
    return plan
