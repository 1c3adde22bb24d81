"""MLflow tracking: the only module of the package that imports ``mlflow``.

- :func:`resolve_tracking_uri` decides the store: ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``,
  else ``sqlite:///<launch dir>/mlflow.db`` (relative SQLite paths are taken from the launch
  directory, so ``hydra.job.chdir=true`` cannot scatter one database per job).
- :class:`RunTracker` is one MLflow run driven through ``MlflowClient`` (no fluent global
  state), with every failure turned into a one-line :class:`~mia_engine.errors.TrackingError`.
- :class:`SweepParentRun` is the Hydra callback that opens one parent run per multirun and
  closes it FINISHED, or FAILED when a job failed or the sweep died.
- :meth:`RunTracker.log_datasets` records WHAT was audited (name, source, digest, context, row
  count, column kinds, a small profile) through MLflow's dataset tracking; no row is ever logged.

Robustness: an embedded SQLite store is checked for writability before MLflow touches it (a
read-only store fails in a second, not after minutes of retries) and is created under an
exclusive lock on ``<db>.lock`` (parallel first runs would race on its schema). Every run is
tagged with its owner (``mia.host``, ``mia.pid``, ``mia.pid_start``); a run left RUNNING by a
process that is gone is closed FAILED by the next run on the same host
(``mia.closed_reason=process gone``).

``mlflow`` itself is imported lazily, so ``tracking=none`` runs never pay for it.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import numbers
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from hydra.experimental.callback import Callback

from .errors import AbortSweep, MiaEngineError, TrackingError

log = logging.getLogger("mia_engine")

PARENT_RUN_FILE = "mlflow_parent_run.json"
PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
VERDICT_TAG = "mia.verdict"       # do_not_release | needs_review | no_evidence
HOST_TAG, PID_TAG, PID_START_TAG = "mia.host", "mia.pid", "mia.pid_start"  # the process that owns a run
PID_NS_TAG = "mia.pid_ns"  # its pid namespace: containers sharing a host name do not see each other's pids
CLOSED_REASON_TAG = "mia.closed_reason"
PROCESS_GONE = "process gone"
STORE_LOCK_TIMEOUT = 300.0  # seconds to wait for another process creating the SQLite store
_MAX_PARAM_LENGTH = 6000  # MLflow 3's limit on a param value
_BATCH = 100  # MLflow's limit on params per log_batch call


def resolve_tracking_uri(uri: str | None, launch_dir: Path) -> str:
    """The absolute tracking URI for ``tracking.uri`` (null: env var, else SQLite in ``launch_dir``)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{Path(launch_dir).resolve() / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):]
        if db and not db.startswith("/") and db != ":memory:":
            return f"sqlite:///{(Path(launch_dir) / db).resolve()}"
        return uri
    if "://" not in uri:  # a bare path: MLflow's file store (refused by MLflow 3 by default)
        return str((Path(launch_dir) / uri).resolve())
    return uri


def redact(uri: str) -> str:
    """The URI without any user:password part, for messages."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _local_artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside the database, in ``mlruns/``."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if str(db) != ":memory:":
            return (db.parent / "mlruns").resolve().as_uri()
    return None


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _where_failed(e: OSError, target: Path) -> str:
    """`` (at <path>)`` when creating ``target`` failed at one of its parents."""
    return f" (at {e.filename})" if e.filename and str(e.filename) != str(target) else ""


def check_store_writable(uri: str) -> None:
    """A SQLite store must be writable before MLflow opens it: its directory (SQLite writes its
    journal there, and creates the file on first use) and the file when it exists. Otherwise a
    one-line :class:`TrackingError` at once (MLflow itself retries for minutes)."""
    db = _sqlite_path(uri)
    if db is None:
        return
    where = f"tracking.uri: the SQLite store {db}"
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingError(f"{where} cannot be created: {e.strerror or e}{_where_failed(e, db.parent)}") from None
    if not os.access(db.parent, os.W_OK | os.X_OK):
        raise TrackingError(f"{where} cannot be written: its directory {db.parent} is not writable") from None
    if db.is_dir():
        raise TrackingError(f"{where} is a directory, not a database file") from None
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise TrackingError(f"{where} cannot be written: the file is read-only") from None


@contextmanager
def _store_lock(uri: str, timeout: float = STORE_LOCK_TIMEOUT) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` while MLflow creates or upgrades a SQLite store and its
    experiment: without it, processes starting together race on the schema (``table
    _alembic_tmp_experiments already exists``). Other stores, or no ``fcntl``: no lock."""
    db = _sqlite_path(uri)
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if db is None or fcntl is None:
        yield
        return
    try:
        fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield  # cannot create the lock file: go on unlocked (writability is checked separately)
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(f"tracking.uri: the SQLite store {db} stayed locked by another process "
                                        f"for {timeout:.0f} s ({db}.lock)") from None
                time.sleep(0.05)
            except OSError:  # no locking on this file system (ENOLCK)
                break
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_client(uri: str):
    """An ``MlflowClient`` whose store is open (and, for SQLite, created under the store lock)."""
    from mlflow.tracking import MlflowClient

    check_store_writable(uri)
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)  # creates (or checks) the database: once per process
        client._tracking_client.store
    return client


