"""Errors a user can cause while preparing data or training; each message says what to do.

Both are `edgelite.errors.EdgeliteError`s with exit code 2 (usage): `edgelite train` prints them as
one line.
"""

from __future__ import annotations

from edgelite.errors import EdgeliteError


class DataError(EdgeliteError):
    """The data folder cannot be used as it is."""


class TrainError(EdgeliteError):
    """Training cannot start or continue with the given settings."""
