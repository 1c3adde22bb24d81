"""Populations declared as data, validated, and sampled.

A population is a set of classes (label, size) sharing one list of features, each feature
with a distribution per class.  :func:`parse_population` turns the ``data`` config node into
a validated :class:`Population`, raising :class:`~mia_engine.errors.ConfigError` with the
full config key of the first bad value.

Two samplers draw from it:

- :class:`PythonRandomSampler` follows the tutorial notebook's draw order with Python's
  ``random`` module exactly: one ``random.Random(seed)`` stream for the whole scenario,
  feature by feature, and within a feature one class block after another. Successive draws
  (target data, shadow data, fresh audit rows) continue the same stream.
- :class:`NumpySampler` is vectorised; every (draw, class, feature) gets its own
  ``numpy.random.Generator`` from ``SeedSequence(seed, spawn_key=...)``, so changing one
  feature, class size or later draw never changes another's values.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from .source import DataSource, Draws, Feature, Record, Rows, allocate

DISTRIBUTIONS = ("bernoulli", "categorical", "poisson", "normal", "uniform_int")
#: A Poisson's support is tabulated (value, probability): at most this many values (16 MB each).
MAX_POISSON_SUPPORT = 2_000_000
_PARAMS = {
    "bernoulli": ({"p"}, set()),
    "categorical": ({"values", "weights"}, set()),
    "poisson": ({"mu"}, {"low", "high"}),
    "normal": ({"mean", "std"}, {"low", "high"}),
    "uniform_int": ({"low", "high"}, set()),
}
_ALL_PARAMS = ("p", "values", "weights", "mu", "mean", "std", "low", "high")
# Below this, a bounded distribution is treated as holding no probability mass.
_MIN_MASS = 1e-12


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _is_integral(x: Any) -> bool:
    return _is_number(x) and math.isfinite(float(x)) and float(x) == int(x)


@dataclass(frozen=True)
class Distribution:
    """One validated feature distribution."""

    dist: str
    p: float | None = None
    values: tuple | None = None
    weights: tuple | None = None
    mu: float | None = None
    mean: float | None = None
    std: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def discrete(self) -> bool:
        return self.dist != "normal"

    # -- support -------------------------------------------------------------------------
    def poisson_support(self) -> tuple[np.ndarray, np.ndarray]:
        """Support and (unnormalised) pmf of a Poisson, restricted to [low, high]."""
        return _poisson_support(self.mu, self.low, self.high)

    def in_support(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        v = float(value)
        if self.dist == "bernoulli":
            return v in (0.0, 1.0)
        if self.dist == "categorical":
            return any(float(c) == v for c in self.values)
        if self.dist == "normal":
            lo = -math.inf if self.low is None else self.low
            hi = math.inf if self.high is None else self.high
            return math.isfinite(v) and lo <= v <= hi
        if not _is_integral(v):
            return False
        if self.dist == "poisson":
            lo = 0 if self.low is None else self.low
            hi = math.inf if self.high is None else self.high
            return lo <= v <= hi
        return self.low <= v <= self.high  # uniform_int

    def describe_support(self) -> str:
        if self.dist == "bernoulli":
            return "{0, 1}"
        if self.dist == "categorical":
            return "{" + ", ".join(str(v) for v in self.values) + "}"
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        if self.dist == "poisson" and self.low is None:
            lo = "0"
        kind = "real numbers" if self.dist == "normal" else "integers"
        return f"{kind} in [{lo}, {hi}]"

    # -- sampling --------------------------------------------------------------------------
    def sample_python(self, rnd, n: int) -> list:
        """Draw n values from a ``random.Random`` exactly as the tutorial notebook does."""
        if self.dist == "bernoulli":
            # The notebook's `[1, 0][random.random() > p]`: 1 unless the draw exceeds p.
            return [[1, 0][rnd.random() > self.p] for _ in range(n)]
        if self.dist == "categorical":
            # One `random.choices(..., k=n)` call consumes the stream exactly like n calls
            # with k=1, as in the notebook.
            return rnd.choices(list(self.values), weights=list(self.weights), k=n)
        if self.dist == "poisson":
            x, pmf = self.poisson_support()
            return rnd.choices(x, weights=pmf, k=n)
        if self.dist == "uniform_int":
            return [rnd.randint(int(self.low), int(self.high)) for _ in range(n)]
        # normal: plain Gaussian, or inverse-CDF sampling inside the bounds
        if self.low is None and self.high is None:
            return [rnd.gauss(self.mean, self.std) for _ in range(n)]
        from statistics import NormalDist

        nd = NormalDist(self.mean, self.std)
        c_lo = 0.0 if self.low is None else nd.cdf(self.low)
        c_hi = 1.0 if self.high is None else nd.cdf(self.high)
        out = []
        for _ in range(n):
            u = c_lo + rnd.random() * (c_hi - c_lo)
            u = min(max(u, 1e-300), 1.0 - 1e-16)  # inv_cdf needs 0 < u < 1
            out.append(min(max(nd.inv_cdf(u), self._lo()), self._hi()))
        return out

    def sample_numpy(self, gen: np.random.Generator, n: int) -> np.ndarray:
        if self.dist == "bernoulli":
            return (gen.random(n) < self.p).astype(np.int64)
        if self.dist == "categorical":
            w = np.asarray(self.weights, dtype=float)
            return gen.choice(np.asarray(self.values), size=n, p=w / w.sum())
        if self.dist == "poisson":
            if self.low is None and self.high is None:
                return gen.poisson(self.mu, size=n)
            x, pmf = self.poisson_support()
            return gen.choice(x, size=n, p=pmf / pmf.sum())
        if self.dist == "uniform_int":
            return gen.integers(int(self.low), int(self.high), size=n, endpoint=True)
        if self.low is None and self.high is None:
            return gen.normal(self.mean, self.std, size=n)
        from scipy.stats import truncnorm

        a = (self._lo() - self.mean) / self.std
        b = (self._hi() - self.mean) / self.std
        vals = truncnorm.rvs(a, b, loc=self.mean, scale=self.std, size=n, random_state=gen)
        return np.clip(vals, self._lo(), self._hi())

    def _lo(self) -> float:
        return -math.inf if self.low is None else float(self.low)

    def _hi(self) -> float:
        return math.inf if self.high is None else float(self.high)


@functools.lru_cache(maxsize=256)
def _poisson_support(mu: float, low: float | None, high: float | None) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import poisson

    lo = 0 if low is None else int(low)
    hi = _poisson_top(mu) if high is None else int(high)
    x = np.arange(lo, hi + 1)
    pmf = poisson.pmf(x, mu)
    x.flags.writeable = pmf.flags.writeable = False  # shared by every caller
    return x, pmf


def _poisson_top(mu: float) -> int:
    """The count above which a Poisson(mu) has less than 1e-15 of its mass (the tabulated
    support's top); a normal-tail bound where scipy's quantile loses precision (large mu)."""
    from scipy.stats import poisson

    top = poisson.isf(1e-15, mu)
    return int(top) if math.isfinite(top) else int(mu + 9 * math.sqrt(mu) + 100)


def _fmt(x: float) -> str:
    return str(int(x)) if _is_integral(x) else repr(float(x))


@dataclass(frozen=True)
class PopulationClass:
    name: str
    label: int
    size: int
    features: Mapping[str, Distribution]


@dataclass(frozen=True)
class Population:
    name: str
    sampler: str
    seed: int
    feature_names: tuple[str, ...]
    classes: tuple[PopulationClass, ...]
    target_record: Record | None
    probe_records: tuple[Record, ...]

    @property
    def labels(self) -> tuple[int, ...]:
        """Class labels in ascending order: the column order of predict_proba."""
        return tuple(sorted(c.label for c in self.classes))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def discrete(self, feature: str) -> bool:
        return all(c.features[feature].discrete for c in self.classes)

    def make_sampler(self):
        return PythonRandomSampler(self) if self.sampler == "python_random" else NumpySampler(self)


# ---------------------------------------------------------------------------------------------
# Parsing and validation


def _parse_distribution(node: Mapping[str, Any], key: str) -> Distribution:
    dist = node.get("dist")
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{key}.dist", f"unknown distribution {dist!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    for k in node:
        if k != "dist" and k not in _ALL_PARAMS:
            raise ConfigError(f"{key}.{k}", f"unknown key; a feature takes dist and {', '.join(_ALL_PARAMS)}")
    required, optional = _PARAMS[dist]
    given = {k: node.get(k) for k in _ALL_PARAMS if node.get(k) is not None}
    for k in _ALL_PARAMS:
        if k in given and k not in required | optional:
            allowed = ", ".join(sorted(required | optional))
            raise ConfigError(f"{key}.{k}", f"not a parameter of dist {dist!r} (it takes {allowed})")
    for k in sorted(required):
        if k not in given:
            raise ConfigError(f"{key}.{k}", f"dist {dist!r} needs {k}")

    for k in ("p", "mu", "mean", "std", "low", "high"):
        if k in given and not (_is_number(given[k]) and math.isfinite(float(given[k]))):
            raise ConfigError(f"{key}.{k}", f"must be a finite number, got {given[k]!r}")

    kwargs: dict[str, Any] = {}
    if dist == "bernoulli":
        p = float(given["p"])
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{key}.p", f"a probability must lie in [0, 1], got {p}")
        kwargs["p"] = p
    elif dist == "categorical":
        for k in ("values", "weights"):
            if not isinstance(given[k], (list, tuple)):
                raise ConfigError(f"{key}.{k}", f"a list, got {given[k]!r}")
        values, weights = list(given["values"]), list(given["weights"])
        for w in weights:
            if not _is_number(w):
                raise ConfigError(f"{key}.weights", f"weights must be numbers, got {w!r}")
        if not values:
            raise ConfigError(f"{key}.values", "needs at least one value")
        for v in values:
            if not _is_number(v):
                raise ConfigError(f"{key}.values", f"values must be numbers, got {v!r}")
        if len(set(float(v) for v in values)) != len(values):
            raise ConfigError(f"{key}.values", f"values must be distinct, got {values}")
        if len(weights) != len(values):
            raise ConfigError(
                f"{key}.weights", f"{len(weights)} weights for {len(values)} values; give one weight per value"
            )
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ConfigError(f"{key}.weights", f"weights must be finite and >= 0, got {weights}")
        if sum(weights) <= 0:
            raise ConfigError(f"{key}.weights", f"weights are all zero: {weights}")
        kwargs.update(values=tuple(values), weights=tuple(float(w) for w in weights))
    elif dist == "poisson":
        mu = float(given["mu"])
        if mu <= 0:
            raise ConfigError(f"{key}.mu", f"the Poisson rate must be > 0, got {mu}")
        kwargs["mu"] = mu
    elif dist == "normal":
        if float(given["std"]) <= 0:
            raise ConfigError(f"{key}.std", f"the standard deviation must be > 0, got {given['std']}")
        kwargs.update(mean=float(given["mean"]), std=float(given["std"]))

    low, high = given.get("low"), given.get("high")
    if dist in ("poisson", "uniform_int"):
        for k, v in (("low", low), ("high", high)):
            if v is not None and not _is_integral(v):
                raise ConfigError(f"{key}.{k}", f"must be an integer for dist {dist!r}, got {v!r}")
    if low is not None and high is not None and float(low) > float(high):
        raise ConfigError(f"{key}.low", f"low={_fmt(low)} is above high={_fmt(high)}")
    kwargs.update(low=None if low is None else float(low), high=None if high is None else float(high))
    d = Distribution(dist=dist, **kwargs)

    # Bounds must leave some probability mass.
    if dist == "poisson":
        if d.low is not None and d.low < 0:
            raise ConfigError(f"{key}.low", f"a Poisson count cannot be negative, got low={_fmt(d.low)}")
        # The support is tabulated (sampling and checks): refuse a table that cannot fit.
        lo = 0 if d.low is None else int(d.low)
        hi = _poisson_top(d.mu) if d.high is None else int(d.high)
        if hi - lo + 1 > MAX_POISSON_SUPPORT:
            blame = f"{key}.high" if d.high is not None else f"{key}.mu"
            raise ConfigError(blame, f"Poisson(mu={_fmt(d.mu)}) on [{lo}, {hi}] spans {hi - lo + 1:,} values; the "
                                     f"engine tabulates at most {MAX_POISSON_SUPPORT:,}: give low/high closer together "
                                     "or a smaller mu")
        x, pmf = d.poisson_support()
        if not np.isfinite(pmf).all() or pmf.sum() < _MIN_MASS:
            raise ConfigError(
                key, f"bounds [{_fmt(x[0])}, {_fmt(x[-1])}] hold no probability mass of Poisson(mu={_fmt(d.mu)})"
            )
    elif dist == "normal" and (low is not None or high is not None):
        from statistics import NormalDist

        nd = NormalDist(d.mean, d.std)
        mass = nd.cdf(d._hi()) - nd.cdf(d._lo()) if math.isfinite(d._hi()) else 1 - nd.cdf(d._lo())
        if mass < _MIN_MASS:
            raise ConfigError(
                key, f"bounds [{_fmt(d._lo())}, {_fmt(d._hi())}] hold no probability mass of "
                f"Normal(mean={_fmt(d.mean)}, std={_fmt(d.std)})"
            )
    return d


def parse_record(node: Mapping[str, Any], key: str, name: str, pop_features: Sequence[str],
                 classes: Sequence[PopulationClass], label: Any = None, member: Any = None) -> Record:
    """Validate a record's feature values against every class's support."""
    features = dict(node)
    for f in features:
        if f not in pop_features:
            raise ConfigError(f"{key}.{f}", f"unknown feature; the population has {', '.join(pop_features)}")
    values = []
    for f in pop_features:
        if f not in features or features[f] is None:
            raise ConfigError(f"{key}.{f}", "missing; a record needs a value for every feature")
        v = features[f]
        dists = [c.features[f] for c in classes]
        if not any(d.in_support(v) for d in dists):
            supports = " / ".join(sorted({d.describe_support() for d in dists}))
            raise ConfigError(f"{key}.{f}", f"value {v!r} is outside the feature's support {supports}")
        values.append(float(v))
    return Record(name=name, values=tuple(values), label=label, member=member)


def parse_population(cfg: Mapping[str, Any], key: str = "data", records: bool = True) -> Population:
    """Validate a population config node (a ``PopulationConfig``) and build a :class:`Population`.

    ``records=False`` ignores the target and probe records (an attacker's population needs none).
    """
    sampler = cfg.get("sampler")
    if sampler not in ("python_random", "numpy"):
        raise ConfigError(f"{key}.sampler", f"unknown sampler {sampler!r}; choose python_random or numpy")
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{key}.seed", f"must be a non-negative integer, got {seed!r}")
    class_nodes = cfg.get("classes") or {}
    if len(class_nodes) < 2:
        raise ConfigError(f"{key}.classes", f"needs at least two classes, got {len(class_nodes)}")

    classes: list[PopulationClass] = []
    feature_names: tuple[str, ...] | None = None
    first = None
    for cname, cnode in class_nodes.items():
        ckey = f"{key}.classes.{cname}"
        size = cnode.get("size")
        if size is None or size < 1:
            raise ConfigError(f"{ckey}.size", f"a class needs at least one row, got {size}")
        fnodes = cnode.get("features") or {}
        if not fnodes:
            raise ConfigError(f"{ckey}.features", "a class needs at least one feature")
        names = tuple(fnodes.keys())
        if feature_names is None:
            feature_names, first = names, cname
        elif set(names) != set(feature_names):
            missing = sorted(set(feature_names) - set(names))
            extra = sorted(set(names) - set(feature_names))
            detail = "; ".join(
                part for part in (f"missing {', '.join(missing)}" if missing else "",
                                  f"extra {', '.join(extra)}" if extra else "") if part
            )
            raise ConfigError(f"{ckey}.features", f"differ from {key}.classes.{first}.features ({detail})")
        dists = {f: _parse_distribution(fnodes[f], f"{ckey}.features.{f}") for f in feature_names}
        classes.append(PopulationClass(name=cname, label=int(cnode.get("label")), size=int(size), features=dists))

    labels = [c.label for c in classes]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{key}.classes", f"class labels must be distinct, got {labels}")

    target = None
    tnode = cfg.get("target_record") if records else None
    if tnode is not None:
        tkey = f"{key}.target_record"
        if tnode.get("label") not in labels:
            raise ConfigError(f"{tkey}.label", f"{tnode.get('label')!r} is not a class label; labels are {labels}")
        target = parse_record(tnode.get("features") or {}, f"{tkey}.features", tnode.get("name"),
                              feature_names, classes, label=int(tnode.get("label")),
                              member=bool(tnode.get("member")))
    probes = tuple(
        parse_record(pnode or {}, f"{key}.probe_records.{pname}", pname, feature_names, classes)
        for pname, pnode in ((cfg.get("probe_records") or {}) if records else {}).items()
    )
    return Population(name=cfg.get("name"), sampler=sampler, seed=seed, feature_names=feature_names,
                      classes=tuple(classes), target_record=target, probe_records=probes)


# ---------------------------------------------------------------------------------------------
# Samplers


#: Rows and labels drawn from a population, class block after class block.
Sample = Rows


class PythonRandomSampler:
    """The tutorial's draw order on one ``random.Random(seed)`` stream shared by all draws."""

    def __init__(self, population: Population):
        import random

        self.population = population
        self._rnd = random.Random(population.seed)

    def draw(self, purpose: str, sizes: Mapping[str, int]) -> Sample:
        pop = self.population
        columns = []
        for f in pop.feature_names:
            col: list = []
            for c in pop.classes:
                col.extend(c.features[f].sample_python(self._rnd, sizes[c.name]))
            columns.append(np.asarray(col, dtype=float))
        y = np.concatenate([np.full(sizes[c.name], c.label, dtype=np.int64) for c in pop.classes])
        X = np.column_stack(columns) if columns else np.empty((len(y), 0))
        return Sample(X=X.reshape(len(y), len(pop.feature_names)), y=y)


class NumpySampler:
    """Vectorised draws; each (purpose, class, feature) has its own seeded stream."""

    def __init__(self, population: Population):
        self.population = population

    def _generator(self, purpose: str, cls: str, feature: str) -> np.random.Generator:
        key = tuple(zlib.crc32(s.encode()) for s in (purpose, cls, feature))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.population.seed, spawn_key=key)))

    def draw(self, purpose: str, sizes: Mapping[str, int]) -> Sample:
        pop = self.population
        blocks = []
        for c in pop.classes:
            n = sizes[c.name]
            cols = [np.asarray(c.features[f].sample_numpy(self._generator(purpose, c.name, f), n), dtype=float)
                    for f in pop.feature_names]
            blocks.append(np.column_stack(cols).reshape(n, len(pop.feature_names)))
        y = np.concatenate([np.full(sizes[c.name], c.label, dtype=np.int64) for c in pop.classes])
        return Sample(X=np.vstack(blocks), y=y)


