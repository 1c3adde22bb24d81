"""Reference models for the strong membership attacks (LiRA, RMIA).

A reference model is the attacker's re-run of the target's training recipe on a random half
of the attacker's *reference pool*. With many such models, every pool row has been seen by
some models (it is IN for them) and not by the others (OUT), which gives per-row IN and OUT
confidence distributions to compare the target's confidence against.

:func:`train_reference_models` draws the halves, fits the models in parallel (joblib or Ray,
see :mod:`mia_engine.compute`), queries every model on the pool rows followed by some extra
rows (rows no model trains on, e.g. the attacked records), keeps each model's true-label logit
on those rows as float32 and drops the model, and caches the scores on disk under a key that
covers everything they depend on.

How the halves are drawn (see :func:`halves`):

- Models come in complementary pairs: model ``2j`` takes, separately inside every class, a
  random half of that class's pool rows, and model ``2j+1`` takes exactly the rows model
  ``2j`` left out. With an even number of models every pool row is IN for exactly half of
  them. With an odd number the last model is a lone half drawn like an even-numbered one.
- A class with an odd count ``n_c`` cannot be split evenly. The even-numbered model of every
  pair takes ``floor(n_c/2)`` rows from the 1st, 3rd, 5th... odd-sized class (classes in
  sorted order) and ``ceil(n_c/2)`` from the 2nd, 4th... so its total size stays within one
  row of half the pool; its partner gets the rest. This size pattern is fixed, so all
  even-numbered models have one shape and all odd-numbered models the complementary shape.
- Every half holds at least one row of every class, so every reference model learns the
  same classes as the target.
- No two models share a half: a pair whose first half was already used is redrawn.

The cache (``<cache_dir>/<key>.npz``, see :func:`train_reference_models`):

- An entry holds arrays only, written with ``numpy.savez`` (to a temporary file, then renamed
  into place) and read with ``numpy.load(..., allow_pickle=False)``: reading one cannot run
  code. The arrays are the key, the format (:data:`CACHE_FORMAT`), the halves (bool), the
  scores (float32), the class labels (numeric, or unicode strings for object labels)
  and an integrity tag. Fitted models are never cached (they could only be pickled). Files of
  the old pickle format (``<key>.joblib``) are never opened, nor deleted.
- The tag is an HMAC-SHA256 over the name, dtype, shape and exact bytes of every other array
  (:func:`entry_tag`), keyed by a 32-byte random secret kept outside the cache directory, in
  ``$MIA_ENGINE_SECRET_FILE`` or else ``$XDG_CONFIG_HOME/mia-engine/cache.secret``
  (``~/.config`` without XDG_CONFIG_HOME), created on first use with mode 0600
  (:func:`load_secret`). An entry whose tag, key, format, shapes, dtypes, halves or classes do
  not match is a miss, with a one-line warning, and is overwritten by the retrained result. A
  secret that cannot be read or created disables the cache for the run, with one warning.
- Whoever holds the secret can write entries this engine will trust, so sharing a cache
  directory between users means sharing the secret file with them: everyone who holds it is
  trusted with the results. Anyone who can write to the cache directory but lacks the secret
  can delete entries (forcing retraining) but neither forge results nor run code.

Heavy libraries (scikit-learn, joblib, tqdm) are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError

log = logging.getLogger("mia_engine")

#: Bumped when the layout of a cache entry changes, so old entries stop matching.
CACHE_FORMAT = "mia-engine-reference-v3"

#: The joblib backend used unless the caller names one. Measured on 2 cores (64 SVC models with
#: probability=True on 250 pool rows, each queried on 600 rows; ranges over 6 fresh processes):
#:
#: ============  ==========================  ===========
#: backend       first call in a process     later calls
#: ============  ==========================  ===========
#: n_jobs=1      1.25-1.31 s                 0.39-0.41 s
#: threading, 2  1.07-1.29 s                 0.24-0.35 s
#: loky, 2       2.30-4.20 s                 0.22-0.55 s
#: ============  ==========================  ===========
#:
#: About 1 s of every first call is importing scikit-learn; loky's workers start up and import
#: it again, which threads avoid. libsvm releases the GIL while fitting and predicting, so
#: threads overlap even though the fits themselves take turns (see ``mia_engine.models.fit_model``).
#: Estimators whose fit holds the GIL (pure Python) scale better on processes: pass "loky".
DEFAULT_BACKEND = "threading"

@dataclass
class ReferenceSet:
    """The reference models' scores on the query rows, and which rows each model trained on.

    The query rows are the pool rows (in pool order) followed by the extra rows; the extra rows
    are in no model's training set. A model's score on a row is the logit of the probability it
    gives the row's true label (``labels``), :func:`mia_engine.signals.true_label_logit`, kept as
    float32: 4 bytes per model and query row, whatever the number of classes. The models
    themselves are dropped as soon as they have scored.
    """

    in_mask: np.ndarray  # (n_models, n_pool) bool: pool row i is in model m's training set
    scores: np.ndarray  # (n_models, n_query) float32: model m's true-label logit on each query row
    labels: np.ndarray  # (n_query,) the query rows' labels (the scores' true labels)
    classes: np.ndarray  # the class labels the models learned
    key: str  # the cache key (sha256 hex digest)
    from_cache: bool

    @property
    def n_models(self) -> int:
        return int(self.in_mask.shape[0])

    @property
    def n_pool(self) -> int:
        return int(self.in_mask.shape[1])


# --------------------------------------------------------------------------------------------
# Halves


def max_distinct_halves(class_counts: Sequence[int] | Mapping[Any, int]) -> int:
    """How many distinct stratified halves :func:`halves` can draw from a pool.

    ``class_counts`` holds the number of pool rows of each class (a sequence, or a mapping whose
    values are the counts). Within a class of ``n`` rows a half takes ``floor(n/2)`` rows in the
    even-numbered models, so those models can take ``P = prod_c comb(n_c, floor(n_c/2))``
    different halves. Odd-numbered models take the complements:

    - if some class has an odd count, a complement has a different size in that class, so it
      never equals an even-numbered model's half: ``2 * P`` halves in all;
    - if every count is even, the complements are halves of the same shape, already among the
      ``P``: ``P`` halves in all.

    A class with fewer than 2 rows allows no half that holds it: 0.
    """
    counts = [int(c) for c in (class_counts.values() if isinstance(class_counts, Mapping) else class_counts)]
    if not counts or min(counts) < 2:
        return 0
    product = math.prod(math.comb(n, n // 2) for n in counts)
    return 2 * product if any(n % 2 for n in counts) else product


def halves(y_pool: np.ndarray, n_models: int, seed: int, key: str = "reference.n_models") -> np.ndarray:
    """The training halves of ``n_models`` reference models, as an ``(n_models, n_pool)`` bool mask.

    See the module docstring for the layout (stratified, complementary pairs, distinct). The
    draws come from ``numpy.random.default_rng(seed)`` alone, so a seed always gives the same
    masks. ``key`` names the config entry in the errors: a class with fewer than 2 pool rows, or
    more models than the pool has distinct halves.
    """
    y_pool = np.asarray(y_pool)
    if y_pool.ndim != 1:
        raise ValueError(f"y_pool must be one-dimensional, got shape {y_pool.shape}")
    n_models = int(n_models)
    if n_models < 1:
        raise ConfigError(key, f"must be at least 1, got {n_models}")
    classes, inverse, counts = np.unique(y_pool, return_inverse=True, return_counts=True)
    if len(classes) == 0:
        raise ConfigError(key, "the reference pool is empty")
    small = [f"{c!r} ({n} row{'s' if n != 1 else ''})" for c, n in zip(classes.tolist(), counts) if n < 2]
    if small:
        raise ConfigError(key, "every class needs at least 2 rows in the reference pool so that both halves "
                               f"of a pair hold it; too few rows of class {', '.join(small)}")
    limit = max_distinct_halves(counts)
    if n_models > limit:
        raise ConfigError(key, f"{n_models} reference models need {n_models} distinct halves, but the "
                               f"reference pool (class counts {counts.tolist()}) allows at most {limit}")

    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    # Rows taken in the even-numbered models: floor in the 1st, 3rd... odd-sized class, ceil in
    # the 2nd, 4th...; an even-sized class splits exactly.
    take = []
    odd_seen = 0
    for n in counts.tolist():
        if n % 2:
            take.append(n // 2 if odd_seen % 2 == 0 else n // 2 + 1)
            odd_seen += 1
        else:
            take.append(n // 2)

    rng = np.random.default_rng(seed)
    n_pool = len(y_pool)
    masks = np.zeros((n_models, n_pool), dtype=bool)
    seen: set[bytes] = set()
    m = 0
    while m < n_models:
        first = np.zeros(n_pool, dtype=bool)
        for rows, k in zip(members, take):
            first[rng.permutation(rows)[:k]] = True
        fp = np.packbits(first).tobytes()
        if fp in seen:  # only likely for tiny pools; the limit check above guarantees progress
            continue
        masks[m] = first
        seen.add(fp)
        if m + 1 < n_models:
            second = ~first
            masks[m + 1] = second
            # A complement is new whenever its half is new (a used half's complement was used
            # with it), so it needs no check.
            seen.add(np.packbits(second).tobytes())
        m += 2
    return masks


def uses_halves(n_pool: int, train_size: int | None) -> bool:
    """Whether reference models train on halves of the pool (a half is at most about the
    target's size) rather than on subsets of ``train_size`` rows (a larger pool)."""
    return train_size is None or n_pool <= 2 * int(train_size) + 1


def subsets(y_pool: np.ndarray, n_models: int, seed: int, size: int, key: str = "reference.n_models") -> np.ndarray:
    """Training sets of ``size`` rows each for ``n_models`` reference models, as an
    ``(n_models, n_pool)`` bool mask: for a pool larger than twice the target's training set,
    so that every reference model trains on as many rows as the target did.

    - Stratified: each class gets its share of ``size`` (largest remainder), at least one row
      and at most all but one, so every model learns every class and every row is OUT somewhere.
    - Balanced: within a class, rows are dealt from successive shuffles, so every pool row is IN
      for ``floor`` or ``ceil`` of ``n_models * k_c / n_c`` models (never by luck for none).
    - Distinct: a set that repeats an earlier one is redrawn.

    The draws come from ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(1,)))`` alone.
    """
    from .data.source import allocate

    y_pool = np.asarray(y_pool)
    n_models, size = int(n_models), int(size)
    classes, inverse, counts = np.unique(y_pool, return_inverse=True, return_counts=True)
    small = [f"{c!r} ({n} row{'s' if n != 1 else ''})" for c, n in zip(classes.tolist(), counts) if n < 2]
    if small:
        raise ConfigError(key, "every class needs at least 2 rows in the reference pool so that each is IN for "
                               f"some models and OUT for others; too few rows of class {', '.join(small)}")
    take = allocate(size, {c: int(n) for c, n in enumerate(counts)})
    take = {c: min(max(k, 1), int(counts[c]) - 1) for c, k in take.items()}
    from collections import deque

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    queues = [deque(rng.permutation(rows).tolist()) for rows in members]
    masks = np.zeros((n_models, len(y_pool)), dtype=bool)
    seen: set[bytes] = set()
    m = 0
    while m < n_models:
        mask = np.zeros(len(y_pool), dtype=bool)
        for c, rows in enumerate(members):
            got = 0
            held = []
            while got < take[c]:
                if not queues[c]:
                    queues[c].extend(rng.permutation(rows).tolist())
                r = queues[c].popleft()
                if mask[r]:
                    held.append(r)  # already in this set: keep it for the next model
                    continue
                mask[r] = True
                got += 1
            queues[c].extendleft(reversed(held))
        fp = np.packbits(mask).tobytes()
        if fp in seen:
            continue
        seen.add(fp)
        masks[m] = mask
        m += 1
    return masks


# --------------------------------------------------------------------------------------------
# Cache key


def _plain(obj: Any, where: str = "cache_parts") -> Any:
    """``obj`` as plain JSON-able Python (dicts with str keys, lists, str, int, float, bool, None).

    Accepts mappings (including OmegaConf's), sequences, numpy scalars and small arrays, and
    paths. Anything else raises ``TypeError``: a value the key cannot describe exactly could let
    two different configurations share a cache entry.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), where)
    if isinstance(obj, (list, tuple)) or (isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray))):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: cannot describe a {type(obj).__name__} in the reference cache key")


def _array_digest(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    if a.dtype.hasobject:  # object arrays have no stable bytes; describe them by value
        data = json.dumps(_plain(a.tolist(), "array"), sort_keys=True).encode()
    else:
        data = np.ascontiguousarray(a).tobytes()
    return {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": hashlib.sha256(data).hexdigest()}


def cache_key(model_node: Mapping, n_models: int, seed: int, X_pool: np.ndarray, y_pool: np.ndarray,
              X_extra: np.ndarray, cache_parts: Mapping | None = None, y_extra: np.ndarray | None = None) -> str:
    """The sha256 hex digest naming a reference set: configuration, library versions and data."""
    import sklearn

    from . import __version__

    doc = {
        "format": CACHE_FORMAT,
        "cache_parts": _plain(cache_parts or {}, "cache_parts"),
        "model": _plain(model_node, "model_node"),
        "n_models": int(n_models),
        "seed": _plain(seed, "seed"),
        "versions": {"mia_engine": __version__, "sklearn": sklearn.__version__, "numpy": np.__version__},
        "data": {"X_pool": _array_digest(X_pool), "y_pool": _array_digest(y_pool),
                 "X_extra": _array_digest(X_extra),
                 "y_extra": _array_digest(np.empty(0) if y_extra is None else y_extra)},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Fitting


def model_random_state(seed: int, m: int) -> np.random.RandomState:
    """The ``random_state`` of reference model ``m``: its own stream, independent of n_jobs and order."""
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(seed, spawn_key=(m,))))


@dataclass
class _Shared:
    """What every reference fit reads (sent to process and Ray workers once, not per model)."""

    recipe: Any
    model_key: str
    seed: int
    X_pool: np.ndarray
    y_pool: np.ndarray
    masks: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray
    classes: np.ndarray


def _fit_one(m: int, shared: _Shared):
    """Build, fit and query reference model ``m``; returns its scores (the true-label logit on
    every query row, float32) and its classes. The model and its probabilities are dropped here,
    in the worker (thread, process or Ray task)."""
    from .models import fit_model, openmp_limit, require_probabilities
    from .signals import true_label_logit

    est = shared.recipe.build(random_state=model_random_state(shared.seed, m))
    require_probabilities(est, shared.model_key)
    mask = shared.masks[m]
    # One thread per fit; the workers give the parallelism. Estimators with OpenMP teams of their
    # own (histogram gradient boosting) otherwise start one per worker thread, and spin-waiting
    # teams on 2 busy cores made a 0.1 s fit take 4-22 s. The limit is this thread's alone.
    with openmp_limit(1):
        fit_model(est, shared.X_pool[mask], shared.y_pool[mask], shared.model_key)  # thread-safe for libsvm's RNG
        model_classes = np.asarray(est.classes_)
        if model_classes.shape != shared.classes.shape or not np.array_equal(model_classes, shared.classes):
            raise ConfigError(shared.model_key, f"reference model {m} learned the classes {model_classes.tolist()}, "
                                                f"but the reference pool has {shared.classes.tolist()}")
        scores = np.empty(len(shared.y_query), dtype=np.float32)
        for lo in range(0, len(scores), _QUERY_CHUNK):  # the probabilities of a chunk at a time
            hi = lo + _QUERY_CHUNK
            proba = np.asarray(est.predict_proba(shared.X_query[lo:hi]), dtype=np.float64)
            scores[lo:hi] = true_label_logit(proba, shared.y_query[lo:hi], shared.classes)
    return scores


#: Query rows scored at a time by one reference model (bounds its probability arrays).
_QUERY_CHUNK = 65536


def _fit_all(shared: _Shared, *, n_jobs: int, backend: str, show_bar: bool, ray_settings=None) -> np.ndarray:
    """Every model's scores, (n_models, n_query) float32, placed by model index (so the order
    in which workers finish changes nothing)."""
    import warnings

    from .compute import Progress, map_tasks
    from .models import PROBABILITY_DEPRECATION

    n_models = shared.masks.shape[0]
    scores = np.empty((n_models, len(shared.y_query)), dtype=np.float32)
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=n_models, desc="reference models", unit="model", file=sys.stderr, leave=False)
    progress = Progress(n_models, "reference models", "models")
    # fit_model silences the SVC(probability=True) deprecation with warnings.catch_warnings,
    # which swaps a process-wide filter list: threads entering and leaving it concurrently can
    # restore each other's lists. The same filter installed here, around all of them, keeps the
    # warning silent meanwhile and restores the caller's filters once at the end.
    # BLAS runs single-threaded while the workers fit (its limit is process-wide; OpenMP's is
    # per thread and is set in each fit, see _fit_one).
    from threadpoolctl import threadpool_limits

    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.filterwarnings("ignore", message=PROBABILITY_DEPRECATION, category=FutureWarning)
            for m, row in map_tasks(_fit_one, range(n_models), shared, backend=backend, n_jobs=n_jobs,
                                    ray_settings=ray_settings):
                scores[m] = row
                if bar is not None:
                    bar.update(1)
                progress.done(1)
    finally:
        if bar is not None:
            bar.close()
    return scores


# --------------------------------------------------------------------------------------------
# Cache files


def prepare_cache_dir(cache_dir) -> Path:
    """The reference cache directory, created if need be; a ConfigError naming
    ``reference.cache_dir`` when it cannot be made or written (checked before any run opens)."""
    path = Path(cache_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("reference.cache_dir", f"cannot create the cache directory {str(path)!r}: "
                                                 f"{e.strerror or e}") from None
    if not path.is_dir():
        raise ConfigError("reference.cache_dir", f"{str(path)!r} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError("reference.cache_dir", f"{str(path)!r} cannot be written (or reference.cache=false)")
    return path


#: The environment variable naming the cache secret's file (see :func:`secret_path`).
SECRET_ENV = "MIA_ENGINE_SECRET_FILE"
#: The size of the cache secret, in bytes.
SECRET_BYTES = 32
#: The arrays of a cache entry besides its tag, in the order the tag covers them.
ENTRY_ARRAYS = ("key", "format", "in_mask", "scores", "classes")
_TAG = "tag"
_TAG_DOMAIN = b"mia-engine reference cache entry\0"
#: Room for the .npy headers and zip bookkeeping of an entry beyond its arrays' bytes.
_ENTRY_SLACK = 64 * 1024

# Problems with the secret already warned about, so a run (up to one call per pool) warns once.
_secret_warnings: set[str] = set()


def secret_path() -> Path:
    """Where the cache secret lives: ``$MIA_ENGINE_SECRET_FILE`` if set, else
    ``$XDG_CONFIG_HOME/mia-engine/cache.secret`` (``XDG_CONFIG_HOME`` defaulting to ``~/.config``)."""
    named = os.environ.get(SECRET_ENV)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "mia-engine" / "cache.secret"


def _read_secret(path: Path) -> bytes:
    # A secret written without os.link (see load_secret) may be read while its writer is still
    # writing it: wait briefly for the whole of it before calling the file bad.
    data = b""
    for _ in range(10):
        with open(path, "rb") as f:
            data = f.read(SECRET_BYTES + 1)
        if len(data) >= SECRET_BYTES:
            break
        time.sleep(0.05)
    if len(data) != SECRET_BYTES:
        raise ValueError(f"it holds {'more than ' if len(data) > SECRET_BYTES else ''}"
                         f"{min(len(data), SECRET_BYTES)} bytes, expected exactly {SECRET_BYTES}")
    return data


def load_secret(path: Path | str | None = None) -> bytes:
    """The cache secret: read from ``path`` (default :func:`secret_path`), or created there.

    A new secret is :data:`SECRET_BYTES` random bytes in a file of mode 0600 (its directory is
    created with mode 0700). It is written to a temporary file beside ``path`` and linked into
    place, which fails if ``path`` appeared meanwhile: then, as whenever the file exists, the
    secret already there is used, so processes racing to create it all end up with one secret.
    Where hard links are not supported the file is created with ``O_EXCL`` instead. Raises
    OSError (or ValueError: a file that does not hold exactly :data:`SECRET_BYTES` bytes) when
    the secret can be neither read nor created.
    """
    import secrets

    path = secret_path() if path is None else Path(path)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing file
            return secret
        except FileExistsError:
            return _read_secret(path)
        except OSError:
            pass  # no hard links here (some network and FUSE file systems)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    return secret


def _cache_secret(cache_dir: Path) -> bytes | None:
    """The secret that signs the entries in ``cache_dir``, or None (with one warning) if there is none to use."""
    where: Any = f"${SECRET_ENV}"
    try:
        where = secret_path()
        inside = where.resolve()
        if inside == cache_dir.resolve() or cache_dir.resolve() in inside.parents:
            raise ValueError(f"it lies inside the cache directory {cache_dir}; keep it elsewhere "
                             f"(${SECRET_ENV})")
        return load_secret(where)
    except Exception as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        message = f"cannot use the cache secret {where} ({reason})"
        if message not in _secret_warnings:
            _secret_warnings.add(message)
            log.warning("reference models: %s; the reference cache is disabled for this run", message)
        return None


def _storable_classes(classes: np.ndarray) -> np.ndarray:
    """``classes`` as an array that is saved without pickling: object labels (strings from a
    table) become unicode ``"<type>:<value>"`` strings, so ``1`` and ``"1"`` stay apart."""
    classes = np.asarray(classes)
    if not classes.dtype.hasobject:
        return classes
    return np.array([f"{type(v).__name__}:{v}" for v in classes.tolist()], dtype=str).reshape(classes.shape)


def _entry_arrays(key: str, in_mask: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> dict:
    return {"key": np.array(key, dtype=str), "format": np.array(CACHE_FORMAT, dtype=str),
            "in_mask": np.asarray(in_mask, dtype=bool), "scores": np.asarray(scores, dtype=np.float32),
            "classes": _storable_classes(classes)}


def entry_tag(secret: bytes, arrays: Mapping[str, np.ndarray]) -> bytes:
    """The HMAC-SHA256, keyed by ``secret``, of the arrays :data:`ENTRY_ARRAYS` of a cache entry:
    each one's name, dtype, shape and exact bytes (C order), every part length-prefixed."""
    import hmac

    mac = hmac.new(secret, _TAG_DOMAIN, hashlib.sha256)
    for name in ENTRY_ARRAYS:
        a = np.asarray(arrays[name])
        header = json.dumps({"name": name, "dtype": a.dtype.str, "shape": list(a.shape)},
                            sort_keys=True).encode("utf-8")
        data = np.ascontiguousarray(a).tobytes()
        for part in (header, data):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
    return mac.digest()


