"""What every data source offers a scenario, whatever it holds.

A scenario never asks which kind of source it has. It asks the source for:

- ``features``: the columns the model sees (numeric / categorical / binary), in the order of
  the engine's feature matrix, which preprocessing and plots follow;
- ``labels``: the class labels the engine computes with (ints, ascending: the columns of
  ``predict_proba``) and ``label_values``, what the user's data calls them;
- the named individuals (``target_record``, ``probe_records``, and the game's records through
  :meth:`DataSource.parse_record`) as :class:`Record` rows in the engine's encoding;
- a :meth:`DataSource.draws` session: the target's training rows, the attacker's rows and the
  audit's non-members, in that order (a synthetic population continues one random stream);
- :meth:`DataSource.trial_target`: a fresh target training set for one trial of the game;
- :meth:`DataSource.describe`: a data card (name, source, digests, counts, schema; never rows).

Rows travel as :class:`Rows`: a float64 matrix (categories as codes, missing values as NaN),
int64 labels and, for tables, each row's identifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

FEATURE_KINDS = ("numeric", "categorical", "binary")


@dataclass(frozen=True)
class Feature:
    """One column the model sees. ``categories`` maps codes to the data's own values
    (categorical: code i is ``categories[i]``; binary: 0 and 1). Empty: the matrix holds the
    values themselves (a declared population's categorical features are numbers)."""

    name: str
    kind: str
    categories: tuple = ()
    integral: bool = False     # numeric values are whole numbers (written without a decimal point)

    @property
    def discrete(self) -> bool:
        return self.kind != "numeric" or self.integral


@dataclass(frozen=True)
class Record:
    """A named individual in the engine's encoding (``values`` in feature order)."""

    name: str
    values: tuple[float, ...]
    label: int | None = None
    member: bool | None = None
    id: Any = None             # the row identifier when the record is a row of a table


@dataclass
class Rows:
    """Rows in the engine's encoding: ``X`` float64 (n, d), ``y`` int64 (n,), ``ids`` (tables)."""

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[int, int]:
        labels, n = np.unique(self.y, return_counts=True)
        return {int(k): int(v) for k, v in zip(labels, n)}


class Draws:
    """One scenario's draws, asked for in this order: ``target()``, ``attacker()``,
    ``nonmembers(counts)``. A synthetic population may draw them from one random stream."""

    def target(self) -> Rows:  # pragma: no cover - interface
        raise NotImplementedError

    def attacker(self) -> Rows:  # pragma: no cover - interface
        raise NotImplementedError

    def nonmembers(self, counts: Mapping[int, int]) -> Rows:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class DataSource:
    """The interface; :class:`~mia_engine.data.population.PopulationSource` and
    :class:`~mia_engine.data.table.TableSource` implement it."""

    name: str
    features: tuple[Feature, ...]
    labels: tuple[int, ...]
    label_values: tuple
    target_record: Record | None = None
    probe_records: tuple[Record, ...] = ()
    #: True when the rows are drawn from declared distributions (nobody's real record), so the
    #: datasets and fitted models may be logged by default.
    synthetic: bool = field(default=True)

    kind = ""
    #: Whether models get a preprocessing Pipeline unless ``model.preprocess`` says otherwise.
    preprocess_by_default = False
    #: Whether missing values are imputed by the model's Pipeline (``data.missing=impute``).
    impute = False
    #: Whether the target's training rows are the user's own (a saved model can be audited).
    training_rows_given = False
    #: What the audit's non-members are, in a word: "fresh" draws or "held-out" rows.
    nonmembers_are = "fresh"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def label_value(self, label: int) -> Any:
        return self.label_values[self.labels.index(int(label))]

    # -- what a scenario asks ------------------------------------------------------------------
    def draws(self) -> Draws:  # pragma: no cover - interface
        raise NotImplementedError

    def target_counts(self) -> dict[int, int]:  # pragma: no cover - interface
        """Rows per label of the target's training set, without the named record."""
        raise NotImplementedError

    def attacker_counts(self) -> dict[int, int]:  # pragma: no cover - interface
        raise NotImplementedError

    def attacker_labels(self) -> np.ndarray:
        """The attacker's rows' labels in draw order, known before any draw (class blocks)."""
        return np.concatenate([np.full(n, label, dtype=np.int64) for label, n in self.attacker_counts().items()])

    def nonmember_counts(self, member_counts: Mapping[int, int], n: int | None, key: str) -> dict[int, int]:
        """Non-members per label for the audit: ``n`` in all (None: the source's default)."""
        raise NotImplementedError  # pragma: no cover - interface

    def trial_target(self, seed: int) -> Rows:  # pragma: no cover - interface
        """A fresh target training set (without the named records) for one trial of the game."""
        raise NotImplementedError

    def parse_record(self, node: Mapping[str, Any], key: str, name: str) -> Record:  # pragma: no cover
        """A named record from config (``label`` and ``features``, or a table row's ``id``)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - interface
        """The data card: what was audited, never a row."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What, besides the rows' bytes, a cache entry made from this source's rows is tied to."""
        return self.describe()

    def schema_yaml(self) -> str | None:
        """The feature schema as YAML to paste back into the config (None: nothing to pin)."""
        return None

    def tracked_datasets(self) -> list[dict[str, Any]]:
        """Dataset descriptions for the tracker (name, source, digest, rows, schema); none by default."""
        return []


def allocate(total: int, weights: Mapping[Any, int]) -> dict[Any, int]:
    """Split ``total`` rows across classes in proportion to ``weights`` (largest remainder)."""
    w = np.array(list(weights.values()), dtype=float)
    raw = total * w / w.sum()
    n = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - n), kind="stable")[: total - n.sum()]:
        n[i] += 1
    return dict(zip(weights.keys(), (int(v) for v in n)))


def allocate_capped(total: int, weights: Mapping[Any, int], caps: Mapping[Any, int]) -> dict[Any, int]:
    """:func:`allocate`, with no class above its cap; the excess goes to classes with room.
    Callers make sure ``total`` fits under the caps."""
    out = {k: 0 for k in weights}
    left = total
    active = {k: w for k, w in weights.items() if caps[k] > 0 and w > 0}
    while left > 0 and active:
        share = allocate(left, active)
        for k, n in share.items():
            take = min(n, caps[k] - out[k])
            out[k] += take
            left -= take
        active = {k: w for k, w in active.items() if out[k] < caps[k]}
    return out


def feature_kinds(features: Sequence[Feature]) -> dict[str, str]:
    return {f.name: f.kind for f in features}
