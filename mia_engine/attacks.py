"""The attack family, one interface: learn from the attacker's knowledge, then score records.

Every attack turns records into membership scores (higher = more likely a member) and has a
decision threshold in the same units, so all are audited the same way
(:func:`mia_engine.metrics.attack_metrics`). What each needs:

======================  =========================================================
``shadow_lr``           shadow models (Shokri et al. 2017)
``loss_threshold``      shadow models (Yeom et al. 2018)
``lira``                reference models (Carlini et al. 2022), online or offline
``rmia``                reference models and population rows (Zarifzadeh et al. 2024)
``worst_case``          the target's outputs on real members and non-members
======================  =========================================================

Attacks are built from config nodes by :func:`build_attacks` and follow scikit-learn's
conventions: ``__init__`` stores, ``fit`` learns (learned state ends in ``_``).

Adding an attack: subclass :class:`Attack`, set ``kind``, declare ``parameters`` (parameter
name -> constraint, in constructor order, named like the constructor's keyword arguments; see
:class:`Integer`, :class:`Real`, :class:`Interval`, :class:`Choice`, :class:`Boolean`,
:class:`FeatureList`, :class:`Classifier`, :class:`OrNone`), the "needs" flags and
``threat_model``, and add the class to :data:`REGISTRY`. :func:`validate_params` checks a
config node against the declaration (errors name ``attack.<name>.<param>``); a parameter the
node leaves out takes the constructor's default (the Python API's, for attacks built in code;
a composed config always gives every parameter, from ``conf/attack/<name>.yaml``, and a test
checks that both build the same attack). A config schema in ``config.py`` (types only) and a
file in ``conf/attack/`` make it selectable from the command line.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError
from .signals import FEATURES, attack_features, true_label_logit, true_label_probability

_TINY = np.finfo(float).tiny


@dataclass
class ShadowModel:
    """One of the attacker's shadow models and its outputs on its own train / held-out halves."""

    model: Any
    X_in: np.ndarray
    y_in: np.ndarray
    X_out: np.ndarray
    y_out: np.ndarray
    p_in: np.ndarray
    p_out: np.ndarray


@dataclass
class Knowledge:
    """What the attacker has before scoring: shadow models, reference models, population rows."""

    classes: np.ndarray
    shadow_models: list[ShadowModel] = field(default_factory=list)
    reference: Any = None                 # mia_engine.reference.ReferenceSet
    # Reference query-row indices and labels of the attacker's population rows (RMIA's z),
    # with the target's probabilities on them.
    population_index: np.ndarray | None = None
    population_X: np.ndarray | None = None
    population_y: np.ndarray | None = None
    population_target_probabilities: np.ndarray | None = None
    # One view per reference pool trained ("candidates", "population"); empty: ``reference``
    # and ``population_index`` above are the candidates pool's.
    views: dict[str, "ReferenceView"] = field(default_factory=dict)

    def view(self, pool: str, candidates: "Candidates") -> "ReferenceView":
        """The reference models of ``pool`` and where the scored records and the population
        rows sit among their query rows."""
        if pool in self.views:
            return self.views[pool]
        if pool == "candidates" and self.reference is not None:
            return ReferenceView(self.reference, candidates.reference_index, self.population_index)
        raise ConfigError("reference", f"no reference models were trained on the {pool} pool")


@dataclass
class ReferenceView:
    """One set of reference models: ``candidate_index`` and ``population_index`` locate the
    scored records and the attacker's population rows among the set's query rows."""

    reference: Any
    candidate_index: np.ndarray
    population_index: np.ndarray


@dataclass
class Candidates:
    """Records to score against the target: the audit's members and non-members (and the
    individual). ``reference_index`` locates each record among the reference query rows;
    ``is_member`` is the evaluator's truth (only the worst-case attack may read it)."""

    X: np.ndarray
    y: np.ndarray
    target_probabilities: np.ndarray
    is_member: np.ndarray
    scored: np.ndarray                    # bool: part of the audit (False: only the individual)
    reference_index: np.ndarray | None = None


# ---- parameter constraints ----------------------------------------------------------------------
# After scikit-learn's ``_parameter_constraints``, but ours: an attack class declares
# ``parameters = {"n_shadow_models": Integer(min=1), ...}``. A constraint is called with the
# config value and its full key (``attack.<name>.<param>``); it returns the value the
# constructor gets (an int, a float, a list, a built estimator) or raises ConfigError(key, ...).


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and not math.isnan(v)