def _expect(arrays: Mapping[str, np.ndarray], name: str, dtype: np.dtype | None, shape: tuple | None,
            what: str) -> np.ndarray:
    a = arrays[name]
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"the stored {what} have dtype {a.dtype.str}, expected {np.dtype(dtype).str}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"the stored {what} have shape {a.shape}, expected {tuple(shape)}")
    return a


def _load_entry(path: Path, key: str, secret: bytes, masks: np.ndarray, n_query: int, classes: np.ndarray):
    """The verified entry at ``path``; None if absent; raises ValueError (or whatever reading raised)
    when the file is unusable. The file is read with ``allow_pickle=False``: it cannot run code."""
    import hmac

    if not os.path.lexists(path):
        return None
    if not path.is_file():
        raise ValueError("it is not a regular file")
    expected = {"in_mask": (np.dtype(bool), masks.shape),
                "scores": (np.dtype(np.float32), (masks.shape[0], n_query))}
    stored_classes_expected = _storable_classes(classes)
    budget = (masks.size + 4 * masks.shape[0] * n_query + stored_classes_expected.nbytes
              + 4 * (len(key) + len(CACHE_FORMAT)) + SECRET_BYTES + _ENTRY_SLACK)
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("it is not an .npz archive")
    with loaded:
        names = sorted(loaded.files)
        if names != sorted((*ENTRY_ARRAYS, _TAG)):
            raise ValueError(f"it holds the arrays {names}, expected {sorted((*ENTRY_ARRAYS, _TAG))}")
        size = sum(info.file_size for info in loaded.zip.infolist())
        if size > budget:
            raise ValueError(f"it unpacks to {size} bytes, more than an entry of this shape needs ({budget})")
        arrays = {name: loaded[name] for name in names}  # object arrays raise: no pickle is loaded
    for name in ("key", "format"):
        if arrays[name].dtype.kind != "U" or arrays[name].shape != ():
            raise ValueError(f"the stored {name} is not a string")
    if str(arrays["key"]) != key:
        raise ValueError("the stored key does not match")
    if str(arrays["format"]) != CACHE_FORMAT:
        raise ValueError(f"the stored format {str(arrays['format'])!r} is not {CACHE_FORMAT!r}")
    tag = arrays[_TAG]
    if tag.dtype != np.uint8 or tag.shape != (SECRET_BYTES,) or \
            not hmac.compare_digest(tag.tobytes(), entry_tag(secret, arrays)):
        raise ValueError("the integrity tag does not match: the entry was altered or written with another secret")
    in_mask = _expect(arrays, "in_mask", *expected["in_mask"], "halves")
    if not np.array_equal(in_mask, masks):
        raise ValueError("the stored halves do not match")
    stored_classes = _expect(arrays, "classes", stored_classes_expected.dtype, stored_classes_expected.shape,
                             "classes")
    if stored_classes.tobytes() != np.ascontiguousarray(stored_classes_expected).tobytes():
        raise ValueError("the stored classes do not match")
    scores = _expect(arrays, "scores", *expected["scores"], "scores")
    return {"in_mask": in_mask, "scores": scores}


