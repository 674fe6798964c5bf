"""Errors a user can cause with `edgelite adapt`; each message is one line that says what to do."""

from __future__ import annotations

from edgelite.errors import EdgeliteError


class AdaptError(EdgeliteError):
    """The run, the image folders or the settings cannot be used for adaptation (exit code 2)."""