class Constraint:
    """One parameter's rule: ``constraint(value, key) -> value the constructor gets``."""

    def __call__(self, value: Any, key: str) -> Any:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (an integral float such as 3.0 counts), at least ``min``."""

    min: int | None = None

    def __call__(self, value, key):
        if value is None and self.min is not None:
            raise ConfigError(key, f"must be at least {self.min}, got None")
        if not (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
                or isinstance(value, float) and value.is_integer()):
            raise ConfigError(key, f"must be an integer, got {_show(value)}")
        if self.min is not None and value < self.min:
            raise ConfigError(key, f"must be at least {self.min}, got {value}")
        return int(value)


@dataclass(frozen=True)
class Real(Constraint):
    """A finite number (not NaN, not infinite), greater than ``gt`` if given. ``what`` opens the message."""

    gt: float | None = None
    what: str = ""

    def _say(self, text: str) -> str:
        return f"{self.what} {text}" if self.what else text

    def __call__(self, value, key):
        if not _is_real(value):
            raise ConfigError(key, self._say(f"must be a number, got {_show(value)}"))
        if not math.isfinite(value):
            raise ConfigError(key, self._say(f"must be a finite number, got {value}"))
        if self.gt is not None and not value > self.gt:
            bound = "positive" if self.gt == 0 else f"greater than {self.gt:g}"
            raise ConfigError(key, self._say(f"must be {bound}, got {value}"))
        return float(value)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in the closed interval [lo, hi]. ``what`` opens the message."""

    lo: float
    hi: float
    what: str = ""

    def __call__(self, value, key):
        if not (_is_real(value) and self.lo <= value <= self.hi):
            text = f"must lie in [{self.lo:g}, {self.hi:g}], got {_show(value)}"
            raise ConfigError(key, f"{self.what} {text}" if self.what else text)
        return float(value)


class Choice(Constraint):
    """One of the listed strings; the message names the parameter (the key's last part)."""

    def __init__(self, *options: str):
        self.options = options

    def __repr__(self):
        return f"Choice{self.options!r}"

    def __call__(self, value, key):
        if not isinstance(value, str) or value not in self.options:
            param = key.rsplit(".", 1)[-1]
            raise ConfigError(key, f"unknown {param} {value!r}; available: {', '.join(self.options)}")
        return value


@dataclass(frozen=True)
class Boolean(Constraint):
    """true or false (a string such as "false" is refused, not read as true)."""

    def __call__(self, value, key):
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(key, f"must be true or false, got {_show(value)}")
        return bool(value)


@dataclass(frozen=True)
class FeatureList(Constraint):
    """A non-empty list of names from :data:`mia_engine.signals.FEATURES` (errors on an entry
    name ``key.<index>``)."""

    def __call__(self, value, key):
        available = ", ".join(FEATURES)
        if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)):
            raise ConfigError(key, f"must be a list of features, e.g. [max_probability], got {_show(value)}; "
                                   f"available: {available}")
        names = list(value or [])
        if not names:
            raise ConfigError(key, "name at least one feature; available: " + available)
        for i, f in enumerate(names):
            if f not in FEATURES:
                raise ConfigError(f"{key}.{i}", f"unknown attack feature {f!r}; available: {available}")
        return names


@dataclass(frozen=True)
class Classifier(Constraint):
    """An estimator node ``{_target_: ..., **kwargs}`` built by
    :func:`mia_engine.models.build_estimator`; it must give probabilities (``predict_proba``)."""

    def __call__(self, value, key):
        from .models import build_estimator

        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be an estimator node {{_target_: ..., ...}}, got {_show(value)}")
        clf = build_estimator(value, key)
        if not hasattr(clf, "predict_proba"):
            raise ConfigError(key, f"{type(clf).__name__} gives no probabilities (predict_proba)")
        return clf


@dataclass(frozen=True)
class OrNone(Constraint):
    """None (null), or a value ``inner`` accepts."""

    inner: Constraint

    def __call__(self, value, key):
        return None if value is None else self.inner(value, key)


# ---- the attack interface ---------------------------------------------------------------------