def _write_entry(path: Path, arrays: Mapping[str, np.ndarray], secret: bytes) -> bool:
    """Write ``arrays`` and their tag to ``path`` as an .npz, atomically (temp file in the same
    directory, then rename)."""
    tmp = None
    try:
        tag = np.frombuffer(entry_tag(secret, arrays), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:  # a file object: savez would append .npz to a name
            np.savez(f, **arrays, **{_TAG: tag})
        os.replace(tmp, path)
        return True
    except Exception as e:  # keep the trained result even if the cache cannot take it
        log.warning("reference models: could not write the cache file %s: %s", path, e)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


# --------------------------------------------------------------------------------------------
# Entry point


def train_reference_models(model, model_key: str, X_pool, y_pool, X_extra=None, y_extra=None, *, n_models: int,
                           seed: int, n_jobs: int = -1, backend: str = DEFAULT_BACKEND,
                           cache_dir: Path | str | None = None, cache_parts: Mapping | None = None,
                           progress: bool | None = None, train_size: int | None = None,
                           ray_settings: Mapping | None = None) -> ReferenceSet:
    """Train ``n_models`` reference models on halves of the pool and score the query rows with
    each (or load the scores from the cache).

    ``model`` is the training recipe (a :class:`~mia_engine.models.ModelRecipe`, or a plain
    ``{_target_: ..., **kwargs}`` node) and ``model_key`` its config key (used in error
    messages). Model ``m`` is built from it; if the estimator takes a ``random_state`` it gets
    a ``RandomState`` seeded from ``SeedSequence(seed, spawn_key=(m,))``.
    It is fitted on the pool rows of its half (:func:`halves` with ``seed``), queried with
    ``predict_proba`` on the pool rows followed by ``X_extra`` (labelled ``y_extra``), and
    dropped: only its true-label logits are kept, as float32 (see :class:`ReferenceSet`), so
    memory grows by 4 bytes per model and query row and nothing else. With ``train_size`` (the
    target's training rows) and a pool larger than twice that, each model instead trains on
    ``train_size`` rows (:func:`subsets`), as many as the target: reference models trained on
    more rows than the target are more confident on everything, which blunts the attacks.

    The fits run on ``backend`` (see :mod:`mia_engine.compute`): joblib's ``threading`` (the
    default, :data:`DEFAULT_BACKEND`), ``loky`` or ``multiprocessing`` with ``n_jobs`` workers,
    or ``ray`` (``ray_settings``: the config's ``ray`` node). The result does not depend on
    either: the same inputs give bit-identical scores serially, on threads, on processes or on
    Ray.

    ``progress``: None shows a tqdm bar on stderr if stderr is a terminal; True always shows it;
    False never. Either way INFO lines (logger ``mia_engine``) say when training starts, how far
    it is with the time left (every 10% or 30 s), and the wall time at the end.

    ``cache_dir``: if given, the result is looked up as ``<cache_dir>/<key>.npz`` and stored
    there after training (see "The cache" in the module docstring). The key (:func:`cache_key`)
    covers ``cache_parts`` (whatever else the caller wants the entry tied to), the model node,
    ``n_models``, ``seed``, the mia-engine, scikit-learn and NumPy versions and the exact data.
    A file that fails to load or verify is retrained and overwritten, with a warning; a file that
    cannot be written is only a warning; without a usable secret the cache is skipped, with a
    warning. Only arrays are cached, never fitted models.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        # None would draw fresh halves on every call under one cache key
        raise ConfigError("reference.seed", f"must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    from .models import ModelRecipe

    if isinstance(model, ModelRecipe):
        recipe = model
    else:
        node = _plain(model, "model_node")
        if not isinstance(node, dict):
            raise ConfigError(model_key, "the model node must be a mapping with a _target_")
        recipe = ModelRecipe(key=model_key, node=node)
    # A plain node keys the cache as it always did; preprocessing or a saved model add their part.
    described = recipe.node if (not recipe.saved and recipe.preprocessing is None) else recipe.describe()
    X_pool = np.asarray(X_pool)
    y_pool = np.asarray(y_pool)
    if X_pool.ndim != 2 or y_pool.ndim != 1 or X_pool.shape[0] != y_pool.shape[0]:
        raise ValueError(f"X_pool {X_pool.shape} and y_pool {y_pool.shape} must be (n, d) and (n,)")
    if X_extra is None:
        X_extra = np.empty((0, X_pool.shape[1]), dtype=X_pool.dtype)
    X_extra = np.asarray(X_extra)
    if X_extra.ndim != 2 or X_extra.shape[1] != X_pool.shape[1]:
        raise ValueError(f"X_extra {X_extra.shape} must have the pool's {X_pool.shape[1]} columns")
    y_extra = np.empty(0, dtype=y_pool.dtype) if y_extra is None and len(X_extra) == 0 else y_extra
    if y_extra is None or np.asarray(y_extra).shape != (len(X_extra),):
        raise ValueError(f"y_extra must hold one label per row of X_extra ({len(X_extra)})")
    y_extra = np.asarray(y_extra)

    if uses_halves(len(y_pool), train_size):
        masks = halves(y_pool, n_models, seed)
        sized = None
    else:
        masks = subsets(y_pool, n_models, seed, int(train_size))
        sized = int(train_size)
    classes = np.unique(y_pool)
    X_query = np.vstack([X_pool, X_extra]) if len(X_extra) else X_pool
    y_query = np.concatenate([y_pool, y_extra]) if len(y_extra) else y_pool
    unknown = np.setdiff1d(np.unique(y_extra), classes) if len(y_extra) else []
    if len(unknown):
        raise ValueError(f"y_extra holds labels {np.asarray(unknown).tolist()} that no pool row has")
    parts = dict(cache_parts or {})
    if sized is not None:
        parts["__train_size__"] = sized  # halves keep the keys they always had
    key = cache_key(described, n_models, seed, X_pool, y_pool, X_extra, parts, y_extra)

    path = secret = None
    write = False
    if cache_dir is not None:
        directory = prepare_cache_dir(cache_dir)
        secret = _cache_secret(directory)
    if secret is not None:
        path = directory / f"{key}.npz"
        legacy = directory / f"{key}.joblib"
        if os.path.lexists(legacy):  # never loaded: unpickling runs code
            log.warning("reference models: ignoring %s: cache entries are no longer read from pickle files "
                        "(it was not opened)", legacy)
        try:
            entry = _load_entry(path, key, secret, masks, X_query.shape[0], classes)
        except Exception as e:
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            log.warning("reference models: ignoring the unusable cache file %s (%s); retraining", path, reason)
            entry = None
        write = entry is None
        if entry is not None:
            log.info("reference models: cache hit %s", path)
            return ReferenceSet(in_mask=entry["in_mask"], scores=entry["scores"], labels=y_query, classes=classes,
                                key=key, from_cache=True)

    # Fail in the caller's process, with the config key, before any worker starts.
    from .models import require_probabilities

    require_probabilities(recipe.build(), model_key)

    show_bar = sys.stderr.isatty() if progress is None else bool(progress)
    from .compute import workers as count_workers

    workers = count_workers(backend, n_jobs, n_models, ray_settings)
    log.info("training %d reference models on %d worker%s (%s) ...", n_models, workers,
             "" if workers == 1 else "s", backend)
    start = time.perf_counter()
    shared = _Shared(recipe, model_key, seed, X_pool, y_pool, masks, X_query, y_query, classes)
    scores = _fit_all(shared, n_jobs=n_jobs, backend=backend, show_bar=show_bar, ray_settings=ray_settings)
    elapsed = time.perf_counter() - start
    log.info("trained %d reference models in %.2f s", n_models, elapsed)

    if write:
        _write_entry(path, _entry_arrays(key, masks, scores, classes), secret)
    return ReferenceSet(in_mask=masks, scores=scores, labels=y_query, classes=classes, key=key, from_cache=False)
