"""MLflow tracking: the only module of the package that imports ``mlflow``.

- :func:`resolve_tracking_uri` decides the store: ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``,
  else ``sqlite:///<launch dir>/mlflow.db`` (relative SQLite paths are taken from the launch
  directory, so ``hydra.job.chdir=true`` cannot scatter one database per job).
- :class:`RunTracker` is one MLflow run driven through ``MlflowClient`` (no fluent global
  state), with every failure turned into a one-line :class:`~mia_engine.errors.TrackingError`.
- :class:`SweepParentRun` is the Hydra callback that opens one parent run per multirun and
  closes it FINISHED, or FAILED when a job failed or the sweep died.

``mlflow`` itself is imported lazily, so ``tracking=none`` runs never pay for it.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from hydra.experimental.callback import Callback

from .errors import TrackingError

PARENT_RUN_FILE = "mlflow_parent_run.json"
PARENT_TAG = "mlflow.parentRunId"
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


def _configure_http(cfg: Mapping[str, Any]) -> None:
    """Bound MLflow's HTTP retries and timeouts (its defaults stall minutes on a dead server)."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(cfg.get("http_request_timeout", 10)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(int(cfg.get("http_request_max_retries", 1)))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(int(cfg.get("http_request_backoff_factor", 1)))


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
    """Numeric leaves of a run summary as ``section/name`` metrics (booleans as 0/1)."""
    out: dict[str, float] = {}
    labels = summary.get("labels", [])
    for section, values in summary.items():
        if not isinstance(values, Mapping) or section in ("mlflow", "probe_records"):
            continue
        for name, v in values.items():
            if name == "probabilities" and isinstance(v, list):
                for label, p in zip(labels, v):
                    out[f"{section}/probability_label_{label}"] = float(p)
            elif isinstance(v, bool):
                out[f"{section}/{name}"] = float(v)
            elif isinstance(v, (int, float)):
                out[f"{section}/{name}"] = float(v)
    for probe, values in (summary.get("probe_records") or {}).items():
        for label, p in zip(labels, values["probabilities"]):
            out[f"probe_records/{probe}/probability_label_{label}"] = float(p)
    return out


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
        uri = resolve_tracking_uri(tracking.get("uri"), launch_dir)
        _configure_http(tracking)
        with _guard(uri, "connecting"):
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            experiment_id = _experiment_id(client, tracking["experiment_name"], uri)
            all_tags = {k: str(v) for k, v in (tags or {}).items() if v is not None}
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

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        with _guard(self.uri, "setting tags"):
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items() if v is not None])

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

    def fail_quietly(self) -> None:
        """Close the run as FAILED; used while another error is already on its way out."""
        try:
            self.finish("FAILED")
        except TrackingError:
            pass


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else ("null" if v is None else str(v))
    return s if len(s) <= _MAX_PARAM_LENGTH else s[: _MAX_PARAM_LENGTH - 3] + "..."


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_local_artifact_root(uri))
        except Exception:
            exp = client.get_experiment_by_name(name)  # created meanwhile by a parallel job
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise TrackingError(f"tracking.experiment_name: experiment {name!r} is deleted in {redact(uri)}; "
                            "restore it (mlflow experiments restore) or choose another name")
    return exp.experiment_id


# ---------------------------------------------------------------------------------------------
# Multirun: one parent run per sweep

def parent_run_file(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / PARENT_RUN_FILE


def read_parent_run(sweep_dir: Path) -> str | None:
    f = parent_run_file(sweep_dir)
    return json.loads(f.read_text())["run_id"] if f.exists() else None


class SweepParentRun(Callback):
    """Hydra callback: a parent MLflow run per multirun, its jobs nested under it.

    Runs in the driver. The parent's id goes to ``<sweep dir>/mlflow_parent_run.json`` where
    every job (in any launcher on this file system) finds it. The parent is closed FINISHED
    when every child finished, FAILED otherwise; if the sweep dies before
    ``on_multirun_end``, an exit handler closes it FAILED.
    """

    def __init__(self) -> None:
        self._tracker: RunTracker | None = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        if not tracking.get("enabled"):
            return
        hc = config.hydra  # HydraConfig is not set yet in the driver
        launch_dir = Path(hc.runtime.cwd)
        sweep_dir = launch_dir / hc.sweep.dir
        overrides = list(hc.overrides.task)
        name = tracking.get("run_name") or ("sweep " + " ".join(overrides) if overrides else "sweep")
        self._tracker = RunTracker.start(
            tracking, launch_dir, name,
            tags={"mia.role": "sweep", "mia.sweep_dir": str(sweep_dir), "mia.overrides": " ".join(overrides),
                  "mlflow.source.git.commit": git_commit(Path(__file__).resolve().parent)},
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        parent_run_file(sweep_dir).write_text(json.dumps({
            "run_id": self._tracker.run_id, "experiment_id": self._tracker.experiment_id,
            "tracking_uri": self._tracker.uri}) + "\n")
        atexit.register(self._close_failed)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        t = self._tracker
        if t is None:
            return
        atexit.unregister(self._close_failed)
        try:
            with _guard(t.uri, "reading the sweep's child runs"):
                children = t.client.search_runs([t.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{t.run_id}'",
                                                max_results=50000)
            failed = [r for r in children if r.info.status != "FINISHED"]
            t.log_metrics({"sweep/n_jobs": len(children), "sweep/n_failed": len(failed)})
            t.finish("FINISHED" if children and not failed else "FAILED")
        except TrackingError:
            t.fail_quietly()
            raise
        finally:
            self._tracker = None

    def _close_failed(self) -> None:
        if self._tracker is not None:
            self._tracker.fail_quietly()
            self._tracker = None