class Attack:
    """Base class. Subclasses declare, as class data, what the scenario and the game must
    prepare before ``fit`` and which config parameters they take (``parameters``).

    What an attack needs (read before anything is trained):

    ``n_shadow_models``
        Shadow models to learn from (0: none; ``needs_shadow_models`` is ``n_shadow_models > 0``).
        Set per instance from the config; the scenario trains as many as the most demanding
        attack asks for and hands each its first ``n_shadow_models``.
    ``needs_reference``
        Reference models (:mod:`mia_engine.reference`) trained on halves of a pool, their
        outputs on the scored records and on population rows (``Knowledge.reference``).
    ``needs_membership_labels``
        The audit's true membership labels (``Candidates.is_member``), which no real attacker
        holds: such an attack is an upper bound for the audit, not a threat, and the
        individual game (which keeps its coin flips from the attacker) cannot run it.

    ``threat_model`` says in one line what the attacker is assumed to hold.
    """

    kind = ""
    parameters: dict[str, Constraint] = {}  # config parameter -> constraint (see validate_params)
    threat_model: str = ""
    n_shadow_models = 0  # shadow models the attack learns from (shadow_lr, loss_threshold)
    needs_reference = False
    needs_membership_labels = False
    online = False
    score_is_probability = False
    score_label = "membership score"

    def __init__(self, name: str, threshold: float | None):
        self.name = name
        self.threshold = threshold

    @property
    def needs_shadow_models(self) -> bool:
        return self.n_shadow_models > 0

    def fit(self, knowledge: Knowledge) -> "Attack":
        self.classes_ = knowledge.classes
        self.threshold_ = self.threshold
        return self

    def score(self, candidates: Candidates, knowledge: Knowledge) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


_PROBABILITY_THRESHOLD = "a probability threshold"
_SHADOW_THREAT = "population rows (shadow data) and the model's training recipe"
#: What a reference-model attacker holds: (online, pool) -> one line. Carlini et al.'s offline
#: setting comes in two: references whose pool holds the candidate records (each record scored
#: by the models that left it out), and references on the attacker's population rows only.
REFERENCE_THREATS = {
    (True, "candidates"): "population rows, the recipe, and the candidate records (some of them the target's "
                          "members) to train reference models on, with and without each (online)",
    (False, "candidates"): "population rows, the recipe, and the candidate records to train reference models on; "
                           "each record scored by the models that left it out (offline, candidates in the pool)",
    (False, "population"): "population rows and the recipe; no candidate record in any reference model "
                           "(offline, population rows only)",
}
_POOLS = ("candidates", "population")


# ---- Shokri et al. ----------------------------------------------------------------------------


class ShadowLRAttack(Attack):
    """A classifier on the shadow models' outputs: their training rows are members, their
    held-out rows non-members. With one shadow model, ``max_probability`` and a logistic
    regression this is the tutorial's attack, number for number."""

    kind = "shadow_lr"
    parameters = {
        "classifier": Classifier(),
        "features": FeatureList(),
        "n_shadow_models": Integer(min=1),
        "per_class": Boolean(),
        "threshold": Interval(0, 1, what=_PROBABILITY_THRESHOLD),
    }
    threat_model = _SHADOW_THREAT
    score_is_probability = True
    score_label = "membership probability"

    def __init__(self, name, classifier, features=("max_probability",), n_shadow_models=1, per_class=False,
                 threshold=0.5):
        super().__init__(name, threshold)
        self.classifier = classifier
        self.features = tuple(features)
        self.n_shadow_models = n_shadow_models
        self.per_class = per_class

    def fit(self, knowledge):
        from sklearn.base import clone

        super().fit(knowledge)
        shadows = knowledge.shadow_models[: self.n_shadow_models]
        # The notebook's stacking order: each shadow model's members, then its non-members.
        X = np.vstack([f for s in shadows for f in (attack_features(s.p_in, s.y_in, self.classes_, self.features),
                                                    attack_features(s.p_out, s.y_out, self.classes_, self.features))])
        y = np.concatenate([v for s in shadows for v in (np.ones(len(s.y_in)), np.zeros(len(s.y_out)))])
        labels = np.concatenate([v for s in shadows for v in (s.y_in, s.y_out)])
        groups = self.classes_ if self.per_class else [None]
        self.classifiers_ = {}
        for c in groups:
            rows = np.ones(len(y), bool) if c is None else labels == c
            if len(np.unique(y[rows])) < 2:
                raise ConfigError(f"attack.{self.name}.per_class",
                                  f"the shadow data of class {c} holds only one of member / non-member")
            clf = clone(self.classifier) if c is not None else self.classifier
            clf.fit(X[rows], y[rows])
            self.classifiers_[c] = (clf, int(np.flatnonzero(clf.classes_ == 1.0)[0]))
        return self

    def score_probabilities(self, probabilities, y):
        X = attack_features(probabilities, y, self.classes_, self.features)
        out = np.empty(len(X))
        for c, (clf, col) in self.classifiers_.items():
            rows = np.ones(len(X), bool) if c is None else np.asarray(y) == c
            if np.any(rows):
                out[rows] = clf.predict_proba(X[rows])[:, col]
        return out

    def score(self, candidates, knowledge):
        return self.score_probabilities(candidates.target_probabilities, candidates.y)