# ---------------------------------------------------------------------------------------------
# The population as a data source


class _PopulationDraws(Draws):
    """The scenario's draws: the target's rows, the attacker's rows (continuing the
    population's stream when the attacker samples the true population), the audit's rows."""

    def __init__(self, source: "PopulationSource"):
        self._source = source
        self._sampler = source.population.make_sampler()
        attacker = source.attacker_population
        self._attacker_sampler = self._sampler if attacker is source.population else attacker.make_sampler()

    def target(self) -> Rows:
        pop = self._source.population
        return self._sampler.draw("target", {c.name: c.size for c in pop.classes})

    def attacker(self) -> Rows:
        return self._attacker_sampler.draw("shadow", self._source.attacker_sizes)

    def nonmembers(self, counts: Mapping[int, int]) -> Rows:
        pop = self._source.population
        return self._sampler.draw("audit", {c.name: int(counts.get(c.label, 0)) for c in pop.classes})


def _feature_of(pop: Population, name: str) -> Feature:
    """How the engine describes a declared feature: Bernoulli -> binary, categorical ->
    categorical (its values), the counts and reals -> numeric."""
    dists = [c.features[name] for c in pop.classes]
    kinds = {d.dist for d in dists}
    if kinds == {"bernoulli"}:
        return Feature(name, "binary", (0, 1), integral=True)
    if kinds == {"categorical"}:
        # The matrix holds the declared values themselves (not codes): no categories to map.
        return Feature(name, "categorical", integral=all(float(v).is_integer() for d in dists for v in d.values))
    return Feature(name, "numeric", integral=all(d.discrete for d in dists))