# ---------------------------------------------------------------------------------------------
# Run owners: which process on which host holds a run open

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """An identifier of ``pid``'s start (boot id and start time in clock ticks from
    ``/proc/<pid>/stat`` field 22, or psutil's create time), so that a reused pid is not taken
    for the process that owned a run. None when the process does not exist or it is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # field 3 onwards (the name may hold spaces)
        return f"{_boot_id()}:{fields[19]}"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return f"psutil:{psutil.Process(pid).create_time():.3f}"
    except Exception:
        return None


@functools.lru_cache(maxsize=1)
def _hostname() -> str:
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """``mia.host``, ``mia.pid`` and ``mia.pid_start`` of the process owning a run (this one)."""
    pid = os.getpid() if pid is None else pid
    tags = {HOST_TAG: _hostname(), PID_TAG: str(pid)}
    start = process_start(pid)
    if start:
        tags[PID_START_TAG] = start
    if _pid_namespace():
        tags[PID_NS_TAG] = _pid_namespace()
    return tags


def process_alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` exists and, when ``start`` was recorded, is the same process."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would stop the process on Windows: never judge there
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return True  # cannot tell: leave the run alone
    if start:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


def close_stale_runs(client, experiment_id: str) -> list[str]:
    """Close FAILED the RUNNING runs of ``experiment_id`` owned by processes of this host that are
    gone (tagged ``mia.closed_reason=process gone``); one query when there are none. Runs of
    another pid namespace (a container with the same host name) are left alone."""
    host = _hostname().replace("'", "")
    found = client.search_runs([experiment_id], max_results=1000,
                               filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'")
    closed = []
    for run in found:
        tags = run.data.tags
        if tags.get(PID_NS_TAG, _pid_namespace()) != _pid_namespace():
            continue
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if process_alive(pid, tags.get(PID_START_TAG)):
            continue
        from mlflow.entities import RunTag

        client.log_batch(run.info.run_id, tags=[RunTag(CLOSED_REASON_TAG, PROCESS_GONE)])
        client.set_terminated(run.info.run_id, "FAILED")
        closed.append(run.info.run_id)
    if closed:
        log.info("tracking: closed %d run(s) left RUNNING by processes that are gone as FAILED: %s",
                 len(closed), ", ".join(closed))
    return closed


def _configure_mlflow(cfg: Mapping[str, Any]) -> None:
    """Set MLflow's environment before it loads: its log level, and bounded HTTP retries and
    timeouts (its defaults stall minutes on a dead server)."""
    os.environ["MLFLOW_LOGGING_LEVEL"] = str(cfg.get("mlflow_log_level") or "WARNING").upper()
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(cfg.get("http_request_timeout", 10)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(int(cfg.get("http_request_max_retries", 1)))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(int(cfg.get("http_request_backoff_factor", 1)))
    # No download progress bars in a job's log (a resumed run downloads its old summary).
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


# Root causes worth naming, most specific first.
_NETWORK_CAUSES = ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "No route to host", "Connection reset by peer", "timed out", "Max retries exceeded")


def _reason(exc: BaseException) -> str:
    """A short reason: the network root cause when there is one, else the message's first line."""
    text = str(exc)
    for cause in _NETWORK_CAUSES:
        if cause in text:
            return cause
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


@contextmanager
def _guard(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except TrackingError:
        raise
    except Exception as e:  # MlflowException, requests errors, SQLAlchemy errors, OSError
        raise TrackingError(f"tracking.uri: {action} failed at MLflow tracking URI {redact(uri)}: {_reason(e)}") from e


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level with dotted keys; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    if isinstance(node, Mapping):
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}." if isinstance(v, Mapping) else f"{prefix}{k}"))
            if isinstance(v, Mapping) and not v:
                out[f"{prefix}{k}"] = "{}"
    else:
        out[prefix.rstrip(".")] = node
    return out


