"""Errors a user can cause with `edgelite review`; each message is one line that says what to do."""

from __future__ import annotations

from edgelite.errors import EdgeliteError


class ReviewError(EdgeliteError):
    """A bad frames folder, data folder, label or address (exit code 2)."""