class PopulationSource(DataSource):
    """Rows drawn from declared distributions (``data.kind=population``): the tutorial's source.

    The attacker draws from ``attacker_population`` (the true population unless
    ``data@shadow.population`` names another) with ``attacker_sizes`` rows per class."""

    kind = "population"

    def __init__(self, population: Population, attacker_population: Population, attacker_sizes: Mapping[str, int],
                 config: Mapping[str, Any] | None = None):
        super().__init__(name=population.name, features=tuple(_feature_of(population, f)
                                                               for f in population.feature_names),
                         labels=population.labels, label_values=population.labels,
                         target_record=population.target_record,
                         probe_records=population.probe_records, synthetic=True)
        self.population = population
        self.attacker_population = attacker_population
        self.attacker_sizes = dict(attacker_sizes)
        self.config = dict(config or {})

    def draws(self) -> Draws:
        return _PopulationDraws(self)

    def target_counts(self) -> dict[int, int]:
        return {c.label: c.size for c in self.population.classes}

    def attacker_counts(self) -> dict[int, int]:
        return {c.label: self.attacker_sizes[c.name] for c in self.attacker_population.classes}

    def nonmember_counts(self, member_counts: Mapping[int, int], n: int | None, key: str) -> dict[int, int]:
        """As many fresh rows as members, class by class; ``n`` in all in the same proportions."""
        return dict(member_counts) if n is None else allocate(n, dict(member_counts))

    def trial_target(self, seed: int) -> Rows:
        import dataclasses

        pop = dataclasses.replace(self.population, seed=seed)
        return pop.make_sampler().draw("target", {c.name: c.size for c in pop.classes})

    def parse_record(self, node: Mapping[str, Any], key: str, name: str) -> Record:
        pop = self.population
        if not isinstance(node, Mapping):
            raise ConfigError(key, f"give {{label: ..., features: {{...}}}}, got {node!r}")
        label = node.get("label")
        if label not in pop.labels:
            raise ConfigError(f"{key}.label", f"{label!r} is not a class label; labels are {list(pop.labels)}")
        for k in node:
            if k not in ("label", "features", "member", "name") and node.get(k) is not None:
                raise ConfigError(f"{key}.{k}", "a record of a declared population is given by label and features")
        return parse_record(node.get("features") or {}, f"{key}.features", name, pop.feature_names, pop.classes,
                            label=int(label))

    def identity(self) -> dict[str, Any]:
        return self.config or self.describe()

    def describe(self) -> dict[str, Any]:
        pop = self.population
        card = {"kind": self.kind, "name": pop.name, "nonmembers_are": self.nonmembers_are, "sampler": pop.sampler,
                "seed": pop.seed,
                "features": {f.name: f.kind for f in self.features},
                "labels": list(pop.labels),
                "rows": {"target": sum(self.target_counts().values()),
                         "attacker": sum(self.attacker_sizes.values())}}
        if self.attacker_population is not pop:
            card["attacker_population"] = self.attacker_population.name
        return card


