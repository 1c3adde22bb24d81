"""Rows from files (``data.kind=table``): a researcher's CSV or Parquet, or a bundled table.

Two layouts:

- one table (``data.path``) that the engine splits, seeded and stratified by label, into the
  target's training rows, the attacker's population rows and held-out non-members for the
  audit (``data.split``: fractions or counts);
- the researcher's own files: ``train_path`` (the members), ``test_path`` (held-out rows: the
  audit's non-members) and optional ``population_path`` (the attacker's rows; without it, a
  seeded, stratified ``population_fraction`` of the test rows goes to the attacker).

Every feature column is encoded into the engine's float matrix: numeric as is (missing values
as NaN), categorical as codes into its categories, binary as 0/1. The schema (``data.features``)
is pinned in config or inferred, and written to the run's outputs so it can be pinned.
Named individuals (``target_record``, the game's records) are rows given by ``id_column`` value or
records given by feature values; rows of named individuals are held out of every split, so
the scenario (or the game) alone decides whether they are members.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from .source import DataSource, Draws, Feature, Record, Rows, allocate_capped

#: Bundled tables a newcomer can audit without a download (``data.builtin``).
BUILTIN = ("breast_cancer",)
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# A text column whose non-missing values are mostly numbers is a numeric column with stray
# text in it (an error naming the first bad row), unless declared categorical.
_NUMERIC_SHARE = 0.5


def _py(v: Any) -> Any:
    """A plain Python scalar for a value read from pandas/numpy (JSON- and YAML-able)."""
    return v.item() if isinstance(v, np.generic) else v


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA -> True
    except (TypeError, ValueError):
        return False


def _names(columns: Sequence[str], most: int = 10) -> str:
    """Column names for a one-line message: the first ``most``, then how many in all."""
    shown = ", ".join(columns[:most])
    return shown if len(columns) <= most else f"{shown}, ... ({len(columns)} in all)"


def _sort_key(v: Any):
    return (0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        else (1, 0.0, str(v))


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class TablePart:
    """One file (or bundled table) as read: its role, where it came from, digest, frame."""

    context: str        # table | train | test | population
    source: str         # the path, or e.g. sklearn.datasets.load_breast_cancer
    digest: str         # sha256 of the file's bytes (of the CSV text for a bundled table)
    frame: Any          # pandas.DataFrame
    key: str            # the config key that named it
    rows: int = 0       # rows in the file


def _read(path_value: str, key: str, fmt: str, launch_dir: Path | None, context: str) -> TablePart:
    import pandas as pd

    path = Path(str(path_value)).expanduser()
    if not path.is_absolute() and launch_dir is not None:
        path = Path(launch_dir) / path
    if not path.exists():
        raise ConfigError(key, f"{path}: no such file")
    if path.is_dir():
        raise ConfigError(key, f"{path} is a directory, not a table file")
    kind = fmt if fmt != "auto" else _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(key, f"{path}: cannot tell the format from the extension {path.suffix!r}; use .csv or "
                               ".parquet, or set data.format=csv|parquet")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(key, f"{path}: cannot read it ({e.strerror or e})") from None
    if not data.strip():
        raise ConfigError(key, f"{path} is empty")
    try:
        if kind == "csv":
            import io

            frame = pd.read_csv(io.BytesIO(data), keep_default_na=True)
        else:
            import io

            frame = pd.read_parquet(io.BytesIO(data))
    except Exception as e:  # pandas' parser errors, pyarrow's, a CSV that is binary junk
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(key, f"{path}: cannot read it as {kind} ({reason[:200]})") from None
    if len(frame) == 0:
        raise ConfigError(key, f"{path} has a header but no rows")
    frame.columns = [str(c) for c in frame.columns]
    return TablePart(context, str(path), hashlib.sha256(data).hexdigest(), frame, key, len(frame))


def _builtin(name: str, key: str) -> TablePart:
    """A bundled table as one part (conf/data/<name>.yaml names its label and id column)."""
    if name != "breast_cancer":
        raise ConfigError(key, f"unknown bundled table {name!r}; available: {', '.join(BUILTIN)}")
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    frame.insert(0, "row", np.arange(len(frame)))
    # Plain words instead of 0/1: the label column shows string labels at work.
    frame["diagnosis"] = pd.Series(np.asarray(bunch.target_names)[bunch.target.to_numpy()], dtype=object)
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return TablePart("table", "sklearn.datasets.load_breast_cancer", digest, frame, key, len(frame))


# ---------------------------------------------------------------------------------------------
# Schema


def _numeric_share(values) -> tuple[float, int | None]:
    """Share of non-missing values that parse as numbers, and the position of the first that does not."""
    import pandas as pd

    parsed = pd.to_numeric(values, errors="coerce")
    present = ~pd.isna(values)
    bad = present & pd.isna(parsed)
    n = int(present.sum())
    first = int(np.flatnonzero(np.asarray(bad))[0]) if bad.any() else None
    return (1.0 if n == 0 else 1.0 - int(bad.sum()) / n), first


def _row_name(frame, i: int, id_column: str | None) -> str:
    if id_column is not None:
        return f"row {i} ({id_column}={_py(frame[id_column].iloc[i])!r})"
    return f"row {i}"


def _infer_kind(col, values, frame, id_column) -> str:
    import pandas as pd

    present = values[~pd.isna(values)]
    distinct = pd.unique(present)
    if pd.api.types.is_bool_dtype(values.dtype) or len(distinct) == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    share, first = _numeric_share(values)
    if share >= _NUMERIC_SHARE and len(present):
        raise ConfigError(f"data.features.{col}", f"text in a numeric column: {_row_name(frame, first, id_column)} "
                                                  f"holds {values.iloc[first]!r} (declare the column "
                                                  f"+data.features.{col}={{kind: categorical}} if it is a category)")
    return "categorical"


def _schema(frames: Sequence[Any], columns: Sequence[str], declared: Mapping[str, Any] | None, key: str,
            id_column: str | None) -> list[Feature]:
    """Each feature column's kind and categories: declared ones checked, the rest inferred from
    all rows of all files."""
    import pandas as pd

    declared = dict(declared or {})
    for col, node in declared.items():
        if col not in columns:
            raise ConfigError(f"{key}.features.{col}", f"no such feature column; the features are {_names(columns)}")
        if not isinstance(node, Mapping):
            raise ConfigError(f"{key}.features.{col}", f"give {{kind: ..., categories: [...]}}, got {node!r}")
        for k in node:
            if k not in ("kind", "categories"):
                raise ConfigError(f"{key}.features.{col}.{k}", "unknown key; a feature takes kind and categories")
    keep = list(columns) + ([id_column] if id_column is not None else [])
    joined = pd.concat([f[keep] for f in frames], ignore_index=True)
    out = []
    for col in columns:
        values = joined[col]
        node = declared.get(col) or {}
        kind = node.get("kind") or _infer_kind(col, values, joined, id_column)
        fkey = f"{key}.features.{col}"
        if kind not in ("numeric", "categorical", "binary"):
            raise ConfigError(f"{fkey}.kind", f"unknown kind {kind!r}; choose numeric, categorical or binary")
        present = values[~pd.isna(values)]
        if kind == "numeric":
            if node.get("categories"):
                raise ConfigError(f"{fkey}.categories", "a numeric column has no categories")
            for frame in frames:
                share, first = _numeric_share(frame[col])
                if first is not None:
                    raise ConfigError(fkey, f"text in a numeric column: {_row_name(frame, first, id_column)} holds "
                                            f"{frame[col].iloc[first]!r}")
            numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
            integral = bool(len(numbers)) and bool(np.all(np.isfinite(numbers) & (numbers == np.round(numbers))))
            out.append(Feature(col, "numeric", integral=integral))
            continue
        seen = sorted({_py(v) for v in present.tolist()}, key=_sort_key)
        if node.get("categories"):
            cats = [_py(v) for v in node["categories"]]
            if len(set(map(str, cats))) != len(cats):
                raise ConfigError(f"{fkey}.categories", f"categories must be distinct, got {cats}")
            # Values outside the declared list are kept as further categories: a model that never
            # saw them in training ignores them (one-hot with unknown categories ignored).
            extra = [v for v in seen if v not in cats]
            cats = cats + extra
        else:
            cats = seen
        if kind == "binary" and len(cats) > 2:
            raise ConfigError(f"{fkey}.kind", f"a binary column holds two values; {col!r} holds {len(cats)}: "
                                              f"{cats[:6]}{' ...' if len(cats) > 6 else ''}")
        integral = all(isinstance(v, (int, bool)) or (isinstance(v, float) and v.is_integer()) for v in cats)
        out.append(Feature(col, kind, tuple(cats), integral=integral))
    return out


def schema_yaml(features: Sequence[Feature], name: str) -> str:
    """The schema as YAML to paste under ``data:`` to pin it."""
    import yaml

    doc = {"features": {f.name: ({"kind": f.kind} if f.kind == "numeric"
                                 else {"kind": f.kind, "categories": list(f.categories)}) for f in features}}
    head = (f"# The feature schema of {name}, as the engine read it. Paste the `features:` block under\n"
            "# `data:` (or into your data file) to pin it: kinds and categories then stay fixed.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None)


def _encode(frame, features: Sequence[Feature]) -> np.ndarray:
    """The engine's float matrix: numbers as they are, categories as codes, missing as NaN."""
    import pandas as pd

    X = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, f in enumerate(features):
        values = frame[f.name]
        if f.kind == "numeric":
            X[:, j] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        else:
            lookup = {_py(v): i for i, v in enumerate(f.categories)}
            X[:, j] = [math.nan if _is_missing(v) else lookup[_py(v)] for v in values.tolist()]
    return X


