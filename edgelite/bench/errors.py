"""The error a user can cause in `edgelite bench`: a bad option, path or data set.

It is a `UsageError`, so `edgelite bench` prints it as one line and exits with code 2.
"""

from __future__ import annotations

from edgelite.errors import UsageError


class BenchUsageError(UsageError):
    """A bad bench option or input the user can fix (printed as one line by the CLI, exit code 2)."""