def class_sizes(pop: Population, per_class: int | None, sizes: Mapping[str, int] | None, key: str) -> dict[str, int]:
    """Rows per class for a draw: ``per_class`` for every class (None: the declared sizes), then
    ``sizes`` class by class."""
    out = {c.name: c.size if per_class is None else per_class for c in pop.classes}
    for name, n in (sizes or {}).items():
        if name not in out:
            raise ConfigError(f"{key}.sizes.{name}", f"no class {name!r} in the population; classes are {', '.join(out)}")
        out[name] = n
    for name, n in out.items():
        if n is None or n < 1:
            k = f"{key}.sizes.{name}" if sizes and name in sizes else f"{key}.size_per_class"
            raise ConfigError(k, f"each class needs at least one shadow row, got {n} for {name!r}")
    return out


def population_source(data: Mapping[str, Any], shadow: Mapping[str, Any], key: str = "data") -> PopulationSource:
    """Validate ``data`` (and the attacker's ``shadow.population``/sizes) into a source."""
    pop = parse_population(data, key)
    if shadow.get("population") is not None:
        attacker = parse_population(shadow["population"], "shadow.population", records=False)
        if set(attacker.labels) != set(pop.labels) or attacker.feature_names != pop.feature_names:
            raise ConfigError(
                "shadow.population",
                f"must have the target population's features {list(pop.feature_names)} (same order) and labels "
                f"{list(pop.labels)}; got {list(attacker.feature_names)} and {list(attacker.labels)}",
            )
    else:
        attacker = pop
    sizes = class_sizes(attacker, shadow.get("size_per_class"), shadow.get("sizes"), "shadow")
    return PopulationSource(pop, attacker, sizes, {"data": data, "shadow_population": shadow.get("population")})
