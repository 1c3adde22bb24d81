"""Command-line error handling: every user error ends as one line on stderr and an exit code.

Hydra prints composition errors over several lines; with ``HYDRA_FULL_ERROR=1`` it re-raises
them instead, and :func:`guarded` condenses them to ``error: <full config key>: <problem>``.
Set ``HYDRA_FULL_ERROR=1`` yourself to get Hydra's full traces back.

Ctrl-C (SIGINT) closes every open MLflow run FAILED and ends with one line, ``interrupted: ...``,
and exit code 130. :func:`register_resolvers` adds the ``${mia.now:...}`` and ``${mia.pid:}``
resolvers that give every run and sweep its own output directory (see ``conf/config.yaml``).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from typing import Any, Callable

from .errors import AbortSweep, MiaEngineError


# The process that runs the command line (set by guarded); tasks running elsewhere raise.
_CLI_PID: int | None = None
# Where the running job (or sweep) writes, for the interruption message.
_OUTPUTS: str | None = None
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report Ctrl-C

_STARTED: datetime | None = None


def _started() -> datetime:
    """This command's start, fixed at its first use: one instant for every path formatted from it."""
    global _STARTED
    if _STARTED is None:
        _STARTED = datetime.now()
    return _STARTED


def register_resolvers() -> None:
    """``${mia.now:<strftime pattern>}`` (the command's start; ``%f`` gives microseconds) and
    ``${mia.pid:}`` (its process id): with both, output directories are unique per command
    however many start in the same second. Call before Hydra composes the config."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("mia.now", lambda pattern: _started().strftime(pattern), use_cache=True,
                                    replace=True)
    OmegaConf.register_new_resolver("mia.pid", lambda: str(os.getpid()), use_cache=True, replace=True)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe_hydra_error(exc: BaseException) -> str | None:
    """One line for a Hydra/OmegaConf composition error, naming the full key where known."""
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None):
            msg = _one_line(_strip_context(getattr(e, "msg", None) or str(e)))
            if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
                msg = f"unknown key ({msg})"
            return f"{e.full_key}: {msg}"
    for e in chain:
        if isinstance(e, (HydraException, OmegaConfBaseException)):
            return _one_line(str(e).split("Config search path:")[0])
    # Hydra creating the run's output directory (before the task starts) on a path that
    # cannot take it: a file in the way, no permission.
    if isinstance(exc, OSError):
        frames, tb = [], exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame.f_globals.get("__name__", ""))
            tb = tb.tb_next
        ours = [m for m in frames if m.startswith("mia_engine") and m != __name__]
        if "hydra.core.utils" in frames and not ours:
            where = exc.filename if getattr(exc, "filename", None) else ""
            return f"hydra.run.dir: cannot create the output directory {where!s}: {exc.strerror or exc}"
    # Raised inside a sweeper plugin (e.g. Optuna rejecting its settings): name the sweeper.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    if module.startswith(("optuna", "hydra_plugins.hydra_optuna_sweeper")):
        return f"hydra.sweeper: {type(exc).__name__}: {_one_line(str(exc))}"
    return None


def _strip_context(msg: str) -> str:
    """Drop OmegaConf's trailing ``full_key: ...`` / ``object_type=...`` lines (we print the key)."""
    keep = [ln for ln in msg.splitlines() if not ln.strip().startswith(("full_key:", "object_type=", "reference_type="))]
    return "\n".join(keep)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def exit_on_user_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function: a :class:`MiaEngineError` exits at once with its one line.

    Exiting inside the task (rather than raising) keeps Hydra from adding its own
    "Error executing job" line; in a multirun it stops the sweep, and the sweep's parent
    MLflow run is closed FAILED by its exit handler.
    """

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() == _CLI_PID:
            _note_outputs()
        try:
            return task(*args, **kwargs)
        except MiaEngineError as e:
            if os.getpid() != _CLI_PID:
                raise  # a launcher's worker process (joblib, Ray): let the driver report it
            _fail(str(e), e.exit_code)

    return wrapper


def guarded(entry: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` entry point as a command: user errors become one line and an exit code.

    On the way out, the exit handlers run (closing MLflow runs, flushing logs) and the process
    then ends without tearing down every imported module: with MLflow and SQLAlchemy loaded,
    that teardown alone costs about a second and does nothing a finished run needs.
    Unexpected errors (bugs) take Python's normal path, with a full traceback.
    """
    global _CLI_PID
    _CLI_PID = os.getpid()
    register_resolvers()
    code: Any = 0
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        try:
            entry()
        except SystemExit as e:
            code = e.code
    else:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        stderr = sys.stderr
        sys.stderr = held = _HoldJobErrorLine(stderr)
        try:
            entry()
        except SystemExit as e:
            code = e.code
        except KeyboardInterrupt:
            code = _interrupted()
        except AbortSweep as e:  # a sweep stopped in the driver (before its jobs, or failed at its end)
            code = _report(str(e.error), e.error.exit_code)
        except MiaEngineError as e:
            # Ray re-raises a worker's error as a subclass of it, with the original as `cause`.
            original = e.cause if isinstance(getattr(e, "cause", None), MiaEngineError) else e
            code = _report(str(original), original.exit_code)
        except Exception as e:
            line = describe_hydra_error(e)
            if line is None:
                held.release()
                raise
            code = _report(line, 2)
        finally:
            sys.stderr = stderr
    _exit_now(code)


