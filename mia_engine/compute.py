"""Where the many fits of one run go: serially, on joblib workers, or as Ray tasks.

:func:`map_tasks` calls ``fn(item, shared)`` for every item and yields ``(index, result)`` as
each finishes. Callers place results by index, so the order in which workers finish never
changes a number: every task's seed comes from the config and the item, never from the worker.

Backends (``reference.backend``, ``evaluation.backend``):

- ``threading``, ``loky``, ``multiprocessing``: joblib on this machine, ``n_jobs`` workers.
- ``ray``: Ray tasks (:func:`ray_runtime` says which Ray). ``shared`` goes to the object store
  once and every task reads that one copy (NumPy arrays without copying); tasks return their
  results only. ``n_jobs`` is ignored: Ray schedules one task per ``ray.cpus_per_task`` CPUs.
  Ctrl-C (or any error) cancels the tasks still queued or running.

:class:`Progress` logs how many tasks are done and the time left at the pace so far, whatever
the backend.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import ConfigError

log = logging.getLogger("mia_engine")

#: The backends :func:`map_tasks` knows (the first three are joblib's).
BACKENDS = ("threading", "loky", "multiprocessing", "ray")


class Progress:
    """Log lines as tasks finish: at most one per 10% of the work or per ``every_seconds``,
    with the time left at the pace so far; none in the first :attr:`QUIET_SECONDS` (a stage
    that takes a second needs no progress report)."""

    QUIET_SECONDS = 2.0

    def __init__(self, total: int, what: str, unit: str, every_seconds: float = 30.0):
        self.total, self.what, self.unit = int(total), what, unit
        self.count, self.every = 0, float(every_seconds)
        self.start = self.last = time.perf_counter()
        self.last_tenth = 0

    def done(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        tenth = 10 * self.count // max(self.total, 1)
        if self.count < self.total and now - self.start >= self.QUIET_SECONDS and (
                tenth > self.last_tenth or now - self.last >= self.every):
            self.last, self.last_tenth = now, tenth
            elapsed = now - self.start
            left = elapsed / self.count * (self.total - self.count)
            log.info("%s: %d/%d %s (%d%%), %s so far, about %s left", self.what, self.count, self.total, self.unit,
                     100 * self.count // self.total, duration(elapsed), duration(left))


def clock() -> tuple[float, float]:
    """(wall, this process's CPU) seconds, for timing a stage."""
    return time.perf_counter(), time.process_time()


def duration(seconds: float) -> str:
    """``seconds`` as 7s, 3m05s or 2h01m."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def check_backend(node: Mapping[str, Any], key: str) -> None:
    """``<key>.n_jobs`` and ``<key>.backend`` of a config node, checked before anything runs."""
    if node.get("n_jobs") == 0:
        raise ConfigError(f"{key}.n_jobs", "must be a positive number of workers or negative (-1: all cores), got 0")
    if node.get("backend") not in BACKENDS:
        raise ConfigError(f"{key}.backend", f"unknown backend {node.get('backend')!r}; available: "
                                            f"{', '.join(BACKENDS)}")
    if node.get("backend") == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(f"{key}.backend", "ray is not installed: pip install 'mia-engine[ray]'") from None


def check_ray_settings(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``ray`` node, validated (each error names its key)."""
    node = dict(node or {})
    address = node.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError("ray.address", f"must be null, 'auto' or a cluster address, got {address!r}")
    for k in ("num_cpus", "object_store_memory"):
        v = node.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"ray.{k}", f"must be a positive whole number or null, got {v!r}")
    c = node.get("cpus_per_task", 1)
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c:
        raise ConfigError("ray.cpus_per_task", f"must be a positive number of CPUs, got {c!r}")
    return node