# ---- Yeom et al. ------------------------------------------------------------------------------


class LossThresholdAttack(Attack):
    """Members have low loss. Score = log p_true (= minus the cross-entropy loss); the
    threshold is calibrated on the shadow models' members and non-members."""

    kind = "loss_threshold"
    parameters = {
        "calibration": Choice("mean_train_loss", "best_accuracy"),
        "n_shadow_models": Integer(min=1),
        "threshold": OrNone(Real()),  # score units (log p_true); None: calibrated
    }
    threat_model = _SHADOW_THREAT
    score_label = "log p_true (minus the loss)"

    def __init__(self, name, calibration="mean_train_loss", n_shadow_models=1, threshold=None):
        super().__init__(name, threshold)
        self.calibration = calibration
        self.n_shadow_models = n_shadow_models

    def _log_p(self, probabilities, y):
        return np.log(np.maximum(true_label_probability(probabilities, y, self.classes_), _TINY))

    def fit(self, knowledge):
        super().fit(knowledge)
        shadows = knowledge.shadow_models[: self.n_shadow_models]
        s_in = np.concatenate([self._log_p(s.p_in, s.y_in) for s in shadows])
        s_out = np.concatenate([self._log_p(s.p_out, s.y_out) for s in shadows])
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif self.calibration == "mean_train_loss":
            self.threshold_ = float(np.mean(s_in))
        else:  # best_accuracy: the cut between sorted scores that classifies most shadow rows right
            cuts = np.unique(np.concatenate([s_in, s_out]))
            # Correct calls at each cut: members at or above it, non-members below it.
            correct = (len(s_in) - np.searchsorted(np.sort(s_in), cuts, side="left")
                       + np.searchsorted(np.sort(s_out), cuts, side="left"))
            self.threshold_ = float(cuts[int(np.argmax(correct))])
        return self

    def score(self, candidates, knowledge):
        return self._log_p(candidates.target_probabilities, candidates.y)


# ---- reference-model attacks ------------------------------------------------------------------


def _check_pool(name, online, pool):
    if online and pool != "candidates":
        raise ConfigError(f"attack.{name}.pool", "an online attack needs reference models trained with each "
                                                 "scored record: pool=candidates (or online=false)")
    return pool


#: Reference statistics are gathered for this many (model, record) pairs at a time, so that
#: scoring needs a few arrays of this size (float64: 32 MB each) however many models there are.
_CHUNK_CELLS = 1 << 22