def decode_frame(X: np.ndarray, features: Sequence[Feature], columns: Sequence[str] | None = None):
    """The engine's matrix back as a DataFrame with the data's own values (what a researcher's
    saved Pipeline was trained on); ``columns`` orders the columns as the model expects."""
    import pandas as pd

    cols = {}
    for j, f in enumerate(features):
        x = X[:, j]
        if f.kind == "numeric":
            cols[f.name] = x.astype(np.int64) if f.integral and not np.isnan(x).any() else x
        else:
            cats = np.asarray(list(f.categories) + [None], dtype=object)
            codes = np.where(np.isnan(x), len(f.categories), x).astype(np.int64)
            values = cats[codes]
            if not np.isnan(x).any() and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in f.categories):
                values = values.astype(np.int64 if f.integral else np.float64)
            elif np.isnan(x).any():
                values = np.where(values == None, np.nan, values)  # noqa: E711 - elementwise
            cols[f.name] = values
    frame = pd.DataFrame(cols)
    return frame[list(columns)] if columns is not None else frame


# ---------------------------------------------------------------------------------------------
# The source


@dataclass
class _Split:
    target: np.ndarray      # row indices into the encoded pool
    attacker: np.ndarray
    nonmembers: np.ndarray


class _TableDraws(Draws):
    def __init__(self, source: "TableSource"):
        self._s = source

    def target(self) -> Rows:
        return self._s.rows(self._s.split.target)

    def attacker(self) -> Rows:
        return self._s.rows(self._s.split.attacker)

    def nonmembers(self, counts: Mapping[int, int]) -> Rows:
        s = self._s
        idx = s.split.nonmembers
        if counts == s.rows(idx).counts():
            return s.rows(idx)
        # A seeded, stratified subset of the held-out rows (sizes checked at plan time).
        rng = np.random.default_rng(np.random.SeedSequence(s.seed, spawn_key=(3,)))
        keep = [rng.permutation(idx[s.y[idx] == label])[:n] for label, n in counts.items()]
        return s.rows(np.sort(np.concatenate(keep)))