class _HoldJobErrorLine:
    """stderr for the run: holds back Hydra's "Error executing job with overrides" line, which
    a launcher prints before re-raising a job's error; our own line says what went wrong. It is
    released (printed) when the error is not one of ours."""

    _PREFIX = "Error executing job with overrides:"

    def __init__(self, stream):
        self._stream = stream
        self._held: list[str] = []

    def write(self, text: str) -> int:
        if text.startswith(self._PREFIX):
            self._held.append(text)
            return len(text)
        return self._stream.write(text)

    def release(self) -> None:
        for text in self._held:
            self._stream.write(text)
        self._held.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _note_outputs() -> None:
    """Remember where the job writes: its output directory, or its sweep's directory."""
    global _OUTPUTS
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            _OUTPUTS = os.path.join(hc.runtime.cwd, hc.sweep.dir)
        else:
            _OUTPUTS = hc.runtime.output_dir
    except Exception:  # noqa: BLE001 - only for a message
        pass


def _outputs_so_far() -> str | None:
    where = _OUTPUTS
    tracking = sys.modules.get("mia_engine.tracking")
    if tracking is not None and tracking.current_sweep_dir():  # a sweep (its jobs may run elsewhere)
        where = tracking.current_sweep_dir()
    return where if where and os.path.isdir(where) else None


def _interrupted() -> int:
    """Ctrl-C: close this process's open runs FAILED, say so in one line, exit 130."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    except ValueError:  # not the main thread
        pass
    closed: list[str] = []
    where = _outputs_so_far()
    tracking = sys.modules.get("mia_engine.tracking")
    if tracking is not None:
        try:
            closed = tracking.close_open_runs()
        except Exception:  # noqa: BLE001 - the store may be what hangs
            pass
    parts = []
    if closed:
        parts.append(f"run {closed[0]} closed as FAILED" if len(closed) == 1
                     else f"runs {', '.join(closed)} closed as FAILED")
    if where:
        parts.append(f"outputs so far in {where}")
    line = "interrupted: " + "; ".join(parts) if parts else "interrupted"
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    sys.stderr.write(("\n" if tty else "") + line + "\n")  # on a terminal, after the echoed ^C
    return INTERRUPTED_EXIT_CODE


def _report(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def _exit_now(code: Any) -> None:
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message")
        sys.stderr.write(f"{code}\n")
        status = 1
    if threading.active_count() > 1:
        # Other threads (e.g. a joblib/loky executor's manager) need the interpreter's own
        # shutdown sequence to stop their workers: take the normal exit.
        sys.exit(status)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