def metrics_from_summary(summary: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of a run summary as ``section/name`` (``section/sub/name`` for nested
    sections such as ``attacks/lira/auc``) metrics; booleans as 0/1."""
    out: dict[str, float] = {}
    labels = summary.get("labels", [])

    def walk(prefix: str, values: Mapping[str, Any]) -> None:
        for name, v in values.items():
            if name == "probabilities" and isinstance(v, list):
                for label, p in zip(labels, v):
                    out[f"{prefix}/probability_label_{label}"] = float(p)
            elif isinstance(v, Mapping):
                walk(f"{prefix}/{name}", v)
            elif isinstance(v, (bool, int, float)):
                out[f"{prefix}/{name}"] = float(v)

    for section, values in summary.items():
        if isinstance(values, Mapping) and section != "mlflow":
            walk(section, values)
    return out


def metric_name(summary_key: str) -> str:
    """``attack.tpr_at_fpr_0.01`` (a run-summary key) -> ``attack/tpr_at_fpr_0.01`` (its metric)."""
    return str(summary_key).replace(".", "/", 1)


@functools.lru_cache(maxsize=8)
def git_commit(directory: Path) -> str | None:
    """The commit checked out at ``directory`` (the engine's own checkout), if it is a git work tree."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class RunTracker:
    """One MLflow run, created and closed explicitly."""

    def __init__(self, client, uri: str, experiment_id: str, run_id: str):
        self.client = client
        self.uri = uri
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.closed = False

    @classmethod
    def start(cls, tracking: Mapping[str, Any], launch_dir: Path, run_name: str,
              tags: Mapping[str, str] | None = None, parent_run_id: str | None = None) -> "RunTracker":
        """Create the run. ``tags`` may name its owner (:func:`owner_tags`; by default this
        process). Runs of this host's experiment left RUNNING by dead processes are closed first."""
        uri = resolve_tracking_uri(tracking.get("uri"), launch_dir)
        _configure_mlflow(tracking)
        with _guard(uri, "connecting"):
            client = _open_client(uri)
            with _store_lock(uri):
                experiment_id = _experiment_id(client, tracking["experiment_name"], uri)
            try:
                close_stale_runs(client, experiment_id)
            except Exception as e:  # tidying up is never worth failing a run for
                log.debug("tracking: could not look for stale runs: %s", e)
            all_tags = {**owner_tags(), **{k: str(v) for k, v in (tags or {}).items() if v is not None}}
            if parent_run_id:
                all_tags[PARENT_TAG] = parent_run_id
            run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        return cls(client, uri, experiment_id, run.info.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        with _guard(self.uri, "logging params"):
            for i in range(0, len(items), _BATCH):
                self.client.log_batch(self.run_id, params=items[i:i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        with _guard(self.uri, "logging metrics"):
            for i in range(0, len(items), 1000):
                self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_datasets(self, datasets: Sequence[Mapping[str, Any]] | None) -> None:
        """Log dataset descriptions (see :func:`_dataset_input`) as the run's dataset inputs.

        Only metadata reaches MLflow: the source (a path or URI-like text), the digest, the
        context tag, the schema and the profile (``num_rows``, the full ``sha256`` and the
        caller's summary). A malformed description is a one-line :class:`TrackingError`.
        """
        if not datasets:
            return
        with _guard(self.uri, "logging datasets"):
            inputs = [_dataset_input(i, d) for i, d in enumerate(datasets)]
            seen: dict[tuple[str, str], int] = {}
            for i, di in enumerate(inputs):
                key = (di.dataset.name, di.dataset.digest)
                if key in seen:  # MLflow keeps one input per (name, digest) and run: the other context would vanish
                    raise TrackingError(f"tracking: datasets[{i}] ({key[0]!r}) has the name and digest of "
                                        f"datasets[{seen[key]}]; give each context its own name")
                seen[key] = i
            self.client.log_inputs(self.run_id, datasets=inputs)

    def set_tags(self, tags: Mapping[str, str] | None) -> None:
        if not tags:
            return
        from mlflow.entities import RunTag

        with _guard(self.uri, "setting tags"):
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        with _guard(self.uri, f"uploading {path.name}"):
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        if self.closed:
            return
        with _guard(self.uri, f"closing run {self.run_id} as {status}"):
            self.client.set_terminated(self.run_id, status)
        self.closed = True

    def fail_quietly(self, reason: str | None = None) -> None:
        """Close the run as FAILED (tagged ``mia.closed_reason=<reason>`` when given); used while
        another error is already on its way out."""
        if self.closed:
            return
        try:
            if reason:
                self.set_tags({CLOSED_REASON_TAG: reason})
        except TrackingError:
            pass
        try:
            self.finish("FAILED")
        except TrackingError:
            pass
        else:
            _note_failed(self.run_id)


# ---------------------------------------------------------------------------------------------
# Dataset descriptions: metadata only, never rows

DATASET_KEYS = ("name", "source", "digest", "context", "n_rows", "schema", "profile")
DATASET_KINDS = {"numeric": "double", "binary": "long", "categorical": "string", "label": "string"}
DIGEST_PREFIX = 16  # hex digits of the SHA-256 stored as MLflow's digest (MLflow allows <= 36)
_MAX_PROFILE_CHARS = 65536  # a summary, not data
_RESERVED_PROFILE_KEYS = ("num_rows", "sha256")
_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".feather", ".arrow", ".json", ".jsonl",
                  ".xlsx", ".xls", ".pkl", ".npz", ".npy", ".gz", ".zip", ".bz2", ".xz", ".zst", ".db", ".sqlite")


def _dataset_input(index: int, ds: Mapping[str, Any]):
    """An ``mlflow.entities.DatasetInput`` for one dataset description (a plain dict)::

        {"name": str, "source": str, "digest": <SHA-256 hex>, "context": "train" | "test" | ...,
         "n_rows": int, "schema": {column: "numeric" | "categorical" | "binary" | "label"},
         "profile": {small JSON-able summary}}

    MLflow gets a ``MetaDataset`` (no rows): the digest is the first :data:`DIGEST_PREFIX`
    hex digits, the schema a ``mlflow.types.Schema`` of ColSpecs (numeric -> double,
    binary -> long, categorical and label -> string), the profile ``{"num_rows", "sha256",
    **profile}``, and the context the input tag ``mlflow.data.context``.
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    where = f"tracking: datasets[{index}]"
    if not isinstance(ds, Mapping):
        raise TrackingError(f"{where}: expected a dict, got {type(ds).__name__}")
    where = f"{where} ({ds.get('name')!r})"
    unknown = sorted(str(k) for k in ds if k not in DATASET_KEYS)
    missing = [k for k in DATASET_KEYS if k not in ds and k != "profile"]
    if unknown or missing:
        raise TrackingError(f"{where}: " + "; ".join(
            ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else []))
            + f" (expected {list(DATASET_KEYS)})")
    for key in ("name", "source", "context"):
        if not isinstance(ds[key], str) or not ds[key]:
            raise TrackingError(f"{where}: {key} must be a non-empty string, got {ds[key]!r}")
    digest = ds["digest"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise TrackingError(f"{where}: digest must be a SHA-256 hex digest (64 hex digits), got {digest!r}")
    digest = digest.lower()
    n_rows = ds["n_rows"]
    if isinstance(n_rows, bool) or not isinstance(n_rows, numbers.Integral) or n_rows < 0:
        raise TrackingError(f"{where}: n_rows must be an integer >= 0, got {n_rows!r}")
    schema = ds["schema"]
    if not isinstance(schema, Mapping):
        raise TrackingError(f"{where}: schema must be a dict column -> kind, got {type(schema).__name__}")
    bad = {str(c): k for c, k in schema.items() if k not in DATASET_KINDS}
    if bad:
        raise TrackingError(f"{where}: schema kinds must be one of {list(DATASET_KINDS)}, got {bad}")
    profile = ds.get("profile") or {}
    if not isinstance(profile, Mapping):
        raise TrackingError(f"{where}: profile must be a dict, got {type(profile).__name__}")
    clash = [k for k in _RESERVED_PROFILE_KEYS if k in profile]
    if clash:
        raise TrackingError(f"{where}: profile keys {clash} are reserved (set from n_rows and digest)")
    try:
        profile_json = json.dumps({"num_rows": int(n_rows), "sha256": digest, **profile}, allow_nan=False,
                                  default=_json_scalar)
    except (TypeError, ValueError) as e:
        raise TrackingError(f"{where}: profile is not JSON-able: {e}") from None
    if len(profile_json) > _MAX_PROFILE_CHARS:
        raise TrackingError(f"{where}: profile is {len(profile_json)} characters as JSON; at most "
                            f"{_MAX_PROFILE_CHARS} (a summary, never the data)")

    columns = [ColSpec(DATASET_KINDS[kind], str(col)) for col, kind in schema.items()]
    meta = MetaDataset(_dataset_source(ds["source"]), name=ds["name"], digest=digest[:DIGEST_PREFIX],
                       schema=Schema(columns) if columns else None)
    entity = meta._to_mlflow_entity()  # MetaDataset has no profile: add ours to its entity
    entity = DatasetEntity(name=entity.name, digest=entity.digest, source_type=entity.source_type,
                           source=entity.source, schema=entity.schema, profile=profile_json)
    return DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, ds["context"])])


def _json_scalar(o: Any) -> Any:
    """numpy scalars (class counts from pandas and numpy) as Python numbers."""
    if hasattr(o, "item") and getattr(o, "ndim", None) == 0:
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _dataset_source(source: str):
    """The MLflow ``DatasetSource`` for a source text: an ``http(s)`` URL, another URI with a
    scheme MLflow knows (``s3://``, ``gs://``...), a file path (``local``), else the name of
    the code that produced the data (``code``, e.g. ``sklearn.datasets.load_breast_cancer``)."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json, resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if re.match(r"https?://", source, re.IGNORECASE):
        return HTTPDatasetSource(source)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source) and not source.lower().startswith("file:"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return resolve_dataset_source(source)
        except Exception:
            return CodeDatasetSource({"mlflow.source.name": source})
    if (source.lower().startswith("file:") or "/" in source or os.sep in source or source.startswith("~")
            or source.lower().endswith(_FILE_SUFFIXES) or os.path.exists(source)):
        return get_dataset_source_from_json(json.dumps({"uri": source}), "local")
    return CodeDatasetSource({"mlflow.source.name": source})


def _log_and_finish(tracker: RunTracker, params: Mapping[str, Any], metrics: Mapping[str, float],
                    artifacts: list[tuple[str, str | None]],
                    datasets: Sequence[Mapping[str, Any]] | None = None,
                    tags: Mapping[str, str] | None = None) -> None:
    tracker.set_tags(tags)
    tracker.log_params(params)
    tracker.log_metrics(metrics)
    tracker.log_datasets(datasets)
    for path, artifact_path in artifacts:
        tracker.log_artifact(Path(path), artifact_path)
    tracker.finish("FINISHED")


def _fork_is_safe() -> bool:
    """Fork only a fresh, single-threaded process: no MLflow state (SQLAlchemy pools) to inherit."""
    import threading

    return hasattr(os, "fork") and "mlflow" not in sys.modules and threading.active_count() == 1


# Runs this process closed FAILED (directly or through its helper), for the interruption message.
_FAILED_RUNS: list[str] = []


def _note_failed(run_id: str | None) -> None:
    if run_id and run_id not in _FAILED_RUNS:
        _FAILED_RUNS.append(run_id)


# Sessions with a run that may still be open, so an interruption can close them.
_LIVE_SESSIONS: list["TrackingSession"] = []


def close_open_runs() -> list[str]:
    """Close FAILED every run this process still holds open (a job's session, a sweep's parent)
    and return the ids of all runs it closed FAILED; for an interrupted command."""
    for session in list(_LIVE_SESSIONS):
        try:
            session.abandon()
        except BaseException:  # noqa: BLE001 - best effort on the way out
            pass
    for parent in list(SweepParentRun.active):
        parent._close_failed(interrupted=True)
    return list(_FAILED_RUNS)


class TrackingSession:
    """The MLflow side of one job, from before validation to the closed run.

    With ``tracking.background`` (the default) and a fresh single-threaded process, a forked
    helper process imports MLflow and opens the store while the scenario computes (MLflow's
    import and store set-up cost more than the tutorial's whole computation), then creates,
    logs and closes the run on request. Otherwise the same happens in-process.

    The helper dies with the job: it asks the kernel for SIGTERM when its parent dies (Linux),
    holds only its own end of the pipe (so the job's death is an end of file), and checks its
    parent process besides. On any of these it closes the run FAILED (``mia.closed_reason=
    process gone``). It ignores SIGINT: on Ctrl-C the job decides (and asks it to close the run).

    ``open()`` asks for the run to be created and returns at once; ``wait_open()`` waits for
    it (:class:`TrackingError` if the store cannot be reached) and sets ``run_id``,
    ``experiment_id`` and ``uri``. ``log_and_finish()`` logs everything (params, metrics,
    dataset descriptions, artifacts) and closes the run FINISHED; ``abandon()`` closes it FAILED (before ``open()``, it only stops the helper).
    """

    def __init__(self, tracking: Mapping[str, Any], launch_dir: Path, run_name: str,
                 tags: Mapping[str, Any], parent_run_id: str | None):
        # The run belongs to this process (not to the helper): a stale-run check tests this pid.
        tags = {**owner_tags(), **dict(tags)}
        self._args = (dict(tracking), Path(launch_dir), run_name, tags, parent_run_id)
        self._tracker: RunTracker | None = None
        self._proc = self._conn = None
        self._opening = False  # a start request whose reply is unread
        self._open_error: TrackingError | None = None
        self._done = self._logging = False
        self.run_id = self.experiment_id = self.uri = None
        if tracking.get("background", True) and _fork_is_safe():
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_helper, args=(child, self._conn, os.getpid(), *self._args),
                                     name="mia-engine-mlflow", daemon=True)
            self._proc.start()
            child.close()
        _LIVE_SESSIONS.append(self)

    @property
    def background(self) -> bool:
        return self._proc is not None

    def open(self) -> None:
        if self._proc is None:
            try:
                self._tracker = RunTracker.start(*self._args)
            except TrackingError as e:
                self._open_error = e  # raised by wait_open(), as with the helper
            else:
                t = self._tracker
                self.run_id, self.experiment_id, self.uri = t.run_id, t.experiment_id, t.uri
        else:
            self._send(("start",))
            self._opening = True

    def wait_open(self) -> None:
        if self._open_error is not None:
            raise self._open_error
        if self._opening:
            self._opening = False
            self.run_id, self.experiment_id, self.uri = self._receive()

    def log_and_finish(self, params: Mapping[str, Any], metrics: Mapping[str, float],
                       artifacts: list[tuple[Path, str | None]],
                       datasets: Sequence[Mapping[str, Any]] | None = None,
                       tags: Mapping[str, str] | None = None) -> None:
        """``datasets``: dataset descriptions for :meth:`RunTracker.log_datasets` (plain dicts);
        ``tags``: set on the run before anything else (results known only at the end, e.g. the verdict)."""
        tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None}
        items = [(str(p), a) for p, a in artifacts]
        described = [dict(d) if isinstance(d, Mapping) else d for d in datasets] if datasets else None
        if self._proc is None:
            self.wait_open()
            try:
                _log_and_finish(self._tracker, params, metrics, items, described, tags)
            except BaseException:
                self._tracker.fail_quietly()
                raise
            finally:
                self._forget()
        else:
            self.wait_open()
            self._send(("log", dict(params), dict(metrics), items, described, tags))
            self._logging = True  # a reply to read, even if interrupted meanwhile (see abandon)
            try:
                self._receive()
            except TrackingError:
                _note_failed(self.run_id)  # the helper closes a run it could not finish FAILED
                raise
            else:
                self._stop()
            finally:
                self._logging = False

    def abandon(self) -> None:
        if self._done:
            return
        if self._proc is None:
            if self._tracker is not None:
                self._tracker.fail_quietly()
            self._forget()
            return
        try:
            if self._opening:
                self.wait_open()
            if self._logging:  # interrupted while the helper logs: it closes the run either way
                self._logging = False
                try:
                    self._receive()
                except TrackingError:
                    _note_failed(self.run_id)
            elif self.run_id is not None:
                self._send(("fail",))
                self._receive()
                _note_failed(self.run_id)
        except TrackingError:
            pass
        finally:
            self._stop(terminate=self.run_id is None)  # no run: nothing to close, stop at once

    def _forget(self) -> None:
        self._done = True
        if self in _LIVE_SESSIONS:
            _LIVE_SESSIONS.remove(self)

    def _send(self, message: tuple) -> None:
        try:
            self._conn.send(message)
        except OSError:
            self._died()

    def _receive(self) -> tuple:
        try:
            reply = self._conn.recv()
        except (EOFError, OSError):
            self._died()
        if reply[0] == "error":
            raise TrackingError(reply[1])
        return reply[1:]

    def _died(self):
        self._proc.join(timeout=5)
        raise TrackingError(f"tracking: the MLflow helper process ended unexpectedly "
                            f"(exit code {self._proc.exitcode})") from None

    def _stop(self, terminate: bool = False) -> None:
        self._forget()
        if self._proc is None:
            return
        self._conn.close()
        if terminate:
            self._proc.terminate()
        self._proc.join(timeout=30)


def _die_with_parent() -> None:
    """Linux: ask for SIGTERM when the parent (the job) dies, whatever kills it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - the end-of-file and parent checks remain
        pass


class _ParentGone(BaseException):
    """Raised in the helper by SIGTERM (its parent died, or someone stops it)."""


_helper_idle = False  # in the helper: no request received yet, so no run to close


def _on_sigterm(signum, frame) -> None:
    if _helper_idle:
        # Nothing to close. The signal may land anywhere in MLflow's import (even in an import
        # lock's callback, where a raised exception is only printed onto the job's stderr).
        os._exit(0)
    raise _ParentGone()


def _helper(conn, parent_conn, parent_pid, tracking, launch_dir, run_name, tags, parent_run_id) -> None:
    """The forked helper: warm MLflow up, then serve start / log / fail requests
    (``("log", params, metrics, artifacts, datasets)``)."""
    global _helper_idle
    tracker: RunTracker | None = None
    reason = PROCESS_GONE
    _helper_idle = True
    try:
        parent_conn.close()  # only the job holds that end: its death is an end of file here
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the job decides, and tells us
        signal.signal(signal.SIGTERM, _on_sigterm)
        _die_with_parent()
        if os.getppid() != parent_pid:
            return  # the job died before the line above
        try:
            uri = resolve_tracking_uri(tracking.get("uri"), launch_dir)
            _configure_mlflow(tracking)
            _open_client(uri)  # import MLflow, open (or create) the store and check its schema
        except Exception:  # noqa: BLE001
            pass  # any real problem is reported by RunTracker.start
        while True:
            while not conn.poll(1.0):
                if os.getppid() != parent_pid:
                    return  # the job is gone: the finally clause closes any run FAILED
            _helper_idle = False
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            reason = None  # a request: any failure from here on is reported to the job
            try:
                if message[0] == "start":
                    tracker = RunTracker.start(tracking, launch_dir, run_name, tags, parent_run_id)
                    conn.send(("ok", tracker.run_id, tracker.experiment_id, tracker.uri))
                    reason = PROCESS_GONE
                    continue
                if message[0] == "log":
                    _log_and_finish(tracker, *message[1:])
                elif tracker is not None:
                    tracker.finish("FAILED")
                conn.send(("ok",))
            except Exception as e:
                conn.send(("error", str(e) if isinstance(e, TrackingError) else f"tracking: {type(e).__name__}: {e}"))
            return
    except _ParentGone:
        reason = PROCESS_GONE
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the run be closed
        if tracker is not None and not tracker.closed:
            tracker.fail_quietly(reason)
        try:
            conn.close()
        except OSError:
            pass


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else ("null" if v is None else str(v))
    return s if len(s) <= _MAX_PARAM_LENGTH else s[: _MAX_PARAM_LENGTH - 3] + "..."


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            # MLflow 3's UI opens an experiment in the view of its kind: model training, not GenAI.
            return client.create_experiment(name, artifact_location=_local_artifact_root(uri),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except Exception:
            exp = client.get_experiment_by_name(name)  # created meanwhile by a parallel job
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise TrackingError(f"tracking.experiment_name: experiment {name!r} is deleted in {redact(uri)}; "
                            "restore it (mlflow experiments restore) or choose another name")
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):  # made before the engine set its kind
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


# ---------------------------------------------------------------------------------------------
# Resume: reuse a FINISHED run of the identical resolved config

CONFIG_HASH_TAG = "mia.config_hash"


def reuse_finished_run(tracking: Mapping[str, Any], launch_dir: Path, config_hash: str, out_dir: Path,
                       run_name: str, tags: Mapping[str, Any], parent_run_id: str | None,
                       params: Mapping[str, Any]) -> dict | None:
    """The summary of the newest FINISHED run tagged with ``config_hash``, or None.

    Its ``summary.json`` is copied into ``out_dir``; inside a sweep a child run under the new
    parent carries its params and metrics (tagged ``mia.reused_run_id``), so the sweep's
    summary lists every job. Nothing is computed again.
    """
    uri = resolve_tracking_uri(tracking.get("uri"), launch_dir)
    _configure_mlflow(tracking)
    with _guard(uri, "looking for a finished run to resume from"):
        client = _open_client(uri)
        exp = client.get_experiment_by_name(tracking["experiment_name"])
        if exp is None:
            return None
        found = client.search_runs([exp.experiment_id],
                                   filter_string=f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}' "
                                                 "and attributes.status = 'FINISHED'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        if not found:
            return None
        old = found[0]
        try:
            path = client.download_artifacts(old.info.run_id, "summary.json", str(out_dir))
        except Exception:
            return None  # no summary to reuse: run the job
        summary = json.loads(Path(path).read_text())
    if parent_run_id:
        t = RunTracker.start(tracking, launch_dir, run_name,
                             tags={**tags, "mia.reused_run_id": old.info.run_id}, parent_run_id=parent_run_id)
        try:
            _log_and_finish(t, params, dict(old.data.metrics), [(path, None)])
        except BaseException:
            t.fail_quietly()
            raise
    summary.setdefault("mlflow", {})["reused_run_id"] = old.info.run_id
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# Multirun: one parent run per sweep

class SweepFailedError(MiaEngineError):
    """A sweep whose parent run ended FAILED: a job's run failed or is missing."""

    exit_code = 1


# The parent run of each sweep this process drives: jobs run in the driver (the basic launcher)
# take it from here, jobs in other processes from the sweep directory's file.
_SWEEP_PARENTS: dict[str, str] = {}
_SWEEP_DIRS: list[str] = []  # sweeps this process drives (tracked or not), for messages


def current_sweep_dir() -> str | None:
    """The directory of the sweep this process drives, if any."""
    return _SWEEP_DIRS[-1] if _SWEEP_DIRS else None


def parent_run_file(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / PARENT_RUN_FILE


def read_parent_run(sweep_dir: Path) -> str | None:
    """The parent run of the sweep writing to ``sweep_dir`` (None: the sweep is not tracked)."""
    own = _SWEEP_PARENTS.get(os.path.abspath(sweep_dir))
    if own is not None:
        return own
    f = parent_run_file(sweep_dir)
    try:
        text = f.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TrackingError(f"hydra.sweep.dir: cannot read the sweep's parent run from {f}: {e.strerror or e}") from None
    try:
        return json.loads(text)["run_id"]
    except (ValueError, KeyError, TypeError):
        raise TrackingError(f"hydra.sweep.dir: {f} does not name the sweep's parent run "
                            "(written by another program?)") from None


def _check_sweep_dir(sweep_dir: Path) -> None:
    """The sweep directory must exist or be creatable, and be writable: else one line naming
    ``hydra.sweep.dir`` before anything starts."""
    from .errors import ConfigError

    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("hydra.sweep.dir", f"cannot create {sweep_dir}: {e.strerror or e}"
                                             f"{_where_failed(e, sweep_dir)}") from None
    if not os.access(sweep_dir, os.W_OK | os.X_OK):
        raise ConfigError("hydra.sweep.dir", f"{sweep_dir} is not writable") from None


class SweepParentRun(Callback):
    """Hydra callback: a parent MLflow run per multirun, its jobs nested under it.

    Runs in the driver. The parent's id goes to ``<sweep dir>/mlflow_parent_run.json`` where
    every job (in any launcher on this file system) finds it; the driver holds an exclusive
    lock on that file while the sweep runs, so a second live sweep cannot take over the same
    directory (it stops with one line naming ``hydra.sweep.dir``). The parent is closed FINISHED
    when every child finished, FAILED otherwise, and then the command exits non-zero; if the
    sweep dies before ``on_multirun_end``, an exit handler closes it FAILED.
    """

    active: list["SweepParentRun"] = []  # callbacks with an open parent run (this process)

    def __init__(self) -> None:
        self._tracker: RunTracker | None = None
        self._fd: int | None = None
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        try:
            self._start(config)
        except MiaEngineError as e:
            raise AbortSweep(e) from None

    def _start(self, config) -> None:
        from omegaconf import OmegaConf

        from .errors import ConfigError
        from .sweep_checks import check_sweeper

        check_sweeper(config)
        hc = config.hydra  # HydraConfig is not set yet in the driver
        launch_dir = Path(hc.runtime.cwd)
        sweep_dir = launch_dir / hc.sweep.dir
        _check_sweep_dir(sweep_dir)
        _SWEEP_DIRS.append(str(sweep_dir))
        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        # A sweep of plans (plan_only=true) fits nothing and its jobs open no run: no parent either.
        plan_only = OmegaConf.select(config, "plan_only", default=False) is True or any(
            o.replace(" ", "") in ("plan_only=true", "plan_only=True") for o in config.hydra.overrides.task)
        if not tracking.get("enabled") or plan_only:
            return
        self._claim(parent_run_file(sweep_dir))
        overrides = list(hc.overrides.task)
        shown = [o for o in overrides if not o.lstrip("+~").startswith(("tracking.", "hydra."))]
        name = tracking.get("run_name") or " ".join(["sweep", *shown])
        try:
            self._tracker = RunTracker.start(
                tracking, launch_dir, name,
                tags={"mia.role": "sweep", "mia.sweep_dir": str(sweep_dir), "mia.overrides": " ".join(overrides),
                      "mlflow.source.git.commit": git_commit(Path(__file__).resolve().parent)},
            )
        except BaseException:
            self._release()
            raise
        t = self._tracker
        self._sweep_dir = sweep_dir
        SweepParentRun.active.append(self)
        atexit.register(self._close_failed)
        try:
            data = json.dumps({"run_id": t.run_id, "experiment_id": t.experiment_id, "tracking_uri": t.uri,
                               "sweep_dir": str(sweep_dir), **owner_tags()}) + "\n"
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data.encode(), 0)
        except OSError as e:
            self._close_failed()
            raise ConfigError("hydra.sweep.dir", f"cannot write {parent_run_file(sweep_dir)}: "
                                                 f"{e.strerror or e}") from None
        _SWEEP_PARENTS[os.path.abspath(sweep_dir)] = t.run_id

    def _claim(self, path: Path) -> None:
        """Open the parent-run file and lock it for this sweep (refused while another sweep holds it)."""
        from .errors import ConfigError

        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise ConfigError("hydra.sweep.dir", f"cannot write {path}: {e.strerror or e}") from None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                other = json.loads(path.read_text()).get("run_id")
            except (OSError, ValueError):
                other = None
            raise ConfigError("hydra.sweep.dir", f"{path.parent} is in use by another sweep that is still running"
                                                 f"{f' (parent run {other})' if other else ''}; "
                                                 "choose another hydra.sweep.dir") from None
        except (ImportError, OSError):
            pass  # no locking here (not POSIX, or a file system without locks)
        self._fd = fd

    def _release(self) -> None:
        if self in SweepParentRun.active:
            SweepParentRun.active.remove(self)
        if self._sweep_dir is not None:
            _SWEEP_PARENTS.pop(os.path.abspath(self._sweep_dir), None)
        if self._fd is not None:
            try:
                os.close(self._fd)  # releases the lock
            except OSError:
                pass
            self._fd = None

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        t = self._tracker
        if t is None:
            return
        sweep_dir = self._sweep_dir
        try:
            with _guard(t.uri, "reading the sweep's child runs"):
                children = t.client.search_runs([t.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{t.run_id}'",
                                                max_results=50000, order_by=["attributes.start_time ASC"])
            failed = [r for r in children if r.info.status != "FINISHED"]
            t.log_metrics({"sweep/n_jobs": len(children), "sweep/n_failed": len(failed)})
            if children:
                try:
                    self._log_summary(config, t, children)
                except TrackingError:
                    raise
                except Exception as e:  # noqa: BLE001 - the jobs' outcome decides the parent's
                    log.warning("sweep: the sweep summary could not be written: %s: %s", type(e).__name__, e)
            status = "FINISHED" if children and not failed else "FAILED"
            t.finish(status)
        except TrackingError as e:
            raise AbortSweep(e) from None  # not an Exception: Hydra would only warn
        finally:
            if not t.closed:
                t.fail_quietly()
            atexit.unregister(self._close_failed)
            self._release()
            self._tracker = None
        if status == "FAILED":
            _note_failed(t.run_id)
            if not children:
                why = "no job run was recorded under it"
            else:
                counts: dict[str, int] = {}
                for r in failed:
                    counts[r.info.status] = counts.get(r.info.status, 0) + 1
                why = (f"{len(failed)} of {len(children)} job runs did not finish ("
                       + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
            raise AbortSweep(SweepFailedError(f"sweep: {why}; parent run {t.run_id} closed as FAILED; "
                                              f"outputs in {sweep_dir}"))

    def _log_summary(self, config, t: RunTracker, children) -> None:
        """Every job's overrides and key metrics (CSV, Markdown, plots; Pareto front) on the parent."""
        from omegaconf import OmegaConf

        from .sweep_summary import parse_overrides, write_sweep_summary

        rows = [{"run_name": r.info.run_name, "run_id": r.info.run_id, "status": r.info.status,
                 "params": parse_overrides(r.data.tags.get("mia.overrides", "")), "metrics": dict(r.data.metrics),
                 "verdict": r.data.tags.get(VERDICT_TAG)}
                for r in children]
        objectives = [metric_name(k) for k in (OmegaConf.select(config, "objectives") or [])]
        directions = OmegaConf.select(config, "hydra.sweeper.direction")
        if isinstance(directions, str):
            directions = [directions]
        directions = [str(d) for d in (directions or [])]
        sweep_dir = Path(config.hydra.runtime.cwd) / config.hydra.sweep.dir
        out = write_sweep_summary(rows, sweep_dir / "sweep_summary", objectives, directions)
        t.log_artifact(out, "sweep_summary")


    def _close_failed(self, interrupted: bool = False) -> None:
        """Close the parent FAILED (the sweep died). Its children still RUNNING are closed FAILED
        too when their process is gone or, ``interrupted``, in any case (jobs in launcher
        workers are stopped with the sweep)."""
        atexit.unregister(self._close_failed)
        self._release()
        t, self._tracker = self._tracker, None
        if t is None:
            return
        try:
            from mlflow.entities import RunTag

            running = t.client.search_runs([t.experiment_id], max_results=50000,
                                           filter_string=f"tags.`{PARENT_TAG}` = '{t.run_id}' "
                                                         "and attributes.status = 'RUNNING'")
            for r in running:
                tags = r.data.tags
                try:
                    pid = int(tags.get(PID_TAG, ""))
                except ValueError:
                    pid = -1
                gone = not process_alive(pid, tags.get(PID_START_TAG))
                if gone or interrupted:
                    reason = PROCESS_GONE if gone else "sweep interrupted"
                    t.client.log_batch(r.info.run_id, tags=[RunTag(CLOSED_REASON_TAG, reason)])
                    t.client.set_terminated(r.info.run_id, "FAILED")
                    _note_failed(r.info.run_id)
        except Exception as e:  # noqa: BLE001 - the parent is closed below in any case
            log.debug("tracking: could not close the sweep's running jobs: %s", e)
        t.fail_quietly()