class TableSource(DataSource):
    """A table of real records. ``X``, ``y``, ``ids`` hold every row the splits draw from (named
    individuals' rows held out); ``split`` says which rows play which part."""

    kind = "table"
    preprocess_by_default = True
    nonmembers_are = "held-out"

    def __init__(self, *, name, features, labels, label_values, X, y, ids, split: _Split, seed: int,
                 parts: list[TablePart], layout: str, label_column: str, dropped: Sequence[str],
                 id_column: str | None, missing: Mapping[str, int], named_rows: Mapping[Any, tuple], impute: bool):
        super().__init__(name=name, features=tuple(features), labels=tuple(labels),
                         label_values=tuple(label_values), synthetic=False)
        self.X, self.y, self.ids = X, y, ids
        self.split = split
        self.seed = seed
        self.parts = [TablePart(p.context, p.source, p.digest, None, p.key, p.rows) for p in parts]  # no frames kept
        self.layout = layout
        self.label_column = label_column
        self.dropped = tuple(dropped)
        self.id_column = id_column
        self.missing = dict(missing)
        self.impute = impute
        self.training_rows_given = layout == "files"
        self._named_rows = dict(named_rows)   # id -> (values, label) of held-out named rows

    def rows(self, idx: np.ndarray) -> Rows:
        return Rows(self.X[idx], self.y[idx], None if self.ids is None else self.ids[idx])

    def draws(self) -> Draws:
        return _TableDraws(self)

    def target_counts(self) -> dict[int, int]:
        return self.rows(self.split.target).counts()

    def attacker_counts(self) -> dict[int, int]:
        return self.rows(self.split.attacker).counts()

    def attacker_labels(self) -> np.ndarray:
        return self.y[self.split.attacker]

    def nonmember_counts(self, member_counts: Mapping[int, int], n: int | None, key: str) -> dict[int, int]:
        """Every held-out row (``n`` null), or ``n`` of them in the held-out rows' proportions."""
        available = self.rows(self.split.nonmembers).counts()
        if n is None:
            return available
        total = sum(available.values())
        if n > total:
            raise ConfigError(key, f"{n} non-members asked for, but the table holds out {total} rows for the audit")
        return allocate_capped(n, available, available)

    def trial_target(self, seed: int) -> Rows:
        """A fresh target training set as large as the scenario's, per label, drawn from the
        rows the attacker does not hold (the target's and the held-out rows)."""
        pool = np.concatenate([self.split.target, self.split.nonmembers])
        rng = np.random.default_rng(seed)
        want = self.target_counts()
        idx = [rng.permutation(pool[self.y[pool] == label])[:n] for label, n in sorted(want.items())]
        return self.rows(np.concatenate(idx))

    # -- named records ---------------------------------------------------------------------------
    def parse_record(self, node: Mapping[str, Any], key: str, name: str) -> Record:
        """A named record: a held-out row of the table (``id``) or feature values and a label."""
        if not isinstance(node, Mapping):
            raise ConfigError(key, f"give {{id: ...}} or {{label: ..., features: {{...}}}}, got {node!r}")
        for k in node:
            if k not in ("id", "label", "features", "name", "member"):
                raise ConfigError(f"{key}.{k}", "unknown key; a record takes id, or label and features")
        rid = node.get("id")
        if rid is not None:
            if node.get("features"):
                raise ConfigError(f"{key}.features", "give a record either by id or by feature values, not both")
            match = [k for k in self._named_rows if str(k) == str(rid)]
            if not match:
                raise ConfigError(f"{key}.id", f"{rid!r} is not a named row of the table")
            values, label = self._named_rows[match[0]]
            return Record(name, values, label, id=_py(match[0]))
        label = node.get("label")
        code = self._label_code(label, f"{key}.label")
        return Record(name, self._values(node.get("features") or {}, f"{key}.features"), code)

    def _label_code(self, value, key: str) -> int:
        for code, v in zip(self.labels, self.label_values):
            if v == value or (not isinstance(v, str) and not isinstance(value, str) and value is not None
                              and float(v) == float(value)) or str(v) == str(value):
                return code
        raise ConfigError(key, f"{value!r} is not a label of the table; its labels are {list(self.label_values)}")

    def _values(self, node: Mapping[str, Any], key: str) -> tuple[float, ...]:
        names = self.feature_names
        for f in node:
            if f not in names:
                raise ConfigError(f"{key}.{f}", f"unknown feature; the table's features are {_names(names)}")
        out = []
        for f in self.features:
            v = node.get(f.name)
            if _is_missing(v):
                if not self.impute:
                    raise ConfigError(f"{key}.{f.name}", "missing; a record needs a value for every feature "
                                                         "(or data.missing=impute)")
                out.append(math.nan)
            elif f.kind == "numeric":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                    raise ConfigError(f"{key}.{f.name}", f"a numeric feature needs a finite number, got {v!r}")
                out.append(float(v))
            else:
                codes = [i for i, c in enumerate(f.categories) if c == v or str(c) == str(v)]
                if not codes:
                    raise ConfigError(f"{key}.{f.name}", f"{v!r} is not a value of {f.name!r}; its values are "
                                                         f"{list(f.categories)}")
                out.append(float(codes[0]))
        return tuple(out)

    # -- data card -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        def counts(idx):
            return {str(self.label_value(k)): v for k, v in self.rows(idx).counts().items()}

        return {
            "kind": self.kind, "name": self.name, "layout": self.layout, "nonmembers_are": self.nonmembers_are,
            "sources": [{"context": p.context, "source": p.source, "sha256": p.digest} for p in self.parts],
            "label": self.label_column, "labels": list(self.label_values),
            "features": {f.name: f.kind for f in self.features},
            "dropped": list(self.dropped), "id_column": self.id_column,
            "missing": {k: v for k, v in self.missing.items() if v},
            "rows": {"target": int(len(self.split.target)), "attacker": int(len(self.split.attacker)),
                     "nonmembers": int(len(self.split.nonmembers)), "named": len(self._named_rows)},
            "class_counts": {"target": counts(self.split.target), "attacker": counts(self.split.attacker),
                             "nonmembers": counts(self.split.nonmembers)},
        }

    def schema_yaml(self) -> str:
        return schema_yaml(self.features, self.name)

    def tracked_datasets(self) -> list[dict[str, Any]]:
        """One entry per file: name, source, digest, context, row count and schema, never a row."""
        schema = {f.name: f.kind for f in self.features}
        schema[self.label_column] = "label"
        rows = {"target": len(self.split.target), "attacker": len(self.split.attacker),
                "nonmembers": len(self.split.nonmembers)}
        out = []
        for p in self.parts:
            profile = {"rows_used": {k: int(v) for k, v in rows.items()}, "layout": self.layout,
                       "named_rows_held_out": len(self._named_rows)}
            out.append({"name": f"{self.name}" if p.context == "table" else f"{self.name}_{p.context}",
                        "source": p.source, "digest": p.digest, "context": p.context, "n_rows": int(p.rows),
                        "schema": schema, "profile": profile})
        return out


