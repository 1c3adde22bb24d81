"""Command-line error handling: every user error ends as one line on stderr and an exit code.

Hydra prints composition errors over several lines; with ``HYDRA_FULL_ERROR=1`` it re-raises
them instead, and :func:`guarded` condenses them to ``error: <full config key>: <problem>``.
Set ``HYDRA_FULL_ERROR=1`` yourself to get Hydra's full traces back.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
from typing import Any, Callable

from .errors import AbortSweep, MiaEngineError


# The process that runs the command line (set by guarded); tasks running elsewhere raise.
_CLI_PID: int | None = None


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
        except AbortSweep as e:  # a sweep stopped in the driver before any job launched
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