def _chunked_stats(ref, index, y, transform, reduce):
    """``reduce(stats, in_mask)`` over the records at ``index``, a block of records at a time,
    each returned array concatenated over the blocks. ``stats`` (n_models, n_block) float64 is
    each reference model's logit of the record's true label (``transform="logit"``) or that
    probability (``"probability"``); ``in_mask`` whether the record was in the model's training
    set (records outside the pool never are)."""
    from scipy.special import expit

    index = np.asarray(index)
    labels = ref.labels[index]
    if labels.shape != np.shape(y) or not np.array_equal(labels, y):
        raise ValueError("the records' labels differ from the labels the reference models were scored with")
    n_models = ref.scores.shape[0]
    n_pool = ref.in_mask.shape[1]
    step = max(1, _CHUNK_CELLS // max(n_models, 1))
    parts = []
    for lo in range(0, len(index), step):
        block = index[lo:lo + step]
        stats = ref.scores[:, block].astype(np.float64)
        if transform == "probability":
            stats = expit(stats)
        in_mask = np.zeros(stats.shape, dtype=bool)
        pooled = block < n_pool
        in_mask[:, pooled] = ref.in_mask[:, block[pooled]]
        parts.append(reduce(stats, in_mask))
    if not parts:
        return tuple(np.empty(0) for _ in reduce(np.empty((n_models, 0)), np.empty((n_models, 0), bool)))
    return tuple(np.concatenate(p) for p in zip(*parts))


def _masked_mean_std(values, mask, ddof=1):
    n = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(n, 1)
    sq = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(sq / np.maximum(n - ddof, 1))
    return mean, std, n, sq


class LiraAttack(Attack):
    """Likelihood-ratio attack on phi = logit(p_true).

    Online: per record, Gaussians fitted to phi under the reference models that trained on it
    (IN) and those that did not (OUT); score = log N(phi_t; IN) - log N(phi_t; OUT).
    Offline: OUT only; score = -ln P(phi >= phi_t | OUT), a one-sided test.
    ``variance="fixed"`` replaces each record's standard deviation by one pooled over all
    records (the within-record spread), which is steadier with few reference models.
    """

    kind = "lira"
    parameters = {
        "online": Boolean(),
        "variance": Choice("per_record", "fixed"),
        "threshold": OrNone(Real()),  # score units; None: 0 online, 3 offline
        "pool": Choice(*_POOLS),
    }
    needs_reference = True
    MIN_STD = 1e-3  # floor: a record whose reference logits all coincide still gets a finite score

    def __init__(self, name, online=True, variance="per_record", threshold=None, pool="candidates"):
        super().__init__(name, threshold)
        self.online = online
        self.variance = variance
        self.pool = _check_pool(name, online, pool)
        self.score_label = "log likelihood ratio" if online else "-ln p-value (OUT test)"

    @property
    def threat_model(self):
        return REFERENCE_THREATS[(bool(self.online), self.pool)]

    def fit(self, knowledge):
        super().fit(knowledge)
        self.threshold_ = float(self.threshold if self.threshold is not None else (0.0 if self.online else 3.0))
        return self

    def _gaussian(self, mean, std, n, sq):
        if self.variance == "fixed":
            pooled = np.sqrt(sq.sum() / max(int(np.sum(n - 1)), 1))
            std = np.full_like(std, pooled)
        return mean, np.maximum(std, self.MIN_STD), n

    def score(self, candidates, knowledge):
        from scipy.stats import norm

        view = knowledge.view(self.pool, candidates)

        def reduce(stats, in_mask):
            return (*_masked_mean_std(stats, ~in_mask), *_masked_mean_std(stats, in_mask))

        parts = _chunked_stats(view.reference, view.candidate_index, candidates.y, "logit", reduce)
        phi = true_label_logit(candidates.target_probabilities, candidates.y, self.classes_)
        mu_out, sd_out, n_out = self._gaussian(*parts[:4])
        if np.any(n_out < 2):
            raise ConfigError("reference.n_models", f"attack {self.name} needs at least 2 OUT reference models per "
                                                    f"record; some records have {int(n_out.min())}")
        if not self.online:
            return -norm.logsf(phi, loc=mu_out, scale=sd_out)
        mu_in, sd_in, n_in = self._gaussian(*parts[4:])
        if np.any(n_in < 2):
            raise ConfigError(f"attack.{self.name}.online",
                              f"online LiRA needs at least 2 IN reference models per record; some have "
                              f"{int(n_in.min())} (set reference.n_models>=4, "
                              f"or attack.{self.name}.online=false)")
        return norm.logpdf(phi, mu_in, sd_in) - norm.logpdf(phi, mu_out, sd_out)


class RmiaAttack(Attack):
    """Relative membership inference: for a record x and each population row z,
    LR(x, z) = [Pr(x|target) / Pr(x)] / [Pr(z|target) / Pr(z)], with Pr(.|model) = p_true and
    Pr(.) the average over reference models (online: all of them; offline: the OUT models,
    corrected by ``a``). Score = the fraction of z with LR(x, z) >= gamma.

    With one set of z for every record the fraction is a step function of x's own ratio
    r = Pr(x|target) / Pr(x): with a few hundred z, many members beat every z and tie at 1,
    which hides the attack's low-FPR behaviour. ``tie_break`` adds r / (1 + r) / (2 |z|),
    less than half a step, so tied records are ordered by r (the many-z limit) while every
    decision at ``threshold`` stays what the fraction alone gives (the threshold is moved to
    the smallest achievable fraction at or above it)."""

    kind = "rmia"
    parameters = {
        "online": Boolean(),
        "gamma": Real(gt=0, what="RMIA's likelihood-ratio threshold"),
        "a": Interval(0, 1),
        "threshold": Interval(0, 1, what=_PROBABILITY_THRESHOLD),
        "tie_break": Boolean(),
        "pool": Choice(*_POOLS),
    }
    needs_reference = True
    score_label = "fraction of population rows beaten"

    def __init__(self, name, online=True, gamma=1.0, a=0.3, threshold=0.5, tie_break=True, pool="candidates"):
        super().__init__(name, threshold)
        self.online = online
        self.gamma = gamma
        self.a = a
        self.tie_break = tie_break
        self.pool = _check_pool(name, online, pool)

    @property
    def threat_model(self):
        return REFERENCE_THREATS[(bool(self.online), self.pool)]

    def fit(self, knowledge):
        super().fit(knowledge)
        n_z = len(knowledge.population_y) if knowledge.population_y is not None else 0
        if self.tie_break and n_z:
            self.threshold_ = math.ceil(self.threshold * n_z - 1e-9) / n_z
        return self

    def _marginal(self, ref, index, y, scored=True):
        """Pr(.) for the records at ``index``. Online, the mean over all reference models (half
        of them trained on a scored record); offline, the OUT models' mean corrected by ``a``.
        Population rows z no model trained on (``scored=False``) are OUT everywhere: online
        their Pr(z) is the plain mean, offline the same correction applies."""
        def reduce(stats, in_mask):
            out = ~in_mask
            return (stats.mean(axis=0), in_mask.sum(axis=0), out.sum(axis=0), np.where(out, stats, 0.0).sum(axis=0))

        mean_all, n_in, n_out, sum_out = _chunked_stats(ref, index, y, "probability", reduce)
        if self.online:
            if scored and np.any(n_in == 0):
                raise ConfigError(f"attack.{self.name}.online",
                                  "online RMIA needs reference models trained on the scored records: set "
                                  f"attack.{self.name}.pool=candidates, or attack.{self.name}.online=false")
            return mean_all
        if np.any(n_out == 0):
            raise ConfigError("reference.n_models", f"attack {self.name} needs OUT reference models for every record")
        p_out = sum_out / n_out
        return 0.5 * ((1.0 + self.a) * p_out + (1.0 - self.a))

    def score(self, candidates, knowledge):
        px = true_label_probability(candidates.target_probabilities, candidates.y, self.classes_)
        view = knowledge.view(self.pool, candidates)
        ratio_x = px / np.maximum(self._marginal(view.reference, view.candidate_index, candidates.y), _TINY)
        pz = true_label_probability(knowledge.population_target_probabilities, knowledge.population_y, self.classes_)
        ratio_z = pz / np.maximum(self._marginal(view.reference, view.population_index, knowledge.population_y,
                                                 scored=False), _TINY)
        # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma: count with one sorted search.
        ratio_z = np.sort(ratio_z)
        fraction = np.searchsorted(ratio_z, ratio_x / self.gamma, side="right") / len(ratio_z)
        if not self.tie_break:
            return fraction
        return fraction + ratio_x / (1.0 + ratio_x) / (2 * len(ratio_z))


# ---- worst case --------------------------------------------------------------------------------


class WorstCaseAttack(Attack):
    """A classifier trained on the target's own outputs for real members and non-members and
    scored on held-out ones: stratified folds, repeated with fresh assignments, each record's
    score the mean of its held-out scores. The individual, when not part of the audit, is
    scored by the mean of all fold models."""

    kind = "worst_case"
    parameters = {
        "classifier": Classifier(),
        "features": FeatureList(),
        "n_folds": Integer(min=2),
        "n_repeats": Integer(min=1),
        "seed": Integer(min=0),  # numpy seeds are non-negative
        "threshold": Interval(0, 1, what=_PROBABILITY_THRESHOLD),
    }
    threat_model = "the audit's true membership labels (an upper bound, not an attacker)"
    needs_membership_labels = True
    score_is_probability = True
    score_label = "membership probability (held out)"

    def __init__(self, name, classifier, features=("sorted_probabilities",), n_folds=5, n_repeats=5, seed=2017,
                 threshold=0.5):
        super().__init__(name, threshold)
        self.classifier = classifier
        self.features = tuple(features)
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.seed = seed

    def score(self, candidates, knowledge):
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        X = attack_features(candidates.target_probabilities, candidates.y, self.classes_, self.features)
        audit = np.flatnonzero(candidates.scored)
        extra = np.flatnonzero(~candidates.scored)
        member = candidates.is_member[audit].astype(int)
        if min(np.sum(member == 1), np.sum(member == 0)) < self.n_folds:
            raise ConfigError(f"attack.{self.name}.n_folds",
                              f"{self.n_folds} folds need at least {self.n_folds} members and non-members in the "
                              f"audit; it has {int(np.sum(member == 1))} and {int(np.sum(member == 0))}")
        totals = np.zeros(len(candidates.y))
        counts = np.zeros(len(candidates.y))
        for r in range(self.n_repeats):
            folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=np.random.RandomState([self.seed, r]))
            for train, test in folds.split(X[audit], member):
                clf = clone(self.classifier).fit(X[audit][train], member[train])
                col = int(np.flatnonzero(clf.classes_ == 1)[0])
                totals[audit[test]] += clf.predict_proba(X[audit][test])[:, col]
                counts[audit[test]] += 1
                if len(extra):
                    totals[extra] += clf.predict_proba(X[extra])[:, col]
                    counts[extra] += 1
        return totals / counts