# ---------------------------------------------------------------------------------------------
# Building a source from config


def _size(value, n_rows: int, key: str) -> int:
    """A split size given as a fraction (0 < v < 1) or a count (a whole number >= 1)."""
    if value is None:
        return 0
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(key, f"a size is a fraction in (0, 1) or a count >= 1, got {value!r}")
    if v < 1:
        return int(math.floor(v * n_rows + 1e-9))  # fractions never add up past the table
    if not v.is_integer():
        raise ConfigError(key, f"a count must be a whole number, got {value!r}")
    return int(v)


def _stratified_parts(y: np.ndarray, sizes: Sequence[int], seed: int, labels: Sequence[int]) -> list[np.ndarray]:
    """Disjoint, stratified index sets of the given sizes, from one seeded permutation per class."""
    counts = {int(k): int(np.sum(y == k)) for k in labels}
    left = dict(counts)
    takes = []
    for n in sizes:
        take = allocate_capped(n, counts, left)
        for k in take:
            left[k] -= take[k]
        takes.append(take)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    perms = {k: rng.permutation(np.flatnonzero(y == k)) for k in counts}
    out = []
    start = {k: 0 for k in counts}
    for take in takes:
        idx = []
        for k in counts:
            idx.append(perms[k][start[k]:start[k] + take[k]])
            start[k] += take[k]
        out.append(np.sort(np.concatenate(idx)))
    return out


