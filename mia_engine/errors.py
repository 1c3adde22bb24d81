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