# ---- building -----------------------------------------------------------------------------------

# kind -> attack class: the one place to add an attack (see the module docstring).
REGISTRY: dict[str, type[Attack]] = {cls.kind: cls for cls in (
    ShadowLRAttack,
    LossThresholdAttack,
    LiraAttack,
    RmiaAttack,
    WorstCaseAttack,
)}


def __getattr__(name: str):
    # KINDS follows the registry, including classes registered after import.
    if name == "KINDS":
        return tuple(REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_params(cls: type[Attack], node: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The keyword arguments ``node`` gives ``cls``'s constructor, each checked by the
    constraint ``cls.parameters`` declares for it (errors name ``key.<param>``). A parameter
    the node leaves out takes the constructor's default; one without a default is required.
    A key the class does not declare (other than ``kind``) is an error: Hydra's schemas catch
    those first, but nodes built in code bypass the schemas."""
    declared = cls.parameters
    for k in node.keys():
        if k != "kind" and k not in declared:
            raise ConfigError(f"{key}.{k}", f"unknown parameter of attack kind {cls.kind!r}; it takes: "
                                            f"{', '.join(declared)}")
    signature = inspect.signature(cls.__init__).parameters
    kwargs = {}
    for param, constraint in declared.items():
        if param not in node:  # (an OmegaConf node's ??? counts as left out)
            if signature[param].default is inspect.Parameter.empty:
                raise ConfigError(f"{key}.{param}", f"missing: attack kind {cls.kind!r} needs it")
            continue
        kwargs[param] = constraint(node.get(param), f"{key}.{param}")
    return kwargs


def build_attack(name: str, node: Mapping[str, Any], key: str) -> Attack:
    """The attack ``node`` describes: ``node.kind`` looked up in :data:`REGISTRY`, the rest
    checked by :func:`validate_params`."""
    kind = node.get("kind")
    cls = REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"{key}.kind", f"unknown attack kind {kind!r}; available: {', '.join(REGISTRY)}")
    return cls(name, **validate_params(cls, node, key))


def build_attacks(node: Mapping[str, Any], key: str = "attack") -> dict[str, Attack]:
    """Every attack the ``attack`` node holds (``attack.<name>.kind`` names the algorithm)."""
    if not node:
        raise ConfigError(key, "no attack selected; e.g. attack=shadow_lr, attack=suite or attack=[lira,rmia]")
    out = {}
    for name, sub in node.items():
        if not isinstance(sub, Mapping) or "kind" not in sub:
            raise ConfigError(f"{key}.{name}", "each attack is a node with a `kind`; pick one with attack=<name> "
                                               "(conf/attack/)")
        out[name] = build_attack(name, sub, f"{key}.{name}")
    return out
