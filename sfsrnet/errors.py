"""Errors that the CLI reports as one paragraph, without a traceback (``--debug`` shows it)."""

from __future__ import annotations


class SfsrnetError(Exception):
    """Base class of the errors a user can fix: bad config, bad data, missing files."""


class ConfigError(SfsrnetError):
    """A config value is missing, unknown or out of range; the message names the key."""


class DataError(SfsrnetError):
    """A corpus file or folder is missing or not what it should be; the message names the file."""


class TrainingError(SfsrnetError):
    """Training cannot go on (a non-finite loss or gradient); the message names the cell, epoch
    and step, and says which checkpoint was kept."""