def ray_runtime(settings: Mapping[str, Any] | None = None, announce: bool = True):
    """The ``ray`` module, connected. In order:

    1. a Ray runtime this process already has: a job that Hydra's Ray launcher runs is itself a
       Ray task, and its fits join the same cluster (no second runtime is started);
    2. ``ray.address`` ("auto", "ray://host:10001", "host:6379"), else ``$RAY_ADDRESS``: an
       existing cluster;
    3. a local instance with ``ray.num_cpus`` (null: all) and ``ray.object_store_memory``,
       started once per process and shut down when the process exits.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("reference.backend", "ray is not installed: pip install 'mia-engine[ray]'") from None
    if ray.is_initialized():
        if announce:  # once per stage: the caller counts workers first, then maps quietly
            log.info("ray: using this process's Ray runtime (%s CPUs)", int(ray.cluster_resources().get("CPU", 0)))
        return ray
    settings = dict(settings or {})
    address = settings.get("address") or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "log_to_driver": True}
    if address:
        _probe(address)
        kwargs["address"] = address
    else:
        if settings.get("num_cpus"):
            kwargs["num_cpus"] = int(settings["num_cpus"])
        if settings.get("object_store_memory"):
            kwargs["object_store_memory"] = int(settings["object_store_memory"])
    start = time.perf_counter()
    try:
        ray.init(**kwargs)
    except Exception as e:
        where = "ray.address" if address else "ray"
        raise ConfigError(where, f"cannot start or join Ray ({address or 'a local instance'}): "
                                 f"{' '.join(f'{type(e).__name__}: {e}'.split())}") from None
    log.info("ray: %s in %.1f s (%s CPUs)", f"joined {address}" if address else "started a local instance",
             time.perf_counter() - start, int(ray.cluster_resources().get("CPU", 0)))
    return ray


def workers(backend: str, n_jobs: int, n_tasks: int, ray_settings: Mapping[str, Any] | None = None) -> int:
    """How many of ``n_tasks`` run at once: joblib's workers for ``n_jobs``, or the Ray
    cluster's CPUs over ``ray.cpus_per_task`` (Ray is started or joined)."""
    n_tasks = max(int(n_tasks), 1)
    if backend == "ray":
        return ray_slots(ray_runtime(ray_settings).cluster_resources().get("CPU", 1), ray_settings, n_tasks)
    if n_jobs == 1:
        return 1
    from joblib import effective_n_jobs, parallel_config

    with parallel_config(backend=backend):
        return max(1, min(effective_n_jobs(n_jobs), n_tasks))


def ray_slots(cpus: float, ray_settings: Mapping[str, Any] | None, n_tasks: int) -> int:
    """How many of ``n_tasks`` Ray runs at once on ``cpus`` CPUs, one per ``ray.cpus_per_task``."""
    per_task = float((ray_settings or {}).get("cpus_per_task") or 1)
    return max(1, min(int(float(cpus) / per_task), int(n_tasks)))


def _probe(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address that accepts no connection is an error
    at once: Ray itself waits minutes for a cluster that is not there."""
    import socket

    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():  # "auto", or a form Ray resolves itself
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError("ray.address", f"cannot reach the Ray cluster at {address}: "
                                         f"{e.strerror or type(e).__name__}") from None


def _call(fn, item, shared):
    return fn(item, shared)


def _indexed(i, fn, item, shared):
    return i, fn(item, shared)


def map_tasks(fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any, *, backend: str, n_jobs: int,
              ray_settings: Mapping[str, Any] | None = None) -> Iterator[tuple[int, Any]]:
    """``fn(item, shared)`` for every item, as ``(index, result)`` in the order they finish.

    ``fn`` must be a module-level function (process and Ray workers import it by name).
    With ``n_jobs == 1`` on a joblib backend the calls run here, one after another.
    """
    items = list(items)
    if not items:
        return
    if backend == "ray":
        yield from _map_ray(fn, items, shared, ray_settings)
        return
    if n_jobs == 1:
        for i, item in enumerate(items):
            yield i, fn(item, shared)
        return
    from joblib import Parallel, delayed

    yield from Parallel(n_jobs=n_jobs, backend=backend, return_as="generator_unordered")(
        delayed(_indexed)(i, fn, item, shared) for i, item in enumerate(items))


def _map_ray(fn, items, shared, settings) -> Iterator[tuple[int, Any]]:
    settings = dict(settings or {})
    ray = ray_runtime(settings, announce=False)
    from ray.exceptions import RayTaskError, TaskCancelledError

    shared_ref = ray.put(shared)  # once: every task reads this copy
    remote = ray.remote(num_cpus=float(settings.get("cpus_per_task") or 1), max_retries=0)(_call)
    pending = {remote.remote(fn, item, shared_ref): i for i, item in enumerate(items)}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                i = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except RayTaskError as e:  # the task's own exception, as raised in the worker
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, BaseException) and not isinstance(cause, TaskCancelledError):
                        raise cause from None
                    raise
                yield i, value
    finally:
        if pending:  # an error, Ctrl-C, or the caller stopped early: nothing left running
            # Not force=True: that kills the worker processes, and a task sent next may land on
            # one as it dies. A running fit stops at once anyway: fits in a task run off the
            # main thread (mia_engine.models._interruptible), which sees the cancellation.
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:  # already finished or gone
                    pass
            log.info("ray: cancelled %d task(s)", len(pending))