def table_source(data: Mapping[str, Any], shadow: Mapping[str, Any], key: str = "data",
                 launch_dir: Path | None = None, game_records: Mapping[str, Any] | None = None) -> TableSource:
    """Read, check, encode and split the table(s) a ``data.kind=table`` node names. Rows named by
    id in ``data.target_record``, ``data.probe_records`` or ``game_records`` (the game's
    ``evaluation.records``) are held out of every split."""
    if shadow.get("population") is not None:
        raise ConfigError("shadow.population", "a table's attacker rows come from the data (data.split.population or "
                                               "data.population_path); drop data@shadow.population")
    if shadow.get("sizes"):
        raise ConfigError("shadow.sizes", "a table's attacker rows come from the data (data.split.population or "
                                          "data.population_path), not from shadow sizes")
    fmt = data.get("format")
    if fmt not in ("auto", "csv", "parquet"):
        raise ConfigError(f"{key}.format", f"unknown format {fmt!r}; choose auto, csv or parquet")
    builtin, path, train_path = data.get("builtin"), data.get("path"), data.get("train_path")
    given = [k for k, v in (("builtin", builtin), ("path", path), ("train_path", train_path)) if v]
    if len(given) != 1:
        which = "none of them" if not given else " and ".join(f"{key}.{k}" for k in given)
        raise ConfigError(f"{key}.path", f"name one table: {key}.path (one table the engine splits), "
                                         f"{key}.train_path with {key}.test_path (your own split) or {key}.builtin; "
                                         f"got {which}")
    if builtin:
        parts, layout = [_builtin(str(builtin), f"{key}.builtin")], "split"
    elif path:
        for k in ("test_path", "population_path"):
            if data.get(k):
                raise ConfigError(f"{key}.{k}", f"goes with {key}.train_path, not with {key}.path")
        parts, layout = [_read(path, f"{key}.path", fmt, launch_dir, "table")], "split"
    else:
        if not data.get("test_path"):
            raise ConfigError(f"{key}.test_path", f"{key}.train_path (the members) needs {key}.test_path: held-out "
                                                  "rows of the same population, the audit's non-members")
        parts = [_read(train_path, f"{key}.train_path", fmt, launch_dir, "train"),
                 _read(data["test_path"], f"{key}.test_path", fmt, launch_dir, "test")]
        if data.get("population_path"):
            parts.append(_read(data["population_path"], f"{key}.population_path", fmt, launch_dir, "population"))
        layout = "files"
    first = parts[0]
    for p in parts[1:]:
        a, b = set(first.frame.columns), set(p.frame.columns)
        if a != b:
            missing, extra = sorted(a - b), sorted(b - a)
            detail = "; ".join(s for s in (f"missing {', '.join(missing)}" if missing else "",
                                           f"extra {', '.join(extra)}" if extra else "") if s)
            raise ConfigError(p.key, f"{p.source} has other columns than {first.source} ({detail})")
    columns = list(first.frame.columns)

    label = data.get("label")
    if not label:
        raise ConfigError(f"{key}.label", f"name the label column; the table's columns are {_names(columns)}")
    if label not in columns:
        raise ConfigError(f"{key}.label", f"no column {label!r}; the table's columns are {_names(columns)}")
    drop = [str(c) for c in (data.get("drop") or [])]
    for i, c in enumerate(drop):
        if c not in columns:
            raise ConfigError(f"{key}.drop.{i}", f"no column {c!r} to drop; the table's columns are {_names(columns)}")
    id_column = data.get("id_column")
    if id_column is not None and id_column not in columns:
        raise ConfigError(f"{key}.id_column", f"no column {id_column!r}; the table's columns are {_names(columns)}")
    feature_cols = [c for c in columns if c != label and c not in drop and c != id_column]
    if not feature_cols:
        raise ConfigError(f"{key}.drop", "no feature columns are left for the model")

    frames = [p.frame for p in parts]
    for p in parts:
        bad = p.frame[label].isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ConfigError(f"{key}.label", f"{p.source}: the label column {label!r} is missing in "
                                              f"{int(bad.sum())} row(s), first {_row_name(p.frame, i, id_column)}")
    label_values = sorted({_py(v) for f in frames for v in f[label].tolist()}, key=_sort_key)
    if len(label_values) < 2:
        raise ConfigError(f"{key}.label", f"the label column {label!r} holds one class ({label_values[0]!r}); "
                                          "membership inference needs a classifier of at least two")
    features = _schema(frames, feature_cols, data.get("features"), key, id_column)

    impute = data.get("missing")
    if impute not in ("error", "impute"):
        raise ConfigError(f"{key}.missing", f"unknown choice {impute!r}; choose error or impute")
    missing = {}
    for c in feature_cols:
        n = sum(int(f[c].isna().sum()) for f in frames)
        missing[c] = n
        if n and impute == "error":
            p = next(p for p in parts if p.frame[c].isna().any())
            i = int(np.flatnonzero(p.frame[c].isna().to_numpy())[0])
            raise ConfigError(f"{key}.missing", f"column {c!r} has {n} missing value(s), first in {p.source} "
                                                f"{_row_name(p.frame, i, id_column)}; set {key}.missing=impute to "
                                                "let the model impute them")

    code_of = {v: i for i, v in enumerate(label_values)}
    encoded = []
    for p in parts:
        X = _encode(p.frame, features)
        y = np.asarray([code_of[_py(v)] for v in p.frame[label].tolist()], dtype=np.int64)
        ids = (np.asarray([_py(v) for v in p.frame[id_column].tolist()], dtype=object) if id_column is not None
               else np.asarray([f"{p.context}:{i}" for i in range(len(p.frame))], dtype=object))
        encoded.append((p.context, X, y, ids))
    labels = list(range(len(label_values)))

    # Named individuals given by id: their rows leave the splits.
    named_nodes = []
    if data.get("target_record"):
        named_nodes.append((f"{key}.target_record", data["target_record"]))
    named_nodes += [(f"evaluation.records.{n}", node) for n, node in (game_records or {}).items()]
    named_nodes += [(f"{key}.probe_records.{n}", node) for n, node in (data.get("probe_records") or {}).items()]
    named_rows: dict[Any, tuple] = {}
    hold_out = [np.zeros(len(e[1]), bool) for e in encoded]
    for nkey, node in named_nodes:
        rid = (node or {}).get("id")
        if rid is None:
            continue
        if id_column is None:
            raise ConfigError(f"{nkey}.id", f"a record by id needs {key}.id_column, the column holding row ids")
        hits = [(j, i) for j, e in enumerate(encoded) for i in np.flatnonzero([str(v) == str(rid) for v in e[3]])]
        if not hits:
            raise ConfigError(f"{nkey}.id", f"no row has {id_column}={rid!r}")
        if len(hits) > 1:
            raise ConfigError(f"{nkey}.id", f"{len(hits)} rows have {id_column}={rid!r}; an id must name one row")
        j, i = hits[0]
        hold_out[j][i] = True
        _, X, y, ids = encoded[j]
        named_rows[ids[i]] = (tuple(float(v) for v in X[i]), int(y[i]))

    seed = data.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{key}.seed", f"must be a non-negative integer, got {seed!r}")
    kept = [(c, X[~h], y[~h], ids[~h]) for (c, X, y, ids), h in zip(encoded, hold_out)]
    if layout == "split":
        _, X, y, ids = kept[0]
        n = len(y)
        split_node = data.get("split") or {}
        names = ("target", "population", "nonmembers")
        sizes = [_size(split_node.get(k), n, f"{key}.split.{k}") for k in names]
        if sum(sizes) > n:
            raise ConfigError(f"{key}.split", f"asks for {sizes[0]} + {sizes[1]} + {sizes[2]} = {sum(sizes)} rows, but "
                                              f"the table has {n}" + (" (named records held out)" if named_rows else ""))
        t, a, m = _stratified_parts(y, sizes, seed, labels)
        split = _Split(t, a, m)
    else:
        by = {c: (X, y, ids) for c, X, y, ids in kept}
        Xs, ys, idss, offs = [], [], [], {}
        start = 0
        for c in ("train", "test", "population"):
            if c in by:
                offs[c] = start + np.arange(len(by[c][1]))
                start += len(by[c][1])
                Xs.append(by[c][0]), ys.append(by[c][1]), idss.append(by[c][2])
        X, y, ids = np.vstack(Xs), np.concatenate(ys), np.concatenate(idss)
        if "population" in offs:
            split = _Split(offs["train"], offs["population"], offs["test"])
        else:
            frac = data.get("population_fraction")
            test = offs["test"]
            k = _size(frac, len(test), f"{key}.population_fraction")
            if not 0 < k < len(test):
                raise ConfigError(f"{key}.population_fraction", f"gives the attacker {k} of {len(test)} test rows; "
                                                                "both the attacker and the audit need some")
            a_idx, = _stratified_parts(y[test], [k], seed, labels)
            attacker = test[a_idx]
            split = _Split(offs["train"], attacker, np.setdiff1d(test, attacker))

    for part, idx, pkey in (("target", split.target, f"{key}.split.target" if layout == "split" else f"{key}.train_path"),
                            ("nonmembers", split.nonmembers, f"{key}.split.nonmembers" if layout == "split"
                             else f"{key}.test_path")):
        present = set(np.unique(y[idx]).tolist())
        if present != set(labels):
            lacking = [label_values[k] for k in labels if k not in present]
            raise ConfigError(pkey, f"the {part} rows hold no row of class(es) {lacking}; every class needs rows there")
    akey = f"{key}.split.population" if layout == "split" else (
        f"{key}.population_path" if data.get("population_path") else f"{key}.population_fraction")
    a_counts = {k: int(np.sum(y[split.attacker] == k)) for k in labels}
    if min(a_counts.values()) < 2:
        raise ConfigError(akey, "the attacker's rows need at least 2 rows of every class (shadow members and "
                                f"non-members), got {[(label_values[k], n) for k, n in a_counts.items()]}")

    name = data.get("name") or (Path(parts[0].source).stem if not builtin else str(builtin))
    source = TableSource(name=name, features=features, labels=labels, label_values=label_values, X=X, y=y,
                         ids=ids, split=split, seed=seed, parts=parts, layout=layout, label_column=label,
                         dropped=drop, id_column=id_column, missing=missing, named_rows=named_rows,
                         impute=impute == "impute")
    rec = data.get("target_record")
    if rec is not None and (rec.get("id") is not None or rec.get("features")):
        r = source.parse_record(rec, f"{key}.target_record", rec.get("name") or str(rec.get("id")))
        source.target_record = Record(r.name, r.values, r.label, bool(rec.get("member", True)), r.id)
    probes = []
    for n, node in (data.get("probe_records") or {}).items():
        pkey = f"{key}.probe_records.{n}"
        if isinstance(node, Mapping) and node.get("id") is None and node.get("label") is None:
            # A probe needs no label: only the target's probabilities are reported.
            probes.append(Record(n, source._values((node or {}).get("features") or {}, f"{pkey}.features")))
        else:
            probes.append(source.parse_record(node or {}, pkey, n))
    source.probe_records = tuple(probes)
    return source
