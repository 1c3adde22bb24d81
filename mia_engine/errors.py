"""Errors the engine reports to the user as one line naming the config key."""

from __future__ import annotations


class MiaEngineError(Exception):
    """Base class: an error with a message fit for one line on the console."""

    exit_code = 1


class ConfigError(MiaEngineError, ValueError):
    """A config value the engine cannot use; ``key`` is its full dotted path."""

    exit_code = 2

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def __reduce__(self):  # picklable, so a launcher's worker can send it back to the driver
        return type(self), (self.key, self.message)


class TrackingError(MiaEngineError):
    """The tracking backend (an MLflow server or store) could not be used."""

    exit_code = 3


class AbortSweep(BaseException):
    """Raised from a Hydra callback in the driver to stop a multirun before its jobs launch.

    A BaseException, because Hydra turns a callback's ``Exception`` into a warning and
    launches the jobs anyway. ``error`` is the :class:`MiaEngineError` to report.
    """

    def __init__(self, error: MiaEngineError):
        super().__init__(str(error))
        self.error = error
